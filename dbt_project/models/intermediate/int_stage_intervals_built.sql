-- Stage intervals (docs/kpis.md): entries ordered by changed_at, ties lower stage_order first;
-- an entry into the stage the opportunity is already in does not start a new interval; an
-- interval ends when the next one starts; the last one is current and runs to as_of.
-- (changed_at, stage_order) orders entries completely: stage_order is unique per stage
-- (tested on int_stages_listed), and entries tied on both are the same stage, collapsed.

with entries as (
    select * from {{ ref('int_stage_changes_unioned') }}
),

sequenced as (
    select
        entries.*,
        lag(stage) over (
            partition by opportunity_id
            order by changed_at, stage_order
        ) as previous_stage
    from entries
),

interval_starts as (
    select *
    from sequenced
    where previous_stage is null or previous_stage <> stage
),

intervals as (
    select
        opportunity_id,
        row_number() over by_opportunity as interval_number,
        stage,
        stage_order,
        stage_category,
        stage_probability,
        changed_at as entered_at,
        lead(changed_at) over by_opportunity as exited_at,
        lead(stage) over by_opportunity as next_stage,
        lead(stage_order) over by_opportunity as next_stage_order,
        lead(stage_category) over by_opportunity as next_stage_category,
        is_synthesized
    from interval_starts
    window by_opportunity as (partition by opportunity_id order by changed_at, stage_order)
)

select
    opportunity_id,
    interval_number,
    stage,
    stage_order,
    stage_category,
    stage_probability,
    entered_at,
    exited_at,
    next_stage,
    next_stage_order,
    next_stage_category,
    {{ duration_days('entered_at', 'coalesce(exited_at, ' ~ as_of() ~ ')') }} as duration_days,
    exited_at is null as is_current,
    coalesce(
        stage_category = 'open'
        and next_stage_category = 'open'
        and next_stage_order < stage_order,
        false
    ) as is_regression,
    is_synthesized
from intervals
