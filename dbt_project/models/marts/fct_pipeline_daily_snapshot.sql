-- The pipeline at the end of every day, by the stage held then (docs/kpis.md): days from the
-- date of the first created_at to the date of as_of; the end of a day is the first instant
-- of the next day, and for the day of as_of it is as_of (status open, current stage).
--
-- No opportunity x day product: an open spell (int_open_spells_built) covers the ends of
-- the days from the date of its start to the day before the date of its end, so it adds
-- +1 / +amount on its first day and -1 / -amount on the day after its last, and the
-- pipeline of a day is the running sum of these events. Cost grows with the number of
-- spells plus days x stages, not with opportunities x days.
--
-- Every open stage has a row every day (zeros included); another stage (closed_lost held
-- by a revived deal, closed_won by a deal later lost) only on days it holds an open deal.
-- Weighted amounts use the configured probability of the stage held. Sums are exact
-- decimals (macros/types.sql), so the last day of each month equals kpi_monthly's *_end
-- columns exactly. Stage is null for a deal with no stage entry by as_of.

with spells as (
    select * from {{ ref('int_open_spells_built') }}
),

opportunities as (
    select *
    from {{ ref('int_opportunities_closed') }}
    where not is_deleted
),

stages as (
    select * from {{ ref('int_stages_listed') }}
),

as_of_day as (
    select cast({{ as_of() }} as date) as day
),

days as (
    {{ day_spine(
        start_day='(select cast(min(created_at) as date) from opportunities)',
        end_day='cast(' ~ as_of() ~ ' as date)'
    ) }}
),

covered as (
    select
        stage,
        stage_order,
        cast(spell_start_at as date) as first_day,
        -- A spell still open covers every day end before the day of as_of.
        cast({{ dbt.dateadd('day', -1, 'cast(coalesce(spell_end_at, ' ~ as_of() ~ ') as date)') }} as date)
            as last_day,
        cast(amount_reporting as {{ type_exact() }}) as amount,
        cast(amount_reporting * stage_probability as {{ type_exact() }}) as weighted
    from spells
),

events as (
    select stage, stage_order, first_day as day, 1 as count_delta, amount, weighted
    from covered
    where last_day >= first_day

    union all

    select
        stage,
        stage_order,
        cast({{ dbt.dateadd('day', 1, 'last_day') }} as date) as day,
        -1 as count_delta,
        -amount as amount,
        -weighted as weighted
    from covered
    where last_day >= first_day
),

deltas as (
    select
        stage,
        stage_order,
        day,
        sum(count_delta) as count_delta,
        sum(amount) as amount_delta,
        sum(weighted) as weighted_delta
    from events
    group by stage, stage_order, day
),

-- Every stage that is held on some day: the open stages always, others when a spell holds
-- them. The stage is compared through a key because a deal without any stage entry holds
-- none (null).
stage_keys as (
    select stage, stage_order, coalesce(stage, '') as stage_key
    from stages
    where stage_category = 'open'

    union

    select stage, stage_order, coalesce(stage, '') as stage_key
    from spells
),

running as (
    select
        days.day,
        stage_keys.stage,
        stage_keys.stage_order,
        sum(coalesce(deltas.count_delta, 0)) over by_stage as open_count,
        sum(coalesce(deltas.amount_delta, 0)) over by_stage as open_amount,
        sum(coalesce(deltas.weighted_delta, 0)) over by_stage as weighted_amount
    from days
    cross join stage_keys
    left join deltas
        on days.day = deltas.day
        and stage_keys.stage_key = coalesce(deltas.stage, '')
    where days.day < (select day from as_of_day)
    window by_stage as (
        partition by stage_keys.stage_key
        order by days.day
        rows between unbounded preceding and current row
    )
),

at_as_of as (
    select
        current_stage as stage,
        current_stage_order as stage_order,
        count(*) as open_count,
        {{ exact_sum('amount_reporting') }} as open_amount,
        {{ exact_sum('amount_reporting * current_stage_probability') }} as weighted_amount
    from opportunities
    where status = 'open'
    group by current_stage, current_stage_order
),

as_of_rows as (
    select
        as_of_day.day,
        stage_keys.stage,
        stage_keys.stage_order,
        coalesce(at_as_of.open_count, 0) as open_count,
        coalesce(at_as_of.open_amount, 0) as open_amount,
        coalesce(at_as_of.weighted_amount, 0) as weighted_amount
    from as_of_day
    cross join (
        select stage, stage_order, stage_key from stage_keys
        union
        select current_stage, current_stage_order, coalesce(current_stage, '')
        from opportunities
        where status = 'open'
    ) as stage_keys
    left join at_as_of
        on stage_keys.stage_key = coalesce(at_as_of.stage, '')
    -- No day before the first opportunity (an as_of before any data gives no rows).
    where exists (select 1 from days)
),

snapshot as (
    select * from running
    union all
    select * from as_of_rows
)

select
    cast(snapshot.day as date) as snapshot_date,
    cast(snapshot.stage as {{ dbt.type_string() }}) as stage,
    cast(snapshot.stage_order as {{ dbt.type_int() }}) as stage_order,
    cast(snapshot.open_count as {{ dbt.type_bigint() }}) as open_count,
    cast(snapshot.open_amount as {{ type_double() }}) as open_amount,
    cast(snapshot.weighted_amount as {{ type_double() }}) as weighted_amount
from snapshot
left join stages
    on snapshot.stage = stages.stage
where stages.stage_category = 'open'
    or snapshot.open_count > 0
order by snapshot_date, stage_order, stage
