-- Touchpoints per opportunity (docs/kpis.md): activities linked to it with occurred_at between
-- created_at and closed_at (or as_of while open), both ends inclusive. Activities after
-- as_of do not exist yet.

with opportunities as (
    select opportunity_id, created_at, coalesce(closed_at, {{ as_of() }}) as window_end_at
    from {{ ref('int_opportunities_closed') }}
),

activities as (
    select activity_id, opportunity_id, occurred_at
    from {{ ref('stg_crm__activities') }}
    where opportunity_id is not null
        and occurred_at <= {{ as_of() }}
),

touchpoints as (
    select
        opportunities.opportunity_id,
        count(*) as touchpoints_count
    from opportunities
    inner join activities
        on opportunities.opportunity_id = activities.opportunity_id
        and activities.occurred_at >= opportunities.created_at
        and activities.occurred_at <= opportunities.window_end_at
    group by opportunities.opportunity_id
)

select
    opportunities.opportunity_id,
    coalesce(touchpoints.touchpoints_count, 0) as touchpoints_count
from opportunities
left join touchpoints
    on opportunities.opportunity_id = touchpoints.opportunity_id
