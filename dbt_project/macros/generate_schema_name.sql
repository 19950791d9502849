{#
    Schemas are exactly `staging`, `intermediate` and `marts` (docs/data-model.md, "Warehouse
    schemas"): a model's custom schema is used as is, without dbt's default
    `<target schema>_` prefix. Models without one land in the target schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
