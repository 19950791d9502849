{#
    The delta mode of the staging tests (orchestration/lib/unchanged.py). Every generic
    test reads the model it tests through get_where_subquery; on DuckDB, this project's
    version first looks the test up in quality.staging_test_scope, which the pipeline
    fills before `dbt build` when the only new data since the build that last passed the
    staging layer is newly published batches, and empties otherwise:
    - a row-wise test (not_null, accepted_values, relationships' child side) reads the
      rows of those batches only (`batch_id`);
    - a unique test reads every row whose key one of those rows holds, old rows included,
      so a new row repeating an old key is caught.
    A test not listed there (the table is empty outside the pipeline's dbt step, so a dbt
    run by hand tests in full) or a scope written for another run (quality.run_context)
    gets dbt's own behaviour. A test's `where` config still applies on top. The table is
    created with quality.run_context, which the models read too.
#}
{% macro duckdb__get_where_subquery(relation) -%}
    {#- One macro: dbt renders a generic test with its own macros and dbt's only. Only a
        test declared with the staging models can be in the scope: the others skip the
        look-up (a query per test, about 10 ms of dbt's time each). -#}
    {%- set scope = none -%}
    {%- if execute and model.resource_type == 'test'
            and model.original_file_path.startswith('models/staging/') -%}
        {%- set found = run_query(
            "select key_columns, batch_ids from quality.staging_test_scope "
            ~ "where test_id = '" ~ model.unique_id ~ "' "
            ~ "and run_id = (select run_id from quality.run_context)"
        ) -%}
        {%- if found.rows | length > 0 -%}
            {%- set scope = {
                'key_columns': fromjson(found.rows[0][0]),
                'batch_ids': fromjson(found.rows[0][1]),
            } -%}
        {%- endif -%}
    {%- endif -%}
    {%- if scope is none -%}
        {{ return(dbt.default__get_where_subquery(relation)) }}
    {%- endif -%}
    {%- set batches = [] -%}
    {%- for batch in scope['batch_ids'] -%}
        {%- do batches.append("'" ~ (batch | replace("'", "''")) ~ "'") -%}
    {%- endfor -%}
    {%- set new_batches = batches | join(', ') -%}
    {%- set keys = scope['key_columns'] -%}
    {%- if keys is none -%}
        {%- set narrowed = 'batch_id in (' ~ new_batches ~ ')' -%}
    {%- elif keys | length == 1 -%}
        {%- set narrowed -%}
            {{ keys[0] }} in (
                select {{ keys[0] }} from {{ relation }} where batch_id in ({{ new_batches }})
            )
        {%- endset -%}
    {%- else -%}
        {#- Null parts match, as unique_combination's group by groups them. -#}
        {%- set narrowed -%}
            exists (
                select 1 from {{ relation }} as dbt_new
                where dbt_new.batch_id in ({{ new_batches }})
                {%- for key in keys %}
                    and dbt_new.{{ key }} is not distinct from dbt_all.{{ key }}
                {%- endfor %}
            )
        {%- endset -%}
    {%- endif -%}
    {%- set where = config.get('where', '') -%}
    {%- set filtered -%}
        (select * from {{ relation }} as dbt_all where {{ narrowed }}
        {%- if where %} and ({{ where }}){% endif %}) dbt_subquery
    {%- endset -%}
    {{ return(filtered) }}
{%- endmacro %}
