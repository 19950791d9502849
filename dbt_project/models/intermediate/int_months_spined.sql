-- Calendar months (UTC) from the first month with data (an opportunity created or an
-- activity, deleted opportunities aside) to the month of as_of, with the instant each
-- month's measures are taken at: the first instant of the next month, or as_of for the
-- month of as_of. No data, no months.

with opportunities as (
    select created_at as happened_at
    from {{ ref('int_opportunities_converted') }}
    where not is_deleted
),

activities as (
    select occurred_at as happened_at
    from {{ ref('stg_crm__activities') }}
    where occurred_at <= {{ as_of() }}
),

first_event as (
    select min(happened_at) as first_happened_at
    from (
        select happened_at from opportunities
        union all
        select happened_at from activities
    ) as events
),

months as (
    {{ month_spine(
        start_month='(select ' ~ month_of('first_happened_at') ~ ' from first_event)',
        end_month=month_of(as_of())
    ) }}
)

select
    month,
    cast(month as {{ dbt.type_timestamp() }}) as month_start_at,
    case
        when month = {{ month_of(as_of()) }} then {{ as_of() }}
        else {{ next_month_start('month') }}
    end as month_end_at,
    month = {{ month_of(as_of()) }} as is_current_month
from months
