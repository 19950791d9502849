-- Open spells: for every non-deleted opportunity, the stretches of time during which it is
-- open under one held stage (docs/kpis.md, "Open at a moment t" and "Stage held at t"). A spell
-- covers the instants t with spell_start_at < t <= spell_end_at (spell_end_at null: still
-- open at as_of), so "who is open at t, under which stage" is a range lookup:
--
-- * open at t: created_at < t and (closed_at is null or closed_at >= t);
-- * stage held at t: the latest interval entered before t, so interval i is held for
--   entered_at < t <= exited_at; before the first entry, the first interval's stage.
--
-- A spell is one interval intersected with the open period, so a deal revived from lost
-- holds closed_lost (probability 0) while lost, and a deal won and later lost holds
-- closed_won (probability 1) until its loss. An opportunity without any interval by as_of
-- is open from created_at with an unknown (null) stage.
--
-- These are the regular instants (month and day ends before the month or day of as_of).
-- At as_of itself an event at as_of has happened: readers take the opportunities whose
-- status is open, under their current stage (int_opportunities_closed).

with opportunities as (
    select opportunity_id, owner_id, amount_reporting, created_at, closed_at
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
),

intervals as (
    select * from {{ ref('int_stage_intervals_built') }}
),

held as (
    select
        intervals.opportunity_id,
        opportunities.owner_id,
        opportunities.amount_reporting,
        intervals.stage,
        intervals.stage_order,
        intervals.stage_category,
        intervals.stage_probability,
        case
            when intervals.interval_number = 1 then opportunities.created_at
            when intervals.entered_at < opportunities.created_at then opportunities.created_at
            else intervals.entered_at
        end as spell_start_at,
        case
            when intervals.exited_at is null then opportunities.closed_at
            when opportunities.closed_at is null then intervals.exited_at
            when opportunities.closed_at < intervals.exited_at then opportunities.closed_at
            else intervals.exited_at
        end as spell_end_at
    from intervals
    inner join opportunities
        on intervals.opportunity_id = opportunities.opportunity_id
),

without_intervals as (
    select
        opportunities.opportunity_id,
        opportunities.owner_id,
        opportunities.amount_reporting,
        cast(null as {{ dbt.type_string() }}) as stage,
        cast(null as {{ dbt.type_int() }}) as stage_order,
        cast(null as {{ dbt.type_string() }}) as stage_category,
        cast(null as {{ type_double() }}) as stage_probability,
        opportunities.created_at as spell_start_at,
        opportunities.closed_at as spell_end_at
    from opportunities
    left join intervals as first_intervals
        on opportunities.opportunity_id = first_intervals.opportunity_id
        and first_intervals.interval_number = 1
    where first_intervals.opportunity_id is null
),

spells as (
    select * from held
    union all
    select * from without_intervals
)

select
    opportunity_id,
    owner_id,
    stage,
    stage_order,
    stage_category,
    stage_probability,
    amount_reporting,
    spell_start_at,
    spell_end_at
from spells
-- An interval entered after the close (post-sale stages) or left before creation covers no
-- instant.
where spell_end_at is null
    or spell_end_at > spell_start_at
