{#
    One row per calendar month (column `month`, DATE first day) from `start_month` to
    `end_month` inclusive; both are SQL expressions yielding a first-of-month DATE and may
    be scalar subqueries. Empty when either is null. Portable: a bounded numbers series
    (dbt.generate_series) plus dbt.dateadd, so nothing is queried at compile time (unlike
    dbt.date_spine, which needs its bounds at compile time).
    `max_months` bounds the span (default 100 years).
#}
{% macro month_spine(start_month, end_month, max_months=1200) -%}
    with numbers as (
        {{ dbt.generate_series(max_months) }}
    ),

    bounds as (
        select
            {{ start_month }} as start_month,
            {{ end_month }} as end_month
    ),

    months as (
        select
            cast({{ dbt.dateadd('month', 'numbers.generated_number - 1', 'bounds.start_month') }} as date)
                as month,
            bounds.end_month
        from bounds
        cross join numbers
        where bounds.start_month is not null
    )

    select month
    from months
    where month <= end_month
{%- endmacro %}
