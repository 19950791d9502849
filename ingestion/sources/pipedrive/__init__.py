"""Pipedrive: CSV exports of the API's objects (field keys as headers) → canonical entities.

Files of a batch (names matched ignoring case, spaces and hyphens taken as underscores,
singular or plural): ``deals``, ``stages``, ``users``, ``activities``, the deal change log
(``deal_changes``, ``deal_changelog``, ``deal_flow`` or ``deal_updates``), and optionally
``organizations`` and ``persons``. Two files of one kind in a batch (``activity.csv`` and
``activities.csv``) are read together. A file the adapter does not read is named in the
notes, its rows counted: they would otherwise go nowhere without a word.

What Pipedrive does differently from the canonical model, and how it is bridged:

- A deal's stage is a ``stage_id``; the label the stage map sees is the stage's NAME
  (``stages.csv``), so the default labels below apply. An incremental export often has no
  ``stages.csv``: the newest one of this or an earlier batch of the landing is used.
- Won and lost are deal *statuses*, not stages: a won deal keeps its last pipeline stage.
  So a won (lost) deal's snapshot stage is ``closed_won`` (``closed_lost``), its Pipedrive
  stage name is kept as the attribute ``pipedrive_stage``, and its stage history gets an
  entry into ``closed_won`` at ``won_time`` (``closed_lost`` at ``lost_time``).
- The stage history comes from the deal change log (``field_key = stage_id`` rows). The
  first change's ``old_value`` is the stage the deal was created in, entered at
  ``add_time``. Change logs are usually incremental, so "first change" is decided over
  the change logs of this batch and every earlier batch of the landing.
- A batch without a deals file has its deals rebuilt from a complete change log (its
  ``add_time`` rows, see ``changelog._rebuild_deals``); every change-log row is used or set aside
  with a reason.
- One id on two different rows (a deal, an activity, a user ...) is a conflict: one row
  is kept by a stated rule, the others are set aside and named (``files._keep_one_per_id``).
- Timestamps are ``YYYY-MM-DD HH:MM:SS`` in UTC: they are marked as UTC (``Z``) so the
  pipeline's ``source_timezone`` (meant for offset-less CRM exports) does not shift them.

Every row set aside is counted per export file with its reason twice: in a conversion
note (printed as a warning with the run) and in the batch's reconciliation
(``Conversion.feed``, ``quality.source_reconciliation``).

Modules, along the adapter's seams: ``files`` (reading the export files, one row per id,
the stages file), ``changelog`` (the deal change log and the deals rebuilt from it),
``canonical`` (the SQL that makes canonical rows), ``convert`` (the batch: ``convert``
and ``DEFAULT_STAGE_LABELS``, re-exported here as the adapter's interface). The
``_``-prefixed names are private to the package; its modules share them.

May import: duckdb, ingestion.config, ingestion.errors, ingestion.landing.layout,
ingestion.sources.export. Within the package: files ← changelog, canonical ← convert.
"""

from ingestion.sources.pipedrive.convert import DEFAULT_STAGE_LABELS, convert

__all__ = ["DEFAULT_STAGE_LABELS", "convert"]
