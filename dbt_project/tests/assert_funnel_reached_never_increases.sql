-- Within a cohort, reached_count never increases from one funnel step to the next
-- (reaching a stage implies having reached every earlier one).

with steps as (
    select
        cohort_month,
        stage,
        reached_count,
        lead(reached_count) over (
            partition by cohort_month
            -- closed_won is the last step whatever its stage_order.
            order by case when next_stage is null then 1 else 0 end, stage_order
        ) as next_reached_count
    from {{ ref('fct_funnel') }}
)

select *
from steps
where next_reached_count > reached_count
