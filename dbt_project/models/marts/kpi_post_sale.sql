-- After-sales follow-up of won deals by the month of their win (docs/kpis.md), over
-- kpi_monthly's months; non-deleted opportunities, activities up to as_of.
-- * followed up: an activity on the deal in (closed_at, closed_at + follow_up_days]: one
--   exactly at closed_at is part of the sale, one exactly follow_up_days later counts.
-- * days to first activity: from closed_at to the first activity strictly after it, over
--   the deals that have one by as_of.
-- * onboarding / follow_up / renewal: won deals whose history entered that post-sale
--   stage by as_of.
-- The window is var('forecast_follow_up_days') (config forecast.follow_up_days).

with months as (
    select month from {{ ref('int_months_spined') }}
),

won as (
    select opportunity_id, closed_at
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
        and status = 'won'
),

activities as (
    select opportunity_id, occurred_at
    from {{ ref('stg_crm__activities') }}
    where opportunity_id is not null
        and occurred_at <= {{ as_of() }}
),

after_win as (
    select
        won.opportunity_id,
        min(activities.occurred_at) as first_activity_at,
        max(
            case
                when activities.occurred_at
                    <= {{ dbt.dateadd('day', var('forecast_follow_up_days'), 'won.closed_at') }}
                    then 1
                else 0
            end
        ) as is_followed_up
    from won
    inner join activities
        on won.opportunity_id = activities.opportunity_id
        and activities.occurred_at > won.closed_at
    group by won.opportunity_id
),

post_sale_stages as (
    select
        intervals.opportunity_id,
        max(case when intervals.stage = 'onboarding' then 1 else 0 end) as reached_onboarding,
        max(case when intervals.stage = 'follow_up' then 1 else 0 end) as reached_follow_up,
        max(case when intervals.stage = 'renewal' then 1 else 0 end) as reached_renewal
    from {{ ref('int_stage_intervals_built') }} as intervals
    where intervals.stage_category = 'post_sale'
    group by intervals.opportunity_id
),

per_deal as (
    select
        {{ month_of('won.closed_at') }} as month,
        coalesce(after_win.is_followed_up, 0) as is_followed_up,
        case
            when after_win.first_activity_at is not null
                then {{ duration_days('won.closed_at', 'after_win.first_activity_at') }}
        end as days_to_first_activity,
        coalesce(post_sale_stages.reached_onboarding, 0) as reached_onboarding,
        coalesce(post_sale_stages.reached_follow_up, 0) as reached_follow_up,
        coalesce(post_sale_stages.reached_renewal, 0) as reached_renewal
    from won
    left join after_win
        on won.opportunity_id = after_win.opportunity_id
    left join post_sale_stages
        on won.opportunity_id = post_sale_stages.opportunity_id
),

by_month as (
    select
        month,
        count(*) as won_count,
        sum(is_followed_up) as followed_up_count,
        {{ exact_avg('days_to_first_activity') }} as avg_days_to_first_activity,
        {{ median('days_to_first_activity') }} as median_days_to_first_activity,
        sum(reached_onboarding) as onboarding_count,
        sum(reached_follow_up) as follow_up_count,
        sum(reached_renewal) as renewal_count
    from per_deal
    group by month
)

select
    cast(months.month as date) as month,
    cast(coalesce(by_month.won_count, 0) as {{ dbt.type_bigint() }}) as won_count,
    cast(coalesce(by_month.followed_up_count, 0) as {{ dbt.type_bigint() }}) as followed_up_count,
    cast({{ safe_divide('by_month.followed_up_count', 'by_month.won_count') }} as {{ type_double() }})
        as followed_up_share,
    cast(by_month.avg_days_to_first_activity as {{ type_double() }}) as avg_days_to_first_activity,
    cast(by_month.median_days_to_first_activity as {{ type_double() }})
        as median_days_to_first_activity,
    cast(coalesce(by_month.onboarding_count, 0) as {{ dbt.type_bigint() }}) as onboarding_count,
    cast(coalesce(by_month.follow_up_count, 0) as {{ dbt.type_bigint() }}) as follow_up_count,
    cast(coalesce(by_month.renewal_count, 0) as {{ dbt.type_bigint() }}) as renewal_count
from months
left join by_month
    on months.month = by_month.month
order by months.month
