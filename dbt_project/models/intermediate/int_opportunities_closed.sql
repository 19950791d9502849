-- One row per opportunity existing at as_of: its state as of as_of, read from its stage
-- intervals (recorded history plus synthesized entries).
--
-- status: the category of the stage held at as_of (the current interval): open -> open,
--   won and post_sale -> won, lost -> lost. A deal revived from lost into an open stage is
--   open again; without any interval (history only after as_of) it is open.
-- closed_at: for won/lost deals, when they first entered a won/lost/post-sale stage after
--   their last open stage, i.e. the start of the closed spell they are in at as_of. Without
--   revivals this is simply the first won/lost entry of the history (KPIS.md); the close_date
--   fallback is the synthesized closing entry of int_stage_changes_unioned.
-- highest_open_stage_order: the highest open stage ever entered; for won deals the last
--   open stage, since a won deal has reached every open stage (KPIS.md, "Reached").

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
        max(case when stage_category = 'open' then stage_order end) as highest_entered_open_order,
        max(case when stage_category = 'open' then interval_number end) as last_open_interval_number
    from intervals
    group by opportunity_id
),

closing as (
    select
        intervals.opportunity_id,
        min(intervals.entered_at) as final_closing_entered_at
    from intervals
    left join interval_summary
        on intervals.opportunity_id = interval_summary.opportunity_id
    where intervals.stage_category <> 'open'
        and intervals.interval_number > coalesce(interval_summary.last_open_interval_number, 0)
    group by intervals.opportunity_id
),

current_interval as (
    select opportunity_id, stage, stage_category
    from intervals
    where is_current
),

with_status as (
    select
        opportunities.*,
        current_interval.stage as current_stage,
        case current_interval.stage_category
            when 'lost' then 'lost'
            when 'won' then 'won'
            when 'post_sale' then 'won'
            else 'open'
        end as status,
        coalesce(interval_summary.intervals_count, 0) as intervals_count,
        coalesce(interval_summary.regressions_count, 0) as regressions_count,
        interval_summary.highest_entered_open_order,
        closing.final_closing_entered_at
    from opportunities
    left join current_interval
        on opportunities.opportunity_id = current_interval.opportunity_id
    left join interval_summary
        on opportunities.opportunity_id = interval_summary.opportunity_id
    left join closing
        on opportunities.opportunity_id = closing.opportunity_id
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
    with_closed_at.closed_at,
    with_closed_at.status,
    with_closed_at.current_stage,
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
