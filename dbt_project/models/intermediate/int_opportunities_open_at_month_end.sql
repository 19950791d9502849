-- One row per month and opportunity open at the end of that month, under the stage it
-- holds then (docs/kpis.md, "Open at a moment t" and "Stage held at t"; the end of a month is
-- the first instant of the next month). Deleted opportunities are left out (KPIs only).
--
-- * Months before the month of as_of: the open spells covering the month end
--   (spell_start_at < t <= spell_end_at), a pure range join.
-- * The month of as_of ends at as_of, where an event at as_of has happened: the
--   opportunities created by as_of whose status is open, under their current stage.

with spells as (
    select * from {{ ref('int_open_spells_built') }}
),

months as (
    select * from {{ ref('int_months_spined') }}
),

opportunities as (
    select *
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
)

select
    months.month,
    spells.opportunity_id,
    spells.owner_id,
    spells.stage,
    spells.stage_order,
    spells.stage_probability,
    spells.amount_reporting
from spells
inner join months
    on spells.spell_start_at < months.month_end_at
    -- A spell still open at as_of covers every month end up to as_of.
    and coalesce(spells.spell_end_at, {{ as_of() }}) >= months.month_end_at
where not months.is_current_month

union all

select
    months.month,
    opportunities.opportunity_id,
    opportunities.owner_id,
    opportunities.current_stage as stage,
    opportunities.current_stage_order as stage_order,
    opportunities.current_stage_probability as stage_probability,
    opportunities.amount_reporting
from opportunities
inner join months
    on months.is_current_month
where opportunities.status = 'open'
