-- One row per stage of the stage map: how long completed intervals lasted (exited before
-- as_of) and how old the current ones are at as_of, over non-deleted opportunities.
-- is_bottleneck marks the open stage with the highest median_days (ties: the earlier
-- stage); no open stage is a bottleneck while no open interval has completed.

with stages as (
    select * from {{ ref('int_stages_listed') }}
),

history as (
    select * from {{ ref('fct_stage_history') }}
),

durations as (
    select
        stage,
        sum(case when not is_current then 1 else 0 end) as completed_intervals,
        {{ exact_avg('case when not is_current then duration_days end') }} as avg_days,
        {{ median('case when not is_current then duration_days end') }} as median_days,
        {{ percentile_cont('case when not is_current then duration_days end', 0.9) }} as p90_days,
        sum(case when is_current then 1 else 0 end) as current_count,
        {{ exact_avg('case when is_current then duration_days end') }} as avg_current_age_days
    from history
    group by stage
),

joined as (
    select
        stages.stage,
        stages.stage_order,
        stages.stage_category,
        coalesce(durations.completed_intervals, 0) as completed_intervals,
        durations.avg_days,
        durations.median_days,
        durations.p90_days,
        coalesce(durations.current_count, 0) as current_count,
        durations.avg_current_age_days
    from stages
    left join durations
        on stages.stage = durations.stage
),

ranked as (
    select
        joined.*,
        row_number() over (
            order by
                case
                    when stage_category = 'open' and median_days is not null then 0 else 1
                end,
                median_days desc,
                stage_order
        ) as bottleneck_rank
    from joined
)

select
    cast(stage as {{ dbt.type_string() }}) as stage,
    cast(stage_order as {{ dbt.type_int() }}) as stage_order,
    cast(completed_intervals as {{ dbt.type_bigint() }}) as completed_intervals,
    cast(avg_days as {{ type_double() }}) as avg_days,
    cast(median_days as {{ type_double() }}) as median_days,
    cast(p90_days as {{ type_double() }}) as p90_days,
    cast(current_count as {{ dbt.type_bigint() }}) as current_count,
    cast(avg_current_age_days as {{ type_double() }}) as avg_current_age_days,
    cast(
        bottleneck_rank = 1 and stage_category = 'open' and median_days is not null
        as {{ dbt.type_boolean() }}
    ) as is_bottleneck
from ranked
order by stage_order
