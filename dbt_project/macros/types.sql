{#
    Double precision, for every measure. dbt.type_float() renders `float`, which is single
    precision on DuckDB, so we dispatch our own.
#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'crm_pipeline')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}

{# x / y, or null when y is null or zero. #}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as {{ crm_pipeline.type_double() }}) / nullif({{ denominator }}, 0))
{%- endmacro %}
