-- One row per stage interval of every non-deleted opportunity, as of as_of.

with intervals as (
    select * from {{ ref('int_stage_intervals_built') }}
),

opportunities as (
    select opportunity_id, owner_id
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
)

select
    cast(intervals.opportunity_id as {{ dbt.type_string() }}) as opportunity_id,
    cast(opportunities.owner_id as {{ dbt.type_string() }}) as owner_id,
    cast(intervals.stage as {{ dbt.type_string() }}) as stage,
    cast(intervals.stage_order as {{ dbt.type_int() }}) as stage_order,
    cast(intervals.stage_category as {{ dbt.type_string() }}) as stage_category,
    cast(intervals.entered_at as {{ dbt.type_timestamp() }}) as entered_at,
    cast(intervals.exited_at as {{ dbt.type_timestamp() }}) as exited_at,
    cast(intervals.next_stage as {{ dbt.type_string() }}) as next_stage,
    cast(intervals.duration_days as {{ type_double() }}) as duration_days,
    cast(intervals.is_current as {{ dbt.type_boolean() }}) as is_current,
    cast(intervals.is_regression as {{ dbt.type_boolean() }}) as is_regression
from intervals
inner join opportunities
    on intervals.opportunity_id = opportunities.opportunity_id
order by intervals.opportunity_id, intervals.interval_number
