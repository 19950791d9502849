-- Every stage entry that counts as of as_of, for opportunities that exist at as_of:
-- the recorded stage changes plus the entries docs/kpis.md tells us to synthesize.
--
-- * No stage change at all (ever): one entry, the current stage at created_at when the
--   opportunity is open; when it is closed, its closed stage at its close time.
-- * History without any won/lost/post-sale entry although the opportunity is closed: the
--   closed stage is appended at its close time, so intervals and status agree with the
--   close_date fallback of closed_at.
--
-- Close time of a synthesized closing entry: close_date (00:00 UTC), never before
-- created_at nor before the last recorded change; without a close_date, the later of
-- created_at and the last recorded change. Entries after as_of are then dropped like any
-- other event (a deal closed after as_of is still open at as_of).
--
-- A view: its only reader is int_stage_intervals_built, and writing ~6M rows costs more
-- than computing them inline.
{{ config(materialized='view') }}

with opportunities as (
    select * from {{ ref('int_opportunities_converted') }}
),

recorded as (
    select mapped.*
    from {{ ref('int_stage_changes_mapped') }} as mapped
    inner join opportunities
        on mapped.opportunity_id = opportunities.opportunity_id
),

history_summary as (
    select
        opportunity_id,
        max(changed_at) as last_changed_at,
        max(case when stage_category <> 'open' then 1 else 0 end) as has_closing_entry
    from recorded
    group by opportunity_id
),

synthesized as (
    select
        opportunities.opportunity_id,
        case
            when opportunities.snapshot_stage_category = 'open' then opportunities.created_at
            else greatest(
                coalesce(
                    cast(opportunities.close_date as {{ dbt.type_timestamp() }}),
                    opportunities.created_at
                ),
                opportunities.created_at,
                coalesce(history_summary.last_changed_at, opportunities.created_at)
            )
        end as changed_at,
        opportunities.snapshot_stage as stage,
        opportunities.snapshot_stage_order as stage_order,
        opportunities.snapshot_stage_category as stage_category,
        opportunities.snapshot_stage_probability as stage_probability,
        cast(null as {{ dbt.type_string() }}) as change_id
    from opportunities
    left join history_summary
        on opportunities.opportunity_id = history_summary.opportunity_id
    where opportunities.snapshot_stage is not null
        and (
            history_summary.opportunity_id is null
            or (
                history_summary.has_closing_entry = 0
                and opportunities.snapshot_stage_category <> 'open'
            )
        )
),

unioned as (
    select
        opportunity_id, changed_at, stage, stage_order, stage_category, stage_probability,
        change_id, false as is_synthesized
    from recorded

    union all

    select
        opportunity_id, changed_at, stage, stage_order, stage_category, stage_probability,
        change_id, true as is_synthesized
    from synthesized
)

select *
from unioned
where changed_at <= {{ as_of() }}
