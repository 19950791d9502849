-- One row per opportunity existing at as_of (created_at <= as_of), soft-deleted ones
-- included and flagged with is_deleted; every KPI mart leaves them out.

with opportunities as (
    select * from {{ ref('int_opportunities_closed') }}
),

touchpoints as (
    select * from {{ ref('int_touchpoints_counted') }}
)

select
    cast(opportunities.opportunity_id as {{ dbt.type_string() }}) as opportunity_id,
    cast(opportunities.account_id as {{ dbt.type_string() }}) as account_id,
    cast(opportunities.owner_id as {{ dbt.type_string() }}) as owner_id,
    cast(opportunities.lead_source as {{ dbt.type_string() }}) as lead_source,
    cast(opportunities.amount as {{ type_double() }}) as amount,
    cast(opportunities.currency as {{ dbt.type_string() }}) as currency,
    cast(opportunities.amount_reporting as {{ type_double() }}) as amount_reporting,
    cast(opportunities.created_at as {{ dbt.type_timestamp() }}) as created_at,
    cast(opportunities.closed_at as {{ dbt.type_timestamp() }}) as closed_at,
    cast(opportunities.status as {{ dbt.type_string() }}) as status,
    cast(opportunities.current_stage as {{ dbt.type_string() }}) as current_stage,
    cast(opportunities.highest_open_stage as {{ dbt.type_string() }}) as highest_open_stage,
    cast(opportunities.highest_open_stage_order as {{ dbt.type_int() }}) as highest_open_stage_order,
    cast(opportunities.sales_cycle_days as {{ type_double() }}) as sales_cycle_days,
    cast(opportunities.stage_changes_count as {{ dbt.type_bigint() }}) as stage_changes_count,
    cast(opportunities.regressions_count as {{ dbt.type_bigint() }}) as regressions_count,
    cast(coalesce(touchpoints.touchpoints_count, 0) as {{ dbt.type_bigint() }}) as touchpoints_count,
    cast(opportunities.is_deleted as {{ dbt.type_boolean() }}) as is_deleted
from opportunities
left join touchpoints
    on opportunities.opportunity_id = touchpoints.opportunity_id
-- A stable row order keeps reruns byte-identical.
order by opportunities.opportunity_id
