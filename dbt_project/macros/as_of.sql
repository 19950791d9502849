{#
    The run's explicit as-of timestamp (naive UTC). Every model measures "now" with this,
    never with the clock, so the same inputs and the same as_of give the same marts, and an
    earlier as_of reproduces an earlier day.

    The pipeline writes it into the one-row table quality.run_context before `dbt build`
    and passes no var: dbt re-parses the whole project whenever a var changes, and as_of
    changes on every run, so a var would cost every run a full parse. It is read once per
    model at compile time and rendered as a literal, so the SQL that runs is the same as
    with a var. A var still wins (dbt unit tests, a by-hand run):
        dbt build --vars '{as_of: "2026-11-26 06:00:00"}'
    There is no default: with neither, compilation fails instead of guessing.
#}
{% macro as_of() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {%- if execute -%}
            {%- set value = run_context_as_of() -%}
        {%- else -%}
            {#- At parse time (no execution) render a placeholder so `dbt parse` works. -#}
            {%- set value = '1970-01-01 00:00:00' -%}
        {%- endif -%}
    {%- endif -%}
    cast('{{ value | string | trim }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro run_context_as_of() -%}
    {%- set relation = adapter.get_relation(database=target.database, schema='quality', identifier='run_context') -%}
    {%- set rows = none -%}
    {%- if relation is not none -%}
        {%- set rows = run_query(
            "select cast(as_of as " ~ dbt.type_string() ~ ") from " ~ relation
        ).rows -%}
    {%- endif -%}
    {%- if not rows or rows[0][0] is none -%}
        {{ exceptions.raise_compiler_error(
            "The run's as-of timestamp is missing: `crm-pipeline run` writes it into "
            ~ "quality.run_context before dbt runs. Running dbt by hand, pass it as a var, "
            ~ "for example: dbt build --vars '{as_of: \"2026-11-26 06:00:00\"}'"
        ) }}
    {%- endif -%}
    {{- return(rows[0][0]) -}}
{%- endmacro %}
