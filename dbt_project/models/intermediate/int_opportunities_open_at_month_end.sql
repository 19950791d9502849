-- One row per month and opportunity open at the end of that month (KPIS.md, "Open at a
-- moment t"; end of month = first instant of the next month, as_of for the current month).
-- Open at t: created_at < t and, at t, not in a won/lost/post-sale stage. The stage held at
-- t is the one of the latest entry strictly before t; before an opportunity's first entry
-- it is open with an unknown stage (null; it counts in open_count/open_amount and adds
-- nothing to the weighted pipeline). Deleted opportunities are left out (KPIs only).
--
-- Each "open spell" is [start, end]: open intervals, plus the gap between created_at and
-- the first entry. The spell covers t when start < t <= end (an entry at exactly t is not
-- yet in effect at t), which is a pure range join.

with opportunities as (
    select *
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
),

intervals as (
    select * from {{ ref('int_stage_intervals_built') }}
),

months as (
    select * from {{ ref('int_months_spined') }}
),

first_entries as (
    select opportunity_id, min(entered_at) as first_entered_at
    from intervals
    group by opportunity_id
),

open_spells as (
    select
        intervals.opportunity_id,
        intervals.stage,
        intervals.stage_probability,
        greatest(intervals.entered_at, opportunities.created_at) as spell_start_at,
        coalesce(intervals.exited_at, {{ as_of() }}) as spell_end_at
    from intervals
    inner join opportunities
        on intervals.opportunity_id = opportunities.opportunity_id
    where intervals.stage_category = 'open'

    union all

    select
        opportunities.opportunity_id,
        cast(null as {{ dbt.type_string() }}) as stage,
        cast(null as {{ type_double() }}) as stage_probability,
        opportunities.created_at as spell_start_at,
        coalesce(first_entries.first_entered_at, {{ as_of() }}) as spell_end_at
    from opportunities
    left join first_entries
        on opportunities.opportunity_id = first_entries.opportunity_id
    where first_entries.first_entered_at is null
        or first_entries.first_entered_at > opportunities.created_at
)

select
    months.month,
    open_spells.opportunity_id,
    opportunities.owner_id,
    open_spells.stage,
    open_spells.stage_probability,
    opportunities.amount_reporting
from open_spells
inner join months
    on open_spells.spell_start_at < months.month_end_at
    and open_spells.spell_end_at >= months.month_end_at
inner join opportunities
    on open_spells.opportunity_id = opportunities.opportunity_id
