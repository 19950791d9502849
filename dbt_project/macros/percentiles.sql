{#
    Interpolated percentiles (like percentile_cont), used as aggregate functions.
    `fraction` is a literal between 0 and 1.
#}
{% macro percentile_cont(column, fraction) -%}
    {{ return(adapter.dispatch('percentile_cont', 'crm_pipeline')(column, fraction)) }}
{%- endmacro %}

{% macro default__percentile_cont(column, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ column }})
{%- endmacro %}

{% macro duckdb__percentile_cont(column, fraction) -%}
    quantile_cont({{ column }}, {{ fraction }})
{%- endmacro %}

{% macro spark__percentile_cont(column, fraction) -%}
    percentile({{ column }}, {{ fraction }})
{%- endmacro %}

{% macro median(column) -%}
    {{ crm_pipeline.percentile_cont(column, 0.5) }}
{%- endmacro %}
