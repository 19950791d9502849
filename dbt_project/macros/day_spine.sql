{#
    One row per day (column `day`, DATE) from `start_day` to `end_day` inclusive; both are
    SQL expressions yielding a DATE and may be scalar subqueries. Empty when either is
    null. Portable like month_spine: a bounded numbers series plus dbt.dateadd, so nothing
    is queried at compile time. `max_days` bounds the span (default ~110 years).
#}
{% macro day_spine(start_day, end_day, max_days=40000) -%}
    with numbers as (
        {{ dbt.generate_series(max_days) }}
    ),

    bounds as (
        select
            {{ start_day }} as start_day,
            {{ end_day }} as end_day
    ),

    days as (
        select
            cast({{ dbt.dateadd('day', 'numbers.generated_number - 1', 'bounds.start_day') }} as date)
                as day,
            bounds.end_day
        from bounds
        cross join numbers
        where bounds.start_day is not null
    )

    select day
    from days
    where day <= end_day
{%- endmacro %}
