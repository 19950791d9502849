-- Funnel by cohort (month of created_at) over the open stages and the won stage, for
-- non-deleted opportunities, as of as_of. An opportunity has reached open stage s when the
-- highest open stage it ever entered is at or after s (skipped stages count as passed; a
-- won deal has reached them all); it has reached the won stage when its status is won.
-- reached_count never increases along the stages, so "converted to the next stage" is the
-- reached count of the next stage. Rates are null when their denominator is zero. Every
-- cohort month that has an opportunity has a row per funnel step, zeros included.

with opportunities as (
    select
        {{ month_of('created_at') }} as cohort_month,
        status,
        highest_open_stage_order
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
),

-- Only cohorts that have opportunities: a month with only activities has no cohort.
months as (
    select distinct cohort_month from opportunities
),

stages as (
    select * from {{ ref('int_stages_listed') }}
),

won_stage as (
    -- The stage a won deal is "closed won" in: the first stage of category won.
    select stage, stage_order
    from stages
    where stage_category = 'won'
        and stage_order = (select min(stage_order) from stages where stage_category = 'won')
),

funnel_stages as (
    select stage, stage_order, 0 as funnel_position_group, false as is_won_stage
    from stages
    where stage_category = 'open'

    union all

    select stage, stage_order, 1 as funnel_position_group, true as is_won_stage
    from won_stage
),

funnel_steps as (
    select
        stage,
        stage_order,
        is_won_stage,
        row_number() over (order by funnel_position_group, stage_order) as step_number,
        lead(stage) over (order by funnel_position_group, stage_order) as next_stage
    from funnel_stages
),

cohort_counts as (
    select
        cohort_month,
        highest_open_stage_order,
        count(*) as opportunities_count,
        sum(case when status = 'won' then 1 else 0 end) as won_count
    from opportunities
    group by cohort_month, highest_open_stage_order
),

reached as (
    select
        months.cohort_month,
        funnel_steps.stage,
        funnel_steps.stage_order,
        funnel_steps.step_number,
        funnel_steps.next_stage,
        coalesce(sum(
            case
                when funnel_steps.is_won_stage then cohort_counts.won_count
                when cohort_counts.highest_open_stage_order >= funnel_steps.stage_order
                    then cohort_counts.opportunities_count
                else 0
            end
        ), 0) as reached_count
    from months
    cross join funnel_steps
    left join cohort_counts
        on months.cohort_month = cohort_counts.cohort_month
    group by
        months.cohort_month,
        funnel_steps.stage,
        funnel_steps.stage_order,
        funnel_steps.step_number,
        funnel_steps.next_stage
),

with_neighbours as (
    select
        reached.*,
        lead(reached_count) over (
            partition by cohort_month order by step_number
        ) as next_reached_count,
        first_value(reached_count) over (
            partition by cohort_month order by step_number
            rows between unbounded preceding and current row
        ) as first_reached_count
    from reached
)

select
    cast(cohort_month as date) as cohort_month,
    cast(stage as {{ dbt.type_string() }}) as stage,
    cast(stage_order as {{ dbt.type_int() }}) as stage_order,
    cast(reached_count as {{ dbt.type_bigint() }}) as reached_count,
    cast(next_stage as {{ dbt.type_string() }}) as next_stage,
    cast(next_reached_count as {{ dbt.type_bigint() }}) as converted_to_next_count,
    cast({{ safe_divide('next_reached_count', 'reached_count') }} as {{ type_double() }})
        as conversion_rate_to_next,
    cast({{ safe_divide('reached_count', 'first_reached_count') }} as {{ type_double() }})
        as conversion_rate_from_first
from with_neighbours
order by cohort_month, step_number
