{#
    How stage labels are compared (the SQL twin of ingestion.stages.normalize_label):
    lower case, runs of whitespace collapsed to one space, trimmed.
#}
{% macro normalize_label(column) -%}
    {{ return(adapter.dispatch('normalize_label', 'crm_pipeline')(column)) }}
{%- endmacro %}

{% macro default__normalize_label(column) -%}
    lower(trim(regexp_replace({{ column }}, '\s+', ' ', 'g')))
{%- endmacro %}

{% macro spark__normalize_label(column) -%}
    lower(trim(regexp_replace({{ column }}, '\\s+', ' ')))
{%- endmacro %}
