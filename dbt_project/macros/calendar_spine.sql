{#
    One row per calendar unit from `start_expr` to `end_expr` inclusive, in a column named
    after the unit (`day` or `month`, a DATE; months as their first day). Both bounds are
    SQL expressions yielding a DATE (a first-of-month for months) and may be scalar
    subqueries; empty when either is null. Portable: a bounded numbers series
    (dbt.generate_series) plus dbt.dateadd, so nothing is queried at compile time (unlike
    dbt.date_spine, which needs its bounds at compile time). `max_count` bounds the span.
#}
{% macro calendar_spine(datepart, start_expr, end_expr, max_count) -%}
    with numbers as (
        {{ dbt.generate_series(max_count) }}
    ),

    bounds as (
        select
            {{ start_expr }} as start_value,
            {{ end_expr }} as end_value
    ),

    spine as (
        select
            cast({{ dbt.dateadd(datepart, 'numbers.generated_number - 1', 'bounds.start_value') }} as date)
                as {{ datepart }},
            bounds.end_value
        from bounds
        cross join numbers
        where bounds.start_value is not null
    )

    select {{ datepart }}
    from spine
    where {{ datepart }} <= end_value
{%- endmacro %}

{# Months (column `month`), up to 100 years. #}
{% macro month_spine(start_month, end_month, max_months=1200) -%}
    {{ crm_pipeline.calendar_spine('month', start_month, end_month, max_months) }}
{%- endmacro %}

{# Days (column `day`), up to ~110 years. #}
{% macro day_spine(start_day, end_day, max_days=40000) -%}
    {{ crm_pipeline.calendar_spine('day', start_day, end_day, max_days) }}
{%- endmacro %}
