-- One row per opportunity existing at as_of: its state as of as_of, read from its stage
-- intervals (recorded history plus synthesized entries).
--
-- status: the category of the stage held at as_of (the current interval): open -> open,
--   won and post_sale -> won, lost -> lost. A deal revived from lost into an open stage is
--   open again; without any interval (history only after as_of) it is open.
-- closed_at (docs/kpis.md): for won/lost deals, when they entered their final outcome: the entry
--   of the first interval of the last unbroken run of intervals of that outcome (won = a
--   won or post-sale stage, lost = a lost stage). So lost -> revived -> won closes at the
--   win, closed_lost -> closed_won at closed_won, a won deal later lost at the loss. The
--   close_date fallback is the synthesized closing entry of int_stage_changes_unioned.
-- highest_open_stage_order: the highest open stage ever entered; for won deals the last
--   open stage, since a won deal has reached every open stage (docs/kpis.md, "Reached").

with opportunities as (
    select * from {{ ref('int_opportunities_converted') }}
),

intervals as (
    select * from {{ ref('int_stage_intervals_built') }}
),

stages as (
    select * from {{ ref('int_stages_listed') }}
),

last_open_stage as (
    select max(stage_order) as stage_order
    from stages
    where stage_category = 'open'
),

interval_summary as (
    select
        opportunity_id,
        count(*) as intervals_count,
        sum(case when is_regression then 1 else 0 end) as regressions_count,
        max(case when stage_category = 'open' then stage_order end) as highest_entered_open_order
    from intervals
    group by opportunity_id
),

current_interval as (
    select
        opportunity_id,
        stage,
        stage_order,
        stage_category,
        stage_probability,
        {{ outcome_of('stage_category') }} as outcome
    from intervals
    where is_current
),

-- The final outcome's run: the intervals after the last one of another outcome.
closing as (
    select
        intervals.opportunity_id,
        max(
            case
                when {{ outcome_of('intervals.stage_category') }} <> current_interval.outcome
                    then intervals.interval_number
            end
        ) as last_other_interval_number
    from intervals
    inner join current_interval
        on intervals.opportunity_id = current_interval.opportunity_id
    where current_interval.outcome <> 'open'
    group by intervals.opportunity_id
),

final_closing as (
    select
        intervals.opportunity_id,
        min(intervals.entered_at) as final_closing_entered_at
    from intervals
    inner join closing
        on intervals.opportunity_id = closing.opportunity_id
    where intervals.interval_number > coalesce(closing.last_other_interval_number, 0)
    group by intervals.opportunity_id
),

with_status as (
    select
        opportunities.*,
        current_interval.stage as current_stage,
        current_interval.stage_order as current_stage_order,
        current_interval.stage_probability as current_stage_probability,
        coalesce(current_interval.outcome, 'open') as status,
        coalesce(interval_summary.intervals_count, 0) as intervals_count,
        coalesce(interval_summary.regressions_count, 0) as regressions_count,
        interval_summary.highest_entered_open_order,
        final_closing.final_closing_entered_at
    from opportunities
    left join current_interval
        on opportunities.opportunity_id = current_interval.opportunity_id
    left join interval_summary
        on opportunities.opportunity_id = interval_summary.opportunity_id
    left join final_closing
        on opportunities.opportunity_id = final_closing.opportunity_id
),

with_closed_at as (
    select
        with_status.*,
        case when status <> 'open' then final_closing_entered_at end as closed_at,
        case
            when status = 'won' then (select stage_order from last_open_stage)
            else highest_entered_open_order
        end as highest_open_stage_order
    from with_status
)

select
    with_closed_at.opportunity_id,
    with_closed_at.account_id,
    with_closed_at.owner_id,
    with_closed_at.lead_source,
    with_closed_at.amount,
    with_closed_at.currency,
    with_closed_at.amount_reporting,
    with_closed_at.created_at,
    with_closed_at.close_date,
    with_closed_at.closed_at,
    with_closed_at.status,
    with_closed_at.current_stage,
    with_closed_at.current_stage_order,
    with_closed_at.current_stage_probability,
    open_stages.stage as highest_open_stage,
    with_closed_at.highest_open_stage_order,
    case
        when with_closed_at.closed_at is not null
            then {{ duration_days('with_closed_at.created_at', 'with_closed_at.closed_at') }}
    end as sales_cycle_days,
    -- Moves between stages as of as_of (a repeat of the same stage is not a move).
    case
        when with_closed_at.intervals_count > 0 then with_closed_at.intervals_count - 1
        else 0
    end as stage_changes_count,
    with_closed_at.regressions_count,
    with_closed_at.is_deleted
from with_closed_at
left join stages as open_stages
    on with_closed_at.highest_open_stage_order = open_stages.stage_order
    and open_stages.stage_category = 'open'
