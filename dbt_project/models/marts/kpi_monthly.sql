-- One row per calendar month from the first month with data to the month of as_of.
-- Definitions: macros/pipeline_kpis.sql and _marts__models.yml.

{{ pipeline_kpis(by_owner=false) }}
