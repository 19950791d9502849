-- For every closed opportunity whose first interval starts at created_at, the durations of
-- its intervals up to closing add up to its sales cycle (intervals are back to back).
-- meta.dagster.ref: dagster-dbt shows this multi-model test as a check on fct_stage_history.
{{ config(meta={'dagster': {'ref': {'name': 'fct_stage_history'}}}) }}

with opportunities as (
    select opportunity_id, created_at, closed_at, sales_cycle_days
    from {{ ref('fct_opportunities') }}
    where status in ('won', 'lost')
        and not is_deleted
),

history as (
    select * from {{ ref('fct_stage_history') }}
),

first_intervals as (
    select opportunity_id, min(entered_at) as first_entered_at
    from history
    group by opportunity_id
),

durations_to_close as (
    select
        history.opportunity_id,
        sum(history.duration_days) as days_to_close
    from history
    inner join opportunities
        on history.opportunity_id = opportunities.opportunity_id
    where history.exited_at <= opportunities.closed_at
    group by history.opportunity_id
)

select
    opportunities.opportunity_id,
    opportunities.sales_cycle_days,
    coalesce(durations_to_close.days_to_close, 0) as days_to_close
from opportunities
inner join first_intervals
    on opportunities.opportunity_id = first_intervals.opportunity_id
left join durations_to_close
    on opportunities.opportunity_id = durations_to_close.opportunity_id
where first_intervals.first_entered_at = opportunities.created_at
    and abs(coalesce(durations_to_close.days_to_close, 0) - opportunities.sales_cycle_days)
        > 1e-9
