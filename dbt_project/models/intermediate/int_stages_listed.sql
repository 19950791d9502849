-- The canonical stages of the stage map, one row per stage (the map has one row per label).
-- A stage defined twice with different attributes shows up as a duplicate `stage` here and
-- fails the uniqueness test in _intermediate__models.yml. A view: ten-odd rows.
{{ config(materialized='view') }}

with stage_map as (
    select * from {{ ref('stg_crm__stage_map') }}
)

select distinct
    stage,
    stage_order,
    stage_category,
    stage_probability
from stage_map
