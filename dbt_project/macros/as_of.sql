{#
    The run's explicit as-of timestamp (naive UTC), passed by the caller:
        dbt build --vars '{as_of: "2026-11-26 06:00:00"}'
    Every model measures "now" with this, never with the clock, so the same inputs and the
    same as_of give the same marts, and an earlier as_of reproduces an earlier day.
    There is no default: a missing as_of fails compilation instead of guessing.
#}
{% macro as_of() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "The dbt var `as_of` is required (the run's as-of timestamp, naive UTC). "
                ~ "Pass it on the command line, for example: "
                ~ "dbt build --vars '{as_of: \"2026-11-26 06:00:00\"}'"
            ) }}
        {%- endif -%}
        {#- At parse time (no execution) render a placeholder so `dbt parse` works. -#}
        {%- set value = '1970-01-01 00:00:00' -%}
    {%- endif -%}
    cast('{{ value | string | trim }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}
