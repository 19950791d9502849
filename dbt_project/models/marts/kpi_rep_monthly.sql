-- One row per owner (rep) and calendar month: the kpi_monthly measures per owner, plus
-- activities_count and avg_touchpoints_per_won. Owners: every owner_id of a non-deleted
-- opportunity or an activity; opportunities without an owner appear only in kpi_monthly.
-- Definitions: macros/pipeline_kpis.sql and _marts__models.yml.

{{ pipeline_kpis(by_owner=true) }}
