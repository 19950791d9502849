"""The data-hygiene rule catalog and its Great Expectations 1.x suites.

Every rule has a stable name (``<entity>.<what>``), a level and a default severity:

- ``row`` rules judge single rows: failing rows can be quarantined, the rest published;
- ``batch`` rules judge the batch as a whole: a failure rejects all of it (an unmapped
  stage label, a duplicated id after deduplication).

A user changes a rule's severity by name (``quality.severity`` in the config); ``error``
stops what fails, ``warn`` publishes it and reports it.

How it runs. GX 1.x has no working DuckDB SQL datasource, so the loader hands each batch's
staged rows over as a pandas frame (the *frame contract* below) and ``validate_batch``
runs the entity's suite on it: one ``ExpectationSuite`` per entity, one
``batch.validate`` call per frame, on one ephemeral context built once per process. GX
costs seconds to import, so it is imported on the first validation, never at module
import time.

The frame contract (one batch's staged rows of one entity, before publishing):

- every contract column of the entity (``ingestion.schema``), typed where it parsed and
  NULL where it was missing or did not parse; dtypes as DuckDB's ``.df()`` gives them
  (object strings, datetime64 or object dates, float64/Int64, bool/object booleans);
  a contract column absent from the frame is read as all NULL;
- ``_source_row`` (int) and ``_source_file`` (str, optional): the pair identifies a row,
  and failing rows are reported as ``(source_file, source_row)`` pairs (file ``None``
  when the frame has no ``_source_file``);
- ``_export_file`` and ``_export_line`` (str, optional): the CRM export file and line a
  converted row came from, and ``_export_column`` (str, optional) the column of a row
  derived from one cell; a failing row is then named by them (``row_reference``);
- ``<c>__parses`` (bool) for each non-string contract column ``c`` the file had: False
  where the raw text did not parse (absent: every value parsed); optionally ``<c>__raw``
  (the raw text), shown as the example of a parse failure;
- ``<c>__known`` (bool, True when ``c`` is NULL or the referenced row exists), required
  for each reference in ``REFERENCE_FLAGS``;
- ``stage_changes.opportunity_created_at`` (timestamp, NaT when unknown) and
  ``contacts.email__seen_before`` (bool, True when another contact already in raw has
  the same e-mail, case-insensitive), required; ``contacts.email__seen_in_batch``
  (bool, True when another row of the batch has it), optional: without it the frame is
  the whole batch and the duplicates are found in it;
- ``key__conflicting`` (bool) for each entity of ``ONE_VERSION_PER_KEY`` (quotas), required:
  True when the batch's file holds another row with the same key and different values.
  The loader keeps every such version in the frame (one row per distinct version; an
  identical repeat is a duplicate), so that all of them fail
  ``<entity>.key_not_conflicting``; ``<entity>.key_unique`` skips them.

``required_flag_columns(entity)`` lists the required extra columns of an entity;
``frame_columns(entity)`` every column the rules read (select just those to save memory).

Modules: ``rules`` (the rule catalog: rules, severities, the columns they read),
``frame`` (the frame contract's reader and the derived check columns), ``gx`` (Great
Expectations execution: ``validate_batch``), ``outcomes`` (outcomes and their messages,
``merge_outcomes``), ``pool`` (``ValidationPool``: the parts of a large batch validated
on worker processes). The package exports the gate's public API below;
the project's own modules import from the module that defines a name. The Spark runner
(``ingestion.spark.hygiene``) shares the catalog (``rules``) and GX's naming and error
check (``gx``) through their public names.

May import: duckdb, numpy, pandas, great_expectations (lazily, inside ``gx``),
ingestion.errors, ingestion.schema, ingestion.stages, ingestion.warehouse; nothing of
Dagster. Within the package: rules ← frame ← outcomes ← gx ← pool.
"""

from ingestion.hygiene.frame import arrow_backed
from ingestion.hygiene.gx import validate_batch
from ingestion.hygiene.outcomes import Outcome, mask_value, merge_outcomes, row_reference
from ingestion.hygiene.rules import (
    REFERENCE_FLAGS,
    HygieneError,
    Level,
    Rule,
    Severity,
    catalog,
    check_severities,
    frame_columns,
    mapped_labels,
    required_flag_columns,
    rules_for,
)

__all__ = [
    "REFERENCE_FLAGS",
    "HygieneError",
    "Level",
    "Outcome",
    "Rule",
    "Severity",
    "arrow_backed",
    "catalog",
    "check_severities",
    "frame_columns",
    "mapped_labels",
    "mask_value",
    "merge_outcomes",
    "required_flag_columns",
    "row_reference",
    "rules_for",
    "validate_batch",
]
