-- Stage history events with their canonical stage (labels mapped through raw.stage_map).
-- All events, before and after as_of: whether an opportunity has any history at all is
-- decided on the full history (int_stage_changes_unioned), the as_of cut comes after.
-- An unmapped label is a blocking failure upstream (hygiene) and here (the relationships
-- test on stg_crm__stage_changes), so the inner join drops nothing in a published run.
-- A view: read once, by int_stage_changes_unioned.
{{ config(materialized='view') }}

with stage_changes as (
    select * from {{ ref('stg_crm__stage_changes') }}
),

stage_map as (
    select * from {{ ref('stg_crm__stage_map') }}
)

select
    stage_changes.opportunity_id,
    stage_changes.changed_at,
    stage_map.stage,
    stage_map.stage_order,
    stage_map.stage_category,
    stage_map.stage_probability,
    stage_changes.change_id
from stage_changes
inner join stage_map
    on stage_changes.stage_label_normalized = stage_map.source_label
