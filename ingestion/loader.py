"""Load a landing directory of canonical batches into ``raw.*``, through the hygiene gate.

Batches are processed in name order, each on its own:

1. every file is read once and typed with SQL (one pass; values that do not parse
   become NULL and are flagged);
2. within the file, the newest version of each key is kept, and only versions newer
   than the stored one are candidates (the rest are duplicates: nothing new). For the
   entities of ``ONE_VERSION_PER_KEY`` (quotas) a key with several different versions in
   the file keeps all of them (one per distinct version), flagged, for the gate to
   quarantine every one;
3. the candidates are validated with the Great Expectations suite of their entity
   (``ingestion.hygiene``), entities in reference order so that a stage change can
   see the opportunity of the same batch;
4. a batch-level ERROR (a missing required column, an unmapped stage label, an
   unreadable file, too many bad rows) rejects the whole batch: nothing of it is
   published and it is retried on the next run. Otherwise rows failing a row-level
   ERROR rule go to ``quality.quarantine`` with their raw values and reasons, and
   the rest is merged into ``raw.*``;
5. every file reconciles in ``quality.ingestion_log``: input rows = loaded +
   quarantined + duplicates + rejected; every rule's outcome is appended to
   ``quality.validation_results``.

Merge rules (docs/data-model.md): a row supersedes the stored row with the same key when its
``updated_at`` is later, ties going to the later batch, then the later row of the file;
event entities (stage changes, activities) accumulate, one row per key, a later batch's
different row replacing the stored one; for quotas, two different rows of one key in one
file are a conflict, quarantined whole (step 2). A file already
published (same path, same content hash) is skipped, so re-running is a no-op. The whole
run is one transaction: an error leaves the warehouse as it was.

Why one module (~900 lines): the steps above share one connection, one transaction and
the temporary tables of the batch being loaded (``_Staged``, ``_RunContext``); split
apart, each step would take the same state as arguments and the transaction boundary
would be spread over modules. The landing reader and the gate it calls live elsewhere
(``ingestion.landing``, ``ingestion.hygiene``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ingestion.errors import LandingError
from ingestion.landing.layout import LandingFile, discover, file_sha256
from ingestion.landing.reader import quote_ident, read_error, read_header, scan_sql
from ingestion.schema import (
    ENTITIES,
    EXPORT_LINEAGE,
    LINEAGE_COLUMNS,
    ONE_VERSION_PER_KEY,
    PROCESSING_ORDER,
    REFERENCES,
    SQL_TYPES,
    Column,
    Entity,
)
from ingestion.stages import StageMap, normalize_label
from ingestion.warehouse import QUALITY_SCHEMA, RAW_SCHEMA, create_raw_tables

_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")

# What tells two versions of a key apart, for the entities of ONE_VERSION_PER_KEY. A
# currency code is one code in any case and with spaces around it (docs/data-model.md).
# Rows per frame the hygiene gate validates at once: a larger batch is split by a hash of
# its key (bench/RESULTS.md, "Scaling": about 1 GB of frame and GX work per part).
VALIDATION_PART_ROWS = 1_000_000
# Several new batches are validated in one pass per entity (``_ingest_together``); off:
# batch by batch, the reference path it must match (tests compare the two).
GROUP_BATCHES = True
# At most this many bytes of landing files validated together (see _groups).
GROUP_MAX_BYTES = 100 * 2**20
_VERSION_VALUES: dict[str, str] = {"quotas": "row(amount, upper(trim(currency)))"}
assert set(_VERSION_VALUES) == ONE_VERSION_PER_KEY, "every such entity needs its values"


@dataclass
class FileResult:
    """One landing file's fate in this run (one row of quality.ingestion_log)."""

    file: LandingFile
    sha256: str
    status: str = "published"  # or "rejected"
    size: int | None = None  # the file's size and mtime (ns) when read
    mtime_ns: int | None = None
    input_rows: int = 0
    loaded_rows: int = 0
    quarantined_rows: int = 0
    duplicate_rows: int = 0
    rejected_rows: int = 0
    # Records missing from a full export, marked deleted (not counted in input_rows).
    deleted_rows: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass
class IngestionReport:
    """What one ingestion did."""

    files: list[FileResult] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)

    @property
    def batches(self) -> list[str]:
        return sorted({r.file.batch_id for r in self.files})

    @property
    def rejected_batches(self) -> dict[str, list[str]]:
        """batch id → reasons, for every batch that was not published."""
        rejected: dict[str, list[str]] = {}
        for r in self.files:
            if r.status == "rejected":
                rejected.setdefault(r.file.batch_id, []).extend(r.reasons)
        return rejected

    def rows(self, entity: str, what: str = "input_rows") -> int:
        return sum(getattr(r, what) for r in self.files if r.file.entity.name == entity)

    def __str__(self) -> str:
        if not self.files:
            return f"no new files ({len(self.skipped_files)} already ingested)"
        published = [r for r in self.files if r.status == "published"]
        parts = [
            f"{len(published)} of {len(self.files)} new files published from "
            f"{len(self.batches)} batch(es)",
            f"{sum(r.input_rows for r in self.files):,} rows read",
            f"{sum(r.loaded_rows for r in self.files):,} loaded",
            f"{sum(r.quarantined_rows for r in self.files):,} quarantined",
            f"{sum(r.duplicate_rows for r in self.files):,} duplicates",
        ]
        deleted = sum(r.deleted_rows for r in self.files)
        if deleted:
            parts.append(f"{deleted:,} missing from a full export marked deleted")
        if self.rejected_batches:
            parts.append(f"rejected batches: {', '.join(self.rejected_batches)}")
        return "; ".join(parts)


@dataclass(frozen=True)
class _Staged:
    """A file read and typed into a temporary table (or the reason it could not be)."""

    result: FileResult
    table: str | None
    header: list[str]
    candidates: str | None = None


def ingest(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    *,
    stage_map: StageMap | None = None,
    source: str = "crm",
    source_timezone: str = "UTC",
    severities: Mapping[str, str] | None = None,
    quarantine_max_share: float = 0.05,
    run_id: str | None = None,
    ingested_at: datetime | None = None,
    until_batch: str | None = None,
    batches: Collection[str] | None = None,
    full_export: bool = False,
    value_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> IngestionReport:
    """Ingest every batch not published before; all or nothing in one transaction.

    Timestamps without an offset are read in ``source_timezone`` and stored as UTC.
    ``severities`` overrides rules' default severities by rule name. With
    ``until_batch``, batches after it (in name order) are left for a later run: a run
    launched for one batch does not pick up an export still being written. With
    ``batches``, only the batches it names are read (an adapter's converted batches whose
    export is still in its landing); the others are not the run's input. With
    ``full_export``, every batch holds all records of the entities it has a file for, so
    a record of this source missing from such a file was deleted in the CRM: it is marked
    ``is_deleted`` (soft delete; nothing is physically removed). ``value_labels`` maps a
    CRM's own values of a value-set column ("leads.status": {"Nurturing": "working"}),
    compared like stage labels, before validation.
    """
    files = discover(landing)
    create_raw_tables(con)
    ingested_at = (ingested_at or datetime.now(UTC)).replace(tzinfo=None)
    report = IngestionReport()
    # A file is known by where it sits and what it holds. Only published files count:
    # a rejected batch is validated again on every run until it passes.
    log = con.execute(
        f"SELECT source_file, content_sha256, file_size, file_mtime_ns "
        f"FROM {QUALITY_SCHEMA}.ingestion_log WHERE status = 'published'"
    ).fetchall()
    published = {(path, sha) for path, sha, _size, _mtime in log}
    # A file with the size and mtime it had when published is that file: not hashed again.
    unchanged = {(path, size, mtime): sha for path, sha, size, mtime in log if size is not None}
    to_load: dict[str, list[tuple[LandingFile, str, os.stat_result]]] = {}
    for f in files:
        if until_batch is not None and f.batch_id > until_batch:
            continue
        if batches is not None and f.batch_id not in batches:
            continue
        stat = f.path.stat()
        sha = unchanged.get((f.relative, stat.st_size, stat.st_mtime_ns)) or file_sha256(f.path)
        if (f.relative, sha) in published:
            report.skipped_files.append(f.relative)
        else:
            to_load.setdefault(f.batch_id, []).append((f, sha, stat))

    stage_map = stage_map or StageMap()
    labels = set(stage_map.label_map())
    context = _RunContext(
        source=source,
        ingested_at=ingested_at,
        run_id=run_id or "",
        labels=labels,
        severities=dict(severities or {}),
        quarantine_max_share=quarantine_max_share,
        full_export=full_export,
        value_labels={k: dict(v) for k, v in (value_labels or {}).items()},
    )
    _write_stage_map(con, stage_map)
    seq = 0
    for group in _groups([(b, to_load[b]) for b in sorted(to_load)]):
        if GROUP_BATCHES and len(group) > 1:
            together = _ingest_together(
                con, [files for _, files in group], context, source_timezone
            )
            if together is not None:
                report.files.extend(together)
                continue
        for _batch_id, files in group:
            seq += 1
            # Reading runs outside the transaction: in DuckDB a failed statement aborts
            # the open transaction, and a file that cannot be read must only reject its
            # batch. Temporary tables are private to this connection: nothing published.
            staged = _stage_batch(con, files, context, source_timezone, seq)
            # Each batch is published whole, with its log rows, or not at all.
            con.execute("BEGIN TRANSACTION")
            try:
                results = _validate_and_publish(con, staged, context)
                _write_log(con, results, context)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                _drop_temporaries(con, staged)
            report.files.extend(results)
    for table in (*ENTITIES, "stage_map"):
        (count,) = con.execute(f"SELECT count(*) FROM {RAW_SCHEMA}.{table}").fetchone()
        report.table_rows[table] = count
    return report


@dataclass(frozen=True)
class _RunContext:
    source: str
    ingested_at: datetime
    run_id: str
    labels: set[str]
    severities: dict[str, str]
    quarantine_max_share: float
    full_export: bool = False
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)


def _groups(batches: list[tuple[str, Any]]) -> list[list[tuple[str, Any]]]:
    """Consecutive batches whose files add up to at most ``GROUP_MAX_BYTES``, to be
    validated together; a larger batch is a group of its own. Together pays off where
    GX's fixed cost per validation dominates (small batches). With a large batch in it,
    the one open transaction holding every batch's rows costs more than it saves: a
    1M-opportunity first load of 29 batches took 476 s together, 155 s of it matching
    candidates and 106 s publishing against the uncommitted rows (bench/RESULTS.md)."""
    groups: list[list[tuple[str, Any]]] = []
    size = 0
    for batch in batches:
        batch_size = sum(stat.st_size for _f, _sha, stat in batch[1])
        if groups and size + batch_size <= GROUP_MAX_BYTES and batch_size <= GROUP_MAX_BYTES:
            groups[-1].append(batch)
            size += batch_size
        else:
            groups.append([batch])
            size = batch_size
    return groups


def _stage_batch(
    con: duckdb.DuckDBPyConnection,
    files: list[tuple[LandingFile, str, os.stat_result]],
    ctx: _RunContext,
    source_timezone: str,
    seq: int,
) -> list[_Staged]:
    """Read and type a batch's files into temporary tables, in processing order."""
    order = {name: n for n, name in enumerate(PROCESSING_ORDER)}
    files_in_order = sorted(files, key=lambda fs: order[fs[0].entity.name])
    con.execute(f"SET TimeZone = '{source_timezone.replace(chr(39), '')}'")
    try:
        staged = [
            _stage_file(con, f, sha, f"_staged_{seq}_{n}", ctx)
            for n, (f, sha, _stat) in enumerate(files_in_order)
        ]
    finally:
        con.execute("SET TimeZone = 'UTC'")
    for s, (_f, _sha, stat) in zip(staged, files_in_order, strict=True):
        s.result.size, s.result.mtime_ns = stat.st_size, stat.st_mtime_ns
    return staged


def _ingest_together(
    con: duckdb.DuckDBPyConnection,
    batches: list[list[tuple[LandingFile, str, os.stat_result]]],
    ctx: _RunContext,
    source_timezone: str,
) -> list[FileResult] | None:
    """Several new batches (a first load, a catch-up) with one Great Expectations pass
    per entity instead of one per batch and entity: GX's fixed cost per validation (about
    15 ms per expectation) made a 30-batch first load of 10k opportunities take 20× its
    floor.

    Each batch is published in order, in one transaction, as the batch-by-batch path
    would if every batch passed: its candidates against raw as the earlier batches left
    it, its frame (reference flags included) built before it is published. Then every
    entity's frames of all the batches are validated together, each file's outcomes as
    if alone (``validate_batch(by_file=True)``). Committed only if no ERROR rule failed
    anywhere: what was published is then exactly what batch by batch gives. Otherwise
    (a quarantined row or a rejected batch changes what the later batches see) it is all
    rolled back and None says to go batch by batch. Files that cannot be read: None."""
    from ingestion.hygiene.gx import validate_batch
    from ingestion.hygiene.outcomes import merge_outcomes

    staged_batches = [
        _stage_batch(con, files, ctx, source_timezone, seq) for seq, files in enumerate(batches)
    ]
    everything = [s for staged in staged_batches for s in staged]
    frames: dict[str, list[str]] = {}
    if any(s.table is None or s.result.reasons for s in everything):
        _drop_temporaries(con, everything)
        return None
    con.execute("BEGIN TRANSACTION")
    try:
        for seq, staged in enumerate(staged_batches):
            for n, s in enumerate(staged):
                entity = s.result.file.entity
                s = staged[n] = _with_candidates(con, s)
                frame = f"_frame_{seq}_{entity.name}"
                con.execute(f"CREATE TEMP TABLE {frame} AS {_frame_sql(con, entity, s)}")
                frames.setdefault(entity.name, []).append(frame)
                # Later entities of this batch may reference these rows.
                con.execute(f"DROP TABLE IF EXISTS _batch_{entity.name}")
                con.execute(
                    f"CREATE TEMP TABLE _batch_{entity.name} AS SELECT * FROM {s.candidates}"
                )
            for s in staged:
                _publish(con, s, [], ctx)
            _drop_temporaries(con, staged)
        outcomes: dict[str, tuple[Any, ...]] = {}
        for name, tables in frames.items():
            entity = ENTITIES[name]
            union = " UNION ALL BY NAME ".join(f"SELECT * FROM {t}" for t in tables)
            # fetchall: a result left open would block the next query (DuckDB 2).
            ((rows,),) = con.execute(f"SELECT count(*) FROM ({union})").fetchall()
            parts = max(1, -(-rows // VALIDATION_PART_ROWS))
            per_file: dict[str, list[Any]] = {}
            for index in range(parts):
                frame = _frame_part(con, entity, union, (index, parts))
                if len(frame):
                    found = validate_batch(
                        name, frame, labels=ctx.labels, severities=ctx.severities, by_file=True
                    )
                    for file, outs in found.items():
                        per_file.setdefault(file, []).append(outs)
                del frame
            for file, parts_of_file in per_file.items():
                outcomes[file] = merge_outcomes(parts_of_file)
            # A file whose rows were all duplicates is judged on no rows, as alone.
            empty = None
            for s in everything:
                if s.result.file.entity.name == name and s.result.file.relative not in outcomes:
                    if empty is None:
                        none = _frame_part(
                            con, entity, f"SELECT * FROM {tables[0]} LIMIT 0", (0, 1)
                        )
                        empty = validate_batch(
                            name, none, labels=ctx.labels, severities=ctx.severities
                        )
                    outcomes[s.result.file.relative] = empty
        failed = any(
            not o.success and o.severity == "error" for outs in outcomes.values() for o in outs
        )
        if failed:
            con.execute("ROLLBACK")
            return None
        _insert_outcomes(
            con,
            [
                row
                for s in everything
                for row in _outcome_rows(s.result, outcomes[s.result.file.relative], ctx)
            ],
        )
        results = [s.result for s in everything]
        _write_log(con, results, ctx)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for tables in frames.values():
            for t in tables:
                con.execute(f"DROP TABLE IF EXISTS {t}")
        _drop_temporaries(con, everything)
    return results


def _validate_and_publish(
    con: duckdb.DuckDBPyConnection, staged: list[_Staged], ctx: _RunContext
) -> list[FileResult]:
    """Validate one staged batch and publish it, or reject all of it."""

    quarantine: dict[str, list[tuple[int, list[str]]]] = {}
    for n, s in enumerate(staged):
        if s.table is None:
            continue
        entity = s.result.file.entity
        s = staged[n] = _with_candidates(con, s)
        outcomes = _validate(con, entity, s, ctx)
        _record_outcomes(con, s.result, outcomes, ctx)
        bad_rows: dict[int, list[str]] = {}
        for o in outcomes:
            if o.success or o.severity != "error":
                continue
            if o.rule.level == "batch":
                s.result.reasons.append(o.describe())
            else:
                for _file, row in o.unexpected_rows:
                    bad_rows.setdefault(int(row), []).append(o.rule.name)
        share = len(bad_rows) / s.result.input_rows if s.result.input_rows else 0.0
        if share > ctx.quarantine_max_share:
            s.result.reasons.append(
                f"{s.result.file.relative}: {len(bad_rows):,} of {s.result.input_rows:,} rows "
                f"({share:.1%}) fail row-level ERROR rules, above quality.quarantine_max_share "
                f"({ctx.quarantine_max_share:.1%}); fix the export or raise the threshold."
            )
        quarantine[s.result.file.relative] = sorted(bad_rows.items())
        # Later entities of this batch may reference these rows.
        con.execute(f"DROP TABLE IF EXISTS _batch_{entity.name}")
        con.execute(
            f"CREATE TEMP TABLE _batch_{entity.name} AS SELECT * FROM {s.candidates} "
            f"WHERE _source_row NOT IN (SELECT unnest(?::BIGINT[]))",
            [list(bad_rows)],
        )

    reasons = [r for s in staged for r in s.result.reasons]
    if reasons:
        for s in staged:
            s.result.status = "rejected"
            s.result.loaded_rows = s.result.quarantined_rows = s.result.duplicate_rows = 0
            s.result.rejected_rows = s.result.input_rows
            if not s.result.reasons:
                s.result.reasons.append("another file of this batch failed (see its reasons)")
    else:
        for s in staged:
            if s.table is not None:
                _publish(con, s, quarantine[s.result.file.relative], ctx)
    return [s.result for s in staged]


def _validate(
    con: duckdb.DuckDBPyConnection, entity: Entity, s: _Staged, ctx: _RunContext
) -> tuple[Any, ...]:
    """Every candidate row through the entity's suite, in parts of at most
    ``VALIDATION_PART_ROWS`` rows: memory stays bounded whatever the batch's size (a
    first load's 10M activities would otherwise be one frame of several GB)."""
    from ingestion.hygiene.gx import validate_batch
    from ingestion.hygiene.outcomes import merge_outcomes

    ((rows,),) = con.execute(f"SELECT count(*) FROM {s.candidates}").fetchall()
    parts = max(1, -(-rows // VALIDATION_PART_ROWS))
    sql = _frame_sql(con, entity, s)
    if parts > 1:
        # The flags (reference joins) computed once, not once per part.
        con.execute(f"CREATE OR REPLACE TEMP TABLE _frame_parts AS {sql}")
        sql = "SELECT * FROM _frame_parts"
    results = []
    try:
        for index in range(parts):
            frame = _frame_part(con, entity, sql, (index, parts))
            results.append(
                validate_batch(entity.name, frame, labels=ctx.labels, severities=ctx.severities)
            )
            del frame
    finally:
        con.execute("DROP TABLE IF EXISTS _frame_parts")
    return merge_outcomes(results)


def _drop_temporaries(con: duckdb.DuckDBPyConnection, staged: list[_Staged]) -> None:
    for s in staged:
        con.execute(f"DROP TABLE IF EXISTS {s.table or '_none'}")
        con.execute(f"DROP TABLE IF EXISTS {s.table or '_none'}_candidates")
    for name in ENTITIES:
        con.execute(f"DROP TABLE IF EXISTS _batch_{name}")


def _write_stage_map(con: duckdb.DuckDBPyConnection, stage_map: StageMap) -> None:
    con.register("_stage_map_frame", stage_map.to_frame())
    try:
        con.execute(f"DELETE FROM {RAW_SCHEMA}.stage_map")
        con.execute(f"INSERT INTO {RAW_SCHEMA}.stage_map SELECT * FROM _stage_map_frame")
    finally:
        con.unregister("_stage_map_frame")


def parse_sql(col: Column, raw: str) -> str:
    """SQL that types one raw VARCHAR value; NULL where it does not parse."""
    v = f"NULLIF(trim({raw}), '')"
    if col.type == "string":
        return f"NULLIF({raw}, '')"
    if col.type == "timestamp":
        # Offsets convert to UTC; values without one are read in the session time zone.
        return f"timezone('UTC', TRY_CAST({v} AS TIMESTAMPTZ))"
    if col.type == "date":
        return f"coalesce(TRY_CAST({v} AS DATE), CAST(TRY_CAST({v} AS TIMESTAMPTZ) AS DATE))"
    if col.type == "double":
        return f"TRY_CAST({v} AS DOUBLE)"
    if col.type == "bigint":
        d = f"TRY_CAST({v} AS DOUBLE)"
        return f"CASE WHEN {d} = floor({d}) THEN CAST({d} AS BIGINT) END"
    if col.type == "boolean":
        t = ", ".join(f"'{x}'" for x in _TRUE)
        fl = ", ".join(f"'{x}'" for x in _FALSE)
        return f"CASE WHEN lower({v}) IN ({t}) THEN true WHEN lower({v}) IN ({fl}) THEN false END"
    raise AssertionError(col.type)


def _mapped_values(expr: str, mapping: Mapping[str, str]) -> str:
    """The value through the config's value_labels, compared as stage labels are."""
    key = f"lower(trim(regexp_replace({expr}, '\\s+', ' ', 'g')))"
    cases = " ".join(
        f"WHEN {_sql_literal(normalize_label(k))} THEN {_sql_literal(v)}"
        for k, v in mapping.items()
    )
    return f"CASE {key} {cases} ELSE {expr} END"


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _stage_file(
    con: duckdb.DuckDBPyConnection, f: LandingFile, sha: str, table: str, ctx: _RunContext
) -> _Staged:
    """Read and type one file into a temporary table shaped like its raw table, plus a
    ``<column>__parses`` flag per typed column. File-level problems reject the file."""
    result = FileResult(f, sha)
    try:
        header = read_header(con, f)
    except LandingError as exc:
        result.reasons.append(str(exc))
        return _Staged(result, None, [])
    by_name: dict[str, str] = {}
    for name in header:
        by_name.setdefault(name.strip().lower(), name)
    missing = [c for c in f.entity.required_columns if c not in by_name]
    if missing:
        result.reasons.append(
            f"{f.path}: required column(s) {', '.join(missing)} missing from the header "
            f"(found: {', '.join(header) or 'none'}). Add them; the {f.entity.name} contract "
            f"is in docs/data-model.md."
        )
        return _Staged(result, None, header)
    extras = [by_name[k] for k in by_name if k not in f.entity.column_names]
    raw = {
        c.name: f"CAST({quote_ident(by_name[c.name])} AS VARCHAR)"
        for c in f.entity.columns
        if c.name in by_name
    }
    for name, expr in raw.items():
        mapping = ctx.value_labels.get(f"{f.entity.name}.{name}")
        if mapping:
            raw[name] = _mapped_values(expr, mapping)
    typed, flags = [], []
    for c in f.entity.columns:
        if c.name not in raw:
            typed.append(f"CAST(NULL AS {SQL_TYPES[c.type]}) AS {c.name}")
            continue
        parsed = parse_sql(c, raw[c.name])
        typed.append(f"CAST({parsed} AS {SQL_TYPES[c.type]}) AS {c.name}")
        if c.type != "string":
            flags.append(
                f"({parsed} IS NOT NULL OR NULLIF(trim({raw[c.name]}), '') IS NULL) "
                f"AS {c.name}__parses"
            )
    lineage = {
        "_source": f"'{ctx.source}'",
        "_batch_id": f"'{f.batch_id}'",
        "_source_file": f"'{f.relative}'",
        "_source_row": "_source_row",
        "_ingested_at": f"TIMESTAMP '{ctx.ingested_at.isoformat(sep=' ')}'",
        "_attributes": _json_object(extras),
    }
    columns = typed + [f"{lineage[name]} AS {name}" for name, _ in LINEAGE_COLUMNS] + flags
    # A converted CRM export's file and line of each row (ingestion.sources.export): kept
    # in _attributes like any extra column, and beside it while staged, so the gate names
    # the user's own file and line instead of the converted file.
    columns += [
        f"CAST({quote_ident(by_name[c])} AS VARCHAR) AS {c}" for c in EXPORT_LINEAGE if c in by_name
    ]
    try:
        con.execute(
            f"CREATE TEMP TABLE {table} AS SELECT {', '.join(columns)} "
            f"FROM (SELECT *, row_number() OVER () AS _source_row FROM {scan_sql(f, header)})"
        )
    except duckdb.Error as exc:
        result.reasons.append(str(read_error(f, exc)))
        return _Staged(result, None, header)
    (result.input_rows,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return _Staged(result, table, header)


def _json_object(columns: list[str]) -> str:
    if not columns:
        return "CAST(NULL AS VARCHAR)"
    pairs = ", ".join(
        f"'{c.replace(chr(39), chr(39) * 2)}', CAST({quote_ident(c)} AS VARCHAR)" for c in columns
    )
    return f"CAST(json_object({pairs}) AS VARCHAR)"


def _version(entity: Entity, alias: str = "") -> list[str]:
    """The supersede order as a tuple: latest updated_at (a missing one loses), then the
    later batch, then the later row of the file."""
    parts = [f"{alias}_batch_id", f"{alias}_source_row"]
    if "updated_at" in entity.column_names:
        parts.insert(0, f"coalesce({alias}updated_at, TIMESTAMP '-infinity')")
    return parts


def _with_candidates(con: duckdb.DuckDBPyConnection, s: _Staged) -> _Staged:
    """The rows that would change raw: newest per key in the file, newer than the stored
    row and different from it (an identical re-export is a duplicate, not an update).

    Rows with a missing key cannot be matched; they stay candidates (and fail the
    not-null rule). Everything else that is not a candidate is a duplicate.

    An entity of ``ONE_VERSION_PER_KEY`` gets the flag ``key__conflicting``: a key the
    file holds with different values keeps one row per distinct version, each a
    candidate whatever raw holds (all of them fail ``<entity>.key_not_conflicting``);
    an identical repeat of a version is still a duplicate.
    """
    entity = s.result.file.entity
    target = f"{RAW_SCHEMA}.{entity.name}"
    key = ", ".join(entity.key)
    null_key = " OR ".join(f"{k} IS NULL" for k in entity.key)
    newest_first = ", ".join(f"{part} DESC" for part in _version(entity))
    matches = " AND ".join(f"t.{k} = n.{k}" for k in entity.key)
    newer = f"row({', '.join(_version(entity, 'n.'))}) > row({', '.join(_version(entity, 't.'))})"
    changed = (
        f"row({', '.join('n.' + c for c in entity.column_names)}) IS DISTINCT FROM "
        f"row({', '.join('t.' + c for c in entity.column_names)})"
    )
    candidates = f"{s.table}_candidates"
    flag, per_version, conflicting = "", "", ""
    if entity.name in ONE_VERSION_PER_KEY:
        values = _VERSION_VALUES[entity.name]
        flag = (
            f", (NOT ({null_key}) AND count(DISTINCT {values}) OVER (PARTITION BY {key}) > 1) "
            f"AS key__conflicting"
        )
        per_version = f", CASE WHEN key__conflicting THEN {values} END"
        conflicting = "n.key__conflicting OR "
    con.execute(
        f"""CREATE TEMP TABLE {candidates} AS
            WITH flagged AS (SELECT *{flag} FROM {s.table}),
            newest AS (
                SELECT * FROM flagged
                QUALIFY {null_key}
                    OR row_number() OVER (
                        PARTITION BY {key}{per_version} ORDER BY {newest_first}
                    ) = 1
            )
            SELECT n.* FROM newest n LEFT JOIN {target} t ON {matches}
            WHERE t.{entity.key[0]} IS NULL OR {conflicting}({newer} AND {changed})"""
    )
    (count,) = con.execute(f"SELECT count(*) FROM {candidates}").fetchone()
    s.result.duplicate_rows = s.result.input_rows - count
    return _Staged(s.result, s.table, s.header, candidates)


def _frame_part(
    con: duckdb.DuckDBPyConnection, entity: Entity, sql: str, part: tuple[int, int]
) -> Any:
    """The rows of a frame query as pandas, in file and row order (so that a message's
    examples are the same on every run). ``part`` (i, n): only the rows whose key hashes
    to i of n, so that a large batch is validated in parts of bounded memory, each
    holding every row of its keys."""
    from ingestion.hygiene.frame import arrow_backed

    index, parts = part
    where = f"WHERE hash({', '.join(entity.key)}) % {parts} = {index}" if parts > 1 else ""
    # Through Arrow: text stays in Arrow buffers instead of a Python object per value.
    return arrow_backed(
        con.sql(
            f"SELECT * FROM ({sql}) {where} ORDER BY _source_file, _source_row"
        ).to_arrow_table()
    )


def _frame_sql(con: duckdb.DuckDBPyConnection, entity: Entity, s: _Staged) -> str:
    """The candidates with the flags the hygiene suite reads: whether each reference
    resolves (in raw or among this batch's accepted rows), the creation time of a stage
    change's opportunity, whether a contact's e-mail is already taken."""
    from ingestion.hygiene.rules import frame_columns

    flags = []
    joins = []
    for column, ref_entity, ref_key in REFERENCES.get(entity.name, ()):
        found = [
            f"EXISTS (SELECT 1 FROM {RAW_SCHEMA}.{ref_entity} r WHERE r.{ref_key} = c.{column})"
        ]
        if _batch_table_exists(con, ref_entity):
            found.append(
                f"EXISTS (SELECT 1 FROM _batch_{ref_entity} b WHERE b.{ref_key} = c.{column})"
            )
        flags.append(f"(c.{column} IS NULL OR {' OR '.join(found)}) AS {column}__known")
    if entity.name == "stage_changes":
        joins.append(
            f"LEFT JOIN {RAW_SCHEMA}.opportunities ro ON ro.opportunity_id = c.opportunity_id"
        )
        created = "ro.created_at"
        if _batch_table_exists(con, "opportunities"):
            joins.append(
                "LEFT JOIN _batch_opportunities bo ON bo.opportunity_id = c.opportunity_id"
            )
            created = "coalesce(bo.created_at, ro.created_at)"
        flags.append(f"{created} AS opportunity_created_at")
    if entity.name == "contacts":
        flags.append(
            f"EXISTS (SELECT 1 FROM {RAW_SCHEMA}.contacts o WHERE lower(trim(o.email)) = "
            f"lower(trim(c.email)) AND o.contact_id <> c.contact_id) AS email__seen_before"
        )
        # Over the whole batch, before it is split into parts by contact.
        flags.append(
            "(c.email IS NOT NULL AND count(*) OVER (PARTITION BY lower(trim(c.email))) > 1) "
            "AS email__seen_in_batch"
        )
    # Only the columns the rules read: at 10M rows every column held in pandas counts.
    available = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {s.candidates}").fetchall()} | {
        flag.rsplit(" AS ", 1)[1] for flag in flags
    }
    # The export file and line of an adapter's row name it in messages (optional).
    optional = (*EXPORT_LINEAGE, "email__seen_in_batch")
    wanted = [c for c in (*frame_columns(entity.name), *optional) if c in available]
    select = ", ".join(["c.*", *flags])
    return (
        f"SELECT {', '.join(wanted)} FROM (SELECT {select} FROM {s.candidates} c {' '.join(joins)})"
    )


def _batch_table_exists(con: duckdb.DuckDBPyConnection, entity: str) -> bool:
    """Whether this batch has accepted rows of ``entity`` validated earlier."""
    (count,) = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
        [f"_batch_{entity}"],
    ).fetchone()
    return count > 0


def _record_outcomes(
    con: duckdb.DuckDBPyConnection, result: FileResult, outcomes: Any, ctx: _RunContext
) -> None:
    _insert_outcomes(con, _outcome_rows(result, outcomes, ctx))


def _outcome_rows(result: FileResult, outcomes: Any, ctx: _RunContext) -> list[tuple[Any, ...]]:
    return [
        (
            ctx.run_id,
            ctx.ingested_at,
            result.file.batch_id,
            result.file.entity.name,
            result.file.relative,
            o.rule.name,
            o.rule.expectation,
            o.rule.column,
            o.severity,
            o.success,
            o.element_count,
            o.unexpected_count,
            o.observed,
            json.dumps(list(o.examples)),
            o.describe(),
        )
        for o in outcomes
    ]


_RESULT_COLUMNS = (
    "run_id", "validated_at", "batch_id", "entity", "source_file", "rule", "expectation",
    "column", "severity", "success", "element_count", "unexpected_count", "observed",
    "examples", "message",
)  # fmt: skip


def _insert_outcomes(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    _insert_rows(con, f"{QUALITY_SCHEMA}.validation_results", _RESULT_COLUMNS, rows)


def _insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], rows: list[tuple]
) -> None:
    """One INSERT for all the rows: DuckDB's executemany runs a statement per row (7 s
    for the outcomes of the 261 files of a 30-batch first load)."""
    if not rows:
        return
    import pyarrow as pa

    new_rows = pa.Table.from_pylist([dict(zip(columns, r, strict=True)) for r in rows])  # noqa: F841
    names = ", ".join(f'"{c}"' for c in columns)
    # DuckDB reads the local Arrow table by its name (a replacement scan).
    con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM new_rows")


def _publish(
    con: duckdb.DuckDBPyConnection,
    s: _Staged,
    bad_rows: list[tuple[int, list[str]]],
    ctx: _RunContext,
) -> None:
    """Quarantine the failing rows with their raw values, merge the rest into raw."""
    f = s.result.file
    entity = f.entity
    if bad_rows:
        con.execute("CREATE TEMP TABLE _bad (row BIGINT, rules VARCHAR)")
        con.executemany(
            "INSERT INTO _bad VALUES (?, ?)", [(row, json.dumps(rules)) for row, rules in bad_rows]
        )
        raw_json = _json_object(s.header)
        con.execute(
            f"""INSERT INTO {QUALITY_SCHEMA}.quarantine
                SELECT '{entity.name}', '{f.batch_id}', '{f.relative}', r._source_row,
                       r.raw_row, b.rules, ?, ?
                FROM (SELECT row_number() OVER () AS _source_row, {raw_json} AS raw_row
                      FROM {scan_sql(f, s.header)}) r
                JOIN _bad b ON b.row = r._source_row""",
            [ctx.ingested_at, ctx.run_id],
        )
        con.execute(f"DELETE FROM {s.candidates} WHERE _source_row IN (SELECT row FROM _bad)")
        con.execute("DROP TABLE _bad")
    s.result.quarantined_rows = len(bad_rows)
    target = f"{RAW_SCHEMA}.{entity.name}"
    columns = ", ".join([c.name for c in entity.columns] + [name for name, _ in LINEAGE_COLUMNS])
    matches = " AND ".join(f"t.{k} = n.{k}" for k in entity.key)
    con.execute(f"DELETE FROM {target} t USING {s.candidates} n WHERE {matches}")
    con.execute(f"INSERT INTO {target} SELECT {columns} FROM {s.candidates}")
    (s.result.loaded_rows,) = con.execute(f"SELECT count(*) FROM {s.candidates}").fetchone()
    if ctx.full_export and entity.kind == "versioned" and "is_deleted" in entity.column_names:
        _mark_missing_deleted(con, s, ctx)


def _mark_missing_deleted(con: duckdb.DuckDBPyConnection, s: _Staged, ctx: _RunContext) -> None:
    """Soft-delete this source's records that a full export no longer holds. Rows of the
    file that were quarantined are still in the CRM: the whole file counts, not what
    passed."""
    f = s.result.file
    (key,) = f.entity.key
    (s.result.deleted_rows,) = con.execute(
        f"""UPDATE {RAW_SCHEMA}.{f.entity.name}
            SET is_deleted = true, _batch_id = ?, _source_file = ?, _ingested_at = ?
            WHERE _source = ? AND NOT coalesce(is_deleted, false)
              AND {key} NOT IN (SELECT {key} FROM {s.table} WHERE {key} IS NOT NULL)""",
        [f.batch_id, f.relative, ctx.ingested_at, ctx.source],
    ).fetchone()


_LOG_COLUMNS = (
    "run_id", "batch_id", "entity", "source_file", "content_sha256", "status", "input_rows",
    "loaded_rows", "quarantined_rows", "duplicate_rows", "rejected_rows", "reasons",
    "ingested_at", "file_size", "file_mtime_ns",
)  # fmt: skip


def _write_log(con: duckdb.DuckDBPyConnection, results: list[FileResult], ctx: _RunContext) -> None:
    _insert_rows(
        con,
        f"{QUALITY_SCHEMA}.ingestion_log",
        _LOG_COLUMNS,
        [
            (
                ctx.run_id,
                r.file.batch_id,
                r.file.entity.name,
                r.file.relative,
                r.sha256,
                r.status,
                r.input_rows,
                r.loaded_rows,
                r.quarantined_rows,
                r.duplicate_rows,
                r.rejected_rows,
                json.dumps(r.reasons),
                ctx.ingested_at,
                r.size,
                r.mtime_ns,
            )
            for r in results
        ],
    )
