-- Empirical win probability of each open stage (docs/kpis.md), learned at each month end before
-- the month of as_of (for the backtest) and at as_of (for the forecast): among the
-- opportunities closed (won or lost) with closed_at in [t - lookback_days, t) that reached
-- the stage, the share won. At as_of the window includes as_of itself. Below
-- min_closed_deals such opportunities the empirical probability is null and the configured
-- one is used (probability_source says which).
--
-- Reached: the highest open stage entered is at or after the stage (a won deal has
-- reached every open stage). Closed deals are first counted per moment and highest open
-- stage, then summed per stage, so the cost is moments x closed deals in a window, never
-- x stages.

with closed as (
    select closed_at, status, highest_open_stage_order
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
        and status in ('won', 'lost')
),

stages as (
    select stage, stage_order, stage_probability
    from {{ ref('int_stages_listed') }}
    where stage_category = 'open'
),

moments as (
    select
        month_end_at as learned_at,
        false as is_as_of,
        month_end_at as window_end_at
    from {{ ref('int_months_spined') }}
    where not is_current_month

    union all

    -- No close comes after as_of, so any later window end includes as_of itself.
    select
        {{ as_of() }} as learned_at,
        true as is_as_of,
        {{ dbt.dateadd('day', 1, as_of()) }} as window_end_at
),

window_counts as (
    select
        moments.learned_at,
        moments.is_as_of,
        closed.highest_open_stage_order,
        count(*) as closed_count,
        sum(case when closed.status = 'won' then 1 else 0 end) as won_count
    from moments
    inner join closed
        on closed.closed_at >= {{ dbt.dateadd('day', '-' ~ var('forecast_lookback_days'), 'moments.learned_at') }}
        and closed.closed_at < moments.window_end_at
    group by moments.learned_at, moments.is_as_of, closed.highest_open_stage_order
),

reached as (
    select
        moments.learned_at,
        moments.is_as_of,
        stages.stage,
        stages.stage_order,
        stages.stage_probability as configured_probability,
        coalesce(sum(window_counts.closed_count), 0) as closed_reached_count,
        coalesce(sum(window_counts.won_count), 0) as won_count
    from moments
    cross join stages
    left join window_counts
        on moments.learned_at = window_counts.learned_at
        and moments.is_as_of = window_counts.is_as_of
        and window_counts.highest_open_stage_order >= stages.stage_order
    group by
        moments.learned_at,
        moments.is_as_of,
        stages.stage,
        stages.stage_order,
        stages.stage_probability
),

learned as (
    select
        reached.*,
        case
            when closed_reached_count >= {{ var('forecast_min_closed_deals') }}
                then {{ safe_divide('won_count', 'closed_reached_count') }}
        end as empirical_probability
    from reached
)

select
    learned_at,
    is_as_of,
    stage,
    stage_order,
    closed_reached_count,
    won_count,
    empirical_probability,
    configured_probability,
    coalesce(empirical_probability, configured_probability) as probability_used,
    case when empirical_probability is null then 'configured' else 'empirical' end
        as probability_source
from learned
