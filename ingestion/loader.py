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

Several new small batches (a first load's daily batches, a catch-up) go through steps
2 to 5 together, set-based, one pass per entity (``_ingest_together``), each batch
judged against raw and the batches before it, with exactly the record batch by batch
gives; a batch with an ERROR failure goes alone, and the later ones are grouped again.

Merge rules (docs/data-model.md): a row supersedes the stored row with the same key when its
``updated_at`` is later, ties going to the later batch, then the later row of the file;
event entities (stage changes, activities) accumulate, one row per key, a later batch's
different row replacing the stored one; for quotas, two different rows of one key in one
file are a conflict, quarantined whole (step 2). A file already
published (same path, same content hash) is skipped, so re-running is a no-op. The whole
run is one transaction: an error leaves the warehouse as it was.

Why one module (~1,150 lines): the steps above, batch by batch and grouped, share one
connection, one transaction and the temporary tables of the batches being loaded
(``_Staged``, ``_RunContext``), and the grouped pass must stay rule for rule what batch
by batch does, best read side by side; split
apart, each step would take the same state as arguments and the transaction boundary
would be spread over modules. The landing reader and the gate it calls live elsewhere
(``ingestion.landing``, ``ingestion.hygiene``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ingestion.config import size_bytes
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
from ingestion.warehouse import (
    QUALITY_SCHEMA,
    QUARANTINE_EXPORT_COLUMNS,
    RAW_SCHEMA,
    create_raw_tables,
)

if TYPE_CHECKING:
    from ingestion.hygiene.pool import ValidationPool

_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")

# Rows per frame the hygiene gate validates at once: a larger batch is split by a hash of
# its key. Two parts are in memory at once (one validated, the next one read), about
# 0.5 GB with GX's work: with DuckDB's memory_limit that is the run's memory budget
# (bench/RESULTS.md, "Scaling").
VALIDATION_PART_ROWS = 500_000
# Rows per Arrow batch of the stream of frame parts (``_frame_parts``); a part is cut
# from as many as it spans.
STREAM_BATCH_ROWS = 131_072
# What each gate worker past the first takes out of DuckDB's memory_limit while the
# workers run (ingestion.hygiene.pool): a worker holds a part and GX's working copies
# (about 0.65 GiB at 500,000 activities, measured), while the run's own process no longer
# does; so a first load's whole process tree stays near what one process needs.
WORKER_MEMORY_BYTES = 512 * 2**20
# Several new batches are validated in one pass per entity (``_ingest_together``); off:
# batch by batch, the reference path it must match (tests compare the two).
GROUP_BATCHES = True
# At most this many bytes of landing files validated together (see _groups).
GROUP_MAX_BYTES = 256 * 2**20
# What tells two versions of a key apart, for the entities of ONE_VERSION_PER_KEY. A
# currency code is one code in any case and with spaces around it (docs/data-model.md).
_VERSION_VALUES: dict[str, tuple[str, ...]] = {"quotas": ("amount", "upper(trim(currency))")}
assert set(_VERSION_VALUES) == ONE_VERSION_PER_KEY, "every such entity needs its values"


@dataclass(frozen=True)
class SqlDialect:
    """How an engine spells the few things the supersede and dedup rules need in SQL
    (``candidates_sql``); the Spark loader passes Spark's."""

    row: str  # a tuple constructor; tuples compare field by field
    earliest: str  # the timestamp a missing updated_at counts as: it loses to any other
    # How many distinct values of {0} the window {1} holds.
    distinct_in_window: str


DUCKDB = SqlDialect(
    row="row",
    earliest="TIMESTAMP '-infinity'",
    distinct_in_window="count(DISTINCT {0}) OVER ({1})",
)

# What later entities of a batch read of its accepted rows (``_frame_sql``): the keys
# they reference, and an opportunity's creation time for its stage changes. A copy of
# every column of 10M activities that nothing references cost 20 s of a first load.
_REFERENCED_COLUMNS: dict[str, list[str]] = {}
for _refs in REFERENCES.values():
    for _column, _target, _key in _refs:
        _REFERENCED_COLUMNS.setdefault(_target, [])
        if _key not in _REFERENCED_COLUMNS[_target]:
            _REFERENCED_COLUMNS[_target].append(_key)
_REFERENCED_COLUMNS["opportunities"].append("created_at")


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


def run_files(
    files: list[LandingFile], until_batch: str | None, batches: Collection[str] | None
) -> Iterator[LandingFile]:
    """The landing files a run reads, on either engine: none of a batch after
    ``until_batch`` (still being written), and with ``batches`` only theirs."""
    for f in files:
        if until_batch is not None and f.batch_id > until_batch:
            continue
        if batches is not None and f.batch_id not in batches:
            continue
        yield f


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
    gate_workers: int = 1,
    memory_limit: str | None = None,
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
    compared like stage labels, before validation. ``gate_workers``: processes that
    validate the parts of a batch too large for one frame (``ingestion.hygiene.pool``);
    1 validates everything in this process. ``memory_limit``: DuckDB's cap as the
    connection was given it; while the workers run, DuckDB gets ``WORKER_MEMORY_BYTES``
    less per worker past the first, and the cap is restored after.
    """
    pool = _pool(gate_workers)
    limit = size_bytes(memory_limit) if memory_limit else None
    if limit and pool.parallel:
        share = max(limit - WORKER_MEMORY_BYTES * (gate_workers - 1), 2**30)
        # On a cursor: the loader's own connection is then streaming the parts.
        pool.on_start = lambda: con.cursor().execute(f"SET memory_limit = '{share // 2**20}MiB'")
    try:
        return _ingest(
            con, landing, stage_map=stage_map, source=source, source_timezone=source_timezone,
            severities=severities, quarantine_max_share=quarantine_max_share, run_id=run_id,
            ingested_at=ingested_at, until_batch=until_batch, batches=batches,
            full_export=full_export, value_labels=value_labels, pool=pool,
        )  # fmt: skip
    finally:
        started = pool.started
        pool.close()
        if limit and started:
            con.execute(f"SET memory_limit = '{memory_limit}'")


def _pool(workers: int) -> ValidationPool:
    # Imported here: the gate's package brings pandas and numpy.
    from ingestion.hygiene.pool import ValidationPool

    return ValidationPool(workers)


def _ingest(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    *,
    stage_map: StageMap | None,
    source: str,
    source_timezone: str,
    severities: Mapping[str, str] | None,
    quarantine_max_share: float,
    run_id: str | None,
    ingested_at: datetime | None,
    until_batch: str | None,
    batches: Collection[str] | None,
    full_export: bool,
    value_labels: Mapping[str, Mapping[str, str]] | None,
    pool: ValidationPool,
) -> IngestionReport:
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
    for f in run_files(files, until_batch, batches):
        stat = f.path.stat()
        sha = unchanged.get((f.relative, stat.st_size, stat.st_mtime_ns)) or file_sha256(f.path)
        if (f.relative, sha) in published:
            report.skipped_files.append(f.relative)
        else:
            to_load.setdefault(f.batch_id, []).append((f, sha, stat))

    if to_load:
        load_bytes = sum(st.st_size for batch in to_load.values() for _f, _sha, st in batch)
        # A spare worker started with the run has imported GX meanwhile: a small load is
        # validated there. Otherwise GX's import starts now, while DuckDB reads the files.
        if not pool.adopt_spare(load_bytes):
            from ingestion.hygiene.gx import warm_up_in_background

            warm_up_in_background()
    else:
        from ingestion.hygiene.pool import discard_spare_worker

        discard_spare_worker()
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
        pool=pool,
    )
    _write_stage_map(con, stage_map)
    seq = 0
    for group in _groups([(b, to_load[b]) for b in sorted(to_load)]):
        pending = [files for _batch_id, files in group]
        while pending:
            if GROUP_BATCHES and len(pending) > 1 and not context.full_export:
                results, done = _ingest_together(con, pending, context, source_timezone)
                report.files.extend(results)
                pending = pending[done:]
                if not pending:
                    break
            # The first batch left goes alone (an ERROR failure, an unreadable file or a
            # conflicting key stopped the grouped pass there); the rest is grouped again.
            files = pending.pop(0)
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
    pool: ValidationPool = field(default_factory=lambda: _pool(1))


def _groups(batches: list[tuple[str, Any]]) -> list[list[tuple[str, Any]]]:
    """Consecutive batches whose files add up to at most ``GROUP_MAX_BYTES``, to be
    ingested together; a larger batch is a group of its own. Together pays off where
    the fixed costs per batch dominate (small batches: a join against raw and a GX
    validation per entity). A large batch gains little, and with an ERROR failure in it
    (likely in a first export) the grouped pass would be paid for nothing before the
    batch goes alone."""
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
) -> tuple[list[FileResult], int]:
    """Consecutive new batches (a first load's daily batches, a catch-up) in one pass per
    entity, set-based, instead of one pass per batch and entity: 29 small batches cost
    29 × 9 joins against a raw of 19M rows and as many GX validations (157 s of a
    1M-opportunity first load, bench/RESULTS.md).

    Every rule the batch-by-batch path applies is stated over the batches' order
    (``_batch_order``): a row is a candidate against the newest version stored or
    offered by an earlier batch; a reference resolves in raw or among the candidates of
    this batch or an earlier one; a contact's e-mail is taken by another contact's
    version current before this batch. Each file's outcomes are its own, as if
    validated alone (``validate_batch(by_file=True)``). So for a batch that passes with
    no ERROR failure, what is published and recorded is exactly what batch by batch
    gives; raw is only written at the end, after validation.

    Published: the batches before the first one that has an unreadable file, an ERROR
    failure or a conflicting key (what it quarantines or rejects changes what the later
    batches see). Returns their results and their number; that batch and the later
    ones are left to the caller."""
    staged_batches: list[list[_Staged]] = []
    for order, files in enumerate(batches, start=1):
        staged = _stage_batch(con, files, ctx, source_timezone, order)
        if any(s.table is None or s.result.reasons for s in staged):
            _drop_temporaries(con, staged)
            break
        staged_batches.append(staged)
    by_entity: dict[str, list[tuple[int, _Staged]]] = {}
    for order, staged in enumerate(staged_batches, start=1):
        for s in staged:
            by_entity.setdefault(s.result.file.entity.name, []).append((order, s))
    names = [name for name in PROCESSING_ORDER if name in by_entity]
    everything = [s for staged in staged_batches for s in staged]
    temporaries = ["_contact_versions"]
    frames: dict[str, tuple[str, int]] = {}
    try:
        for name in names:
            entity = ENTITIES[name]
            group = f"_group_{name}"
            temporaries.append(group)
            candidates = _group_candidates_sql(entity, by_entity[name])
            con.execute(f"CREATE TEMP TABLE {group} AS {candidates}")
            counts = dict(
                con.execute(f"SELECT _source_file, count(*) FROM {group} GROUP BY ALL").fetchall()
            )
            for _order, s in by_entity[name]:
                kept = counts.get(s.result.file.relative, 0)
                s.result.duplicate_rows = s.result.input_rows - kept
                con.execute(f"DROP TABLE {s.table}")
            frames[name] = (_group_frame_sql(con, entity, group), sum(counts.values()))
        outcomes = _validate_group(con, names, frames, by_entity, ctx)
        stops = {
            order
            for name in names
            for order, s in by_entity[name]
            if any(_fails(o) for o in outcomes[s.result.file.relative])
        }
        for name in set(names) & ONE_VERSION_PER_KEY:
            stops |= {
                order
                for (order,) in con.execute(
                    f"SELECT DISTINCT _batch_order FROM _group_{name} WHERE key__conflicting"
                ).fetchall()
            }
        done = min(stops, default=len(batches) + 1) - 1
        done = min(done, len(staged_batches))
        if done == 0:
            return [], 0
        published = [s for staged in staged_batches[:done] for s in staged]
        con.execute("BEGIN TRANSACTION")
        try:
            for name in names:
                _publish_group(con, ENTITIES[name], f"_group_{name}", done, by_entity[name])
            _insert_outcomes(
                con,
                [
                    row
                    for s in published
                    for row in _outcome_rows(s.result, outcomes[s.result.file.relative], ctx)
                ],
            )
            _write_log(con, [s.result for s in published], ctx)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return [s.result for s in published], done
    finally:
        for table in temporaries:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        _drop_temporaries(con, everything)


def _fails(outcome: Any) -> bool:
    """An ERROR rule failed: the row or batch is quarantined or rejected."""
    return not outcome.success and outcome.severity == "error"


def file_verdict(
    result: FileResult, outcomes: Any, quarantine_max_share: float
) -> list[tuple[int, list[str]]]:
    """What the gate's outcomes on one file decide, on either engine: the rows failing a
    row-level ERROR rule, each with its rules, to quarantine (by row number). A failed
    batch-level ERROR rule, or a share of failing rows above ``quarantine_max_share``,
    adds its reason to ``result.reasons``: the batch is rejected."""
    bad_rows: dict[int, list[str]] = {}
    for o in filter(_fails, outcomes):
        if o.rule.level == "batch":
            result.reasons.append(o.describe())
        else:
            for _file, row in o.unexpected_rows:
                bad_rows.setdefault(int(row), []).append(o.rule.name)
    share = len(bad_rows) / result.input_rows if result.input_rows else 0.0
    if share > quarantine_max_share:
        result.reasons.append(
            f"{result.file.relative}: {len(bad_rows):,} of {result.input_rows:,} rows "
            f"({share:.1%}) fail row-level ERROR rules, above quality.quarantine_max_share "
            f"({quarantine_max_share:.1%}); fix the export or raise the threshold."
        )
    return sorted(bad_rows.items())


def reject_if_any_failed(results: list[FileResult]) -> bool:
    """A batch is published whole or not at all: when any of its files has a reason,
    every file is rejected (nothing loaded, every row counted rejected). Whether it was."""
    if not any(r.reasons for r in results):
        return False
    for r in results:
        r.status = "rejected"
        r.loaded_rows = r.quarantined_rows = r.duplicate_rows = 0
        r.rejected_rows = r.input_rows
        if not r.reasons:
            r.reasons.append("another file of this batch failed (see its reasons)")
    return True


def _group_candidates_sql(entity: Entity, staged: list[tuple[int, _Staged]]) -> str:
    """``_with_candidates`` over several batches' files of one entity at once: newest
    per key within each file; a candidate if its key is new, or if it is newer than and
    different from the newest version before its batch, stored in raw or offered by an
    earlier batch. (An earlier offer that was not a candidate is older than that
    version, or equal to it in every value with a newer batch: as a reference it says
    the same.)"""
    key = ", ".join(entity.key)
    null_key = " OR ".join(f"{k} IS NULL" for k in entity.key)
    newest_first = ", ".join(f"{part} DESC" for part in _version(entity))
    union = " UNION ALL BY NAME ".join(
        f"SELECT *, {order} AS _batch_order FROM {s.table}" for order, s in staged
    )
    flag, per_version, conflicting = "", "", ""
    if entity.name in ONE_VERSION_PER_KEY:
        values = _version_values(entity)
        flag = (
            f", (NOT ({null_key}) AND count(DISTINCT {values}) "
            f"OVER (PARTITION BY _batch_order, {key}) > 1) AS key__conflicting"
        )
        per_version = f", CASE WHEN key__conflicting THEN {values} END"
        conflicting = "key__conflicting OR "
    matches = " AND ".join(f"t.{k} = s.{k}" for k in entity.key)
    columns = entity.column_names
    return f"""
        WITH staged AS (SELECT *{flag} FROM ({union})),
        versions AS (
            SELECT *, row({", ".join(_version(entity))}) AS _version,
                   row({", ".join(columns)}) AS _values
            FROM staged WHERE NOT ({null_key})
            UNION ALL BY NAME
            SELECT {", ".join(f"t.{k}" for k in entity.key)}, 0 AS _batch_order,
                   row({", ".join(_version(entity, "t."))}) AS _version,
                   row({", ".join(f"t.{c}" for c in columns)}) AS _values
            FROM {RAW_SCHEMA}.{entity.name} t SEMI JOIN staged s ON {matches}
        ),
        judged AS (
            SELECT *,
                row_number() OVER (
                    PARTITION BY _batch_order, {key}{per_version} ORDER BY {newest_first}
                ) AS _rank,
                max(_version) OVER earlier AS _prior_version,
                arg_max(_values, _version) OVER earlier AS _prior_values
            FROM versions
            WINDOW earlier AS (
                PARTITION BY {key} ORDER BY _batch_order
                RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            )
        )
        SELECT * EXCLUDE (_version, _values, _rank, _prior_version, _prior_values)
        FROM judged
        WHERE _batch_order > 0 AND _rank = 1 AND (
            _prior_version IS NULL
            OR {conflicting}(_version > _prior_version AND _values IS DISTINCT FROM _prior_values)
        )
        UNION ALL BY NAME
        SELECT * FROM staged WHERE {null_key}"""


def _group_frame_sql(con: duckdb.DuckDBPyConnection, entity: Entity, group: str) -> str:
    """``_frame_sql`` for a grouped pass: each row's flags as its own batch would see
    them, from raw and the candidates of its batch and the earlier ones."""
    flags = _reference_flags(con, entity, "_group_", " AND b._batch_order <= c._batch_order")
    joins = []
    if entity.name == "stage_changes":
        joins.append(
            f"LEFT JOIN {RAW_SCHEMA}.opportunities ro ON ro.opportunity_id = c.opportunity_id"
        )
        created = "ro.created_at"
        if _temp_table_exists(con, "_group_opportunities"):
            # The opportunity's version of this batch or, failing that, the latest earlier.
            joins.append(
                "ASOF LEFT JOIN (SELECT opportunity_id, _batch_order, created_at "
                "FROM _group_opportunities) bo ON bo.opportunity_id = c.opportunity_id "
                "AND c._batch_order >= bo._batch_order"
            )
            created = "coalesce(bo.created_at, ro.created_at)"
        flags.append(f"{created} AS opportunity_created_at")
    if entity.name == "contacts":
        # Every contact version with the batches it is current before: stored (0) until
        # its first candidate, each candidate until the next one.
        con.execute(
            f"""CREATE TEMP TABLE _contact_versions AS
                SELECT contact_id, lower(trim(email)) AS email, _batch_order,
                       lead(_batch_order) OVER (
                           PARTITION BY contact_id ORDER BY _batch_order
                       ) AS _until
                FROM (SELECT contact_id, email, 0 AS _batch_order FROM {RAW_SCHEMA}.contacts
                      UNION ALL SELECT contact_id, email, _batch_order FROM {group})"""
        )
        flags.append(
            "EXISTS (SELECT 1 FROM _contact_versions o WHERE o.email = lower(trim(c.email)) "
            "AND o.contact_id <> c.contact_id AND o._batch_order < c._batch_order "
            "AND (o._until IS NULL OR o._until >= c._batch_order)) AS email__seen_before"
        )
        flags.append(
            "(c.email IS NOT NULL AND count(*) OVER "
            "(PARTITION BY c._batch_order, lower(trim(c.email))) > 1) AS email__seen_in_batch"
        )
    return _frame_select(con, entity, group, flags, joins)


def _validate_group(
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    frames: dict[str, tuple[str, int]],
    by_entity: dict[str, list[tuple[int, _Staged]]],
    ctx: _RunContext,
) -> dict[str, tuple[Any, ...]]:
    """Each file's outcomes, as if validated alone, from the frame queries of a group
    (``frames``: entity → query and its number of rows, ``_frame_parts``). Every
    entity's parts go to the pool in one stream, so that on several processes no entity
    waits for another's."""
    order = "_source_file, _source_row"
    sent: list[str] = []

    def jobs() -> Iterator[tuple[str, Any]]:
        for name in names:
            sql, rows = frames[name]
            for job in _frame_parts(con, ENTITIES[name], sql, rows, order):
                if job[1].num_rows:
                    sent.append(name)
                    yield job

    found: dict[str, list[Any]] = {name: [] for name in names}
    with contextlib.closing(jobs()) as parts:
        results = ctx.pool.validate(
            parts, labels=ctx.labels, severities=ctx.severities, by_file=True
        )
    for name, result in zip(sent, results, strict=True):
        found[name].append(result)
    outcomes: dict[str, tuple[Any, ...]] = {}
    for name in names:
        sql = frames[name][0]
        outcomes.update(_file_outcomes(con, name, sql, found[name], by_entity[name], ctx))
    return outcomes


def _file_outcomes(
    con: duckdb.DuckDBPyConnection,
    name: str,
    frame_sql: str,
    found: list[dict[str, tuple[Any, ...]]],
    files: list[tuple[int, _Staged]],
    ctx: _RunContext,
) -> dict[str, tuple[Any, ...]]:
    """Each file's outcomes merged over the parts that held its rows (``found``: one
    by-file result per part); ``frame_sql``: the entity's frame query."""
    from ingestion.hygiene.frame import arrow_backed
    from ingestion.hygiene.gx import validate_batch
    from ingestion.hygiene.outcomes import merge_outcomes

    per_file: dict[str, list[Any]] = {}
    for result in found:
        for file, outs in result.items():
            per_file.setdefault(file, []).append(outs)
    outcomes = {file: merge_outcomes(parts_of_file) for file, parts_of_file in per_file.items()}
    # A file whose rows were all duplicates is judged on no rows, as alone.
    empty = None
    for _order, s in files:
        if s.result.file.relative not in outcomes:
            if empty is None:
                none = con.sql(f"SELECT * FROM ({frame_sql}) LIMIT 0").to_arrow_table()
                none = arrow_backed(none)
                empty = validate_batch(name, none, labels=ctx.labels, severities=ctx.severities)
            outcomes[s.result.file.relative] = empty
    return outcomes


def _publish_group(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    group: str,
    done: int,
    files: list[tuple[int, _Staged]],
) -> None:
    """Merge the candidates of the first ``done`` batches into raw: per key, the latest
    batch's (each candidate is newer than what came before it)."""
    target = f"{RAW_SCHEMA}.{entity.name}"
    key = ", ".join(entity.key)
    null_key = " OR ".join(f"{k} IS NULL" for k in entity.key)
    matches = " AND ".join(f"t.{k} = n.{k}" for k in entity.key)
    columns = ", ".join([c.name for c in entity.columns] + [name for name, _ in LINEAGE_COLUMNS])
    mine = f"_batch_order <= {done}"
    con.execute(
        f"DELETE FROM {target} t USING (SELECT DISTINCT {key} FROM {group} WHERE {mine}) n "
        f"WHERE {matches}"
    )
    con.execute(
        f"INSERT INTO {target} SELECT {columns} FROM {group} WHERE {mine} "
        f"QUALIFY {null_key} "
        f"OR row_number() OVER (PARTITION BY {key} ORDER BY _batch_order DESC) = 1"
    )
    counts = dict(
        con.execute(
            f"SELECT _source_file, count(*) FROM {group} WHERE {mine} GROUP BY ALL"
        ).fetchall()
    )
    for order, s in files:
        if order <= done:
            s.result.loaded_rows = counts.get(s.result.file.relative, 0)


def _validate_and_publish(
    con: duckdb.DuckDBPyConnection, staged: list[_Staged], ctx: _RunContext
) -> list[FileResult]:
    """Validate one staged batch and publish it, or reject all of it."""

    quarantine: dict[str, list[tuple[int, list[str]]]] = {}
    for n, s in enumerate(staged):
        if s.table is None:
            continue
        entity = s.result.file.entity
        s = staged[n] = _with_candidates(con, s, ctx.full_export)
        outcomes = _validate(con, entity, s, ctx)
        _record_outcomes(con, s.result, outcomes, ctx)
        bad_rows = quarantine[s.result.file.relative] = file_verdict(
            s.result, outcomes, ctx.quarantine_max_share
        )
        referenced = _REFERENCED_COLUMNS.get(entity.name)
        if referenced:
            # Later entities of this batch may reference these rows: their keys.
            con.execute(f"DROP TABLE IF EXISTS _batch_{entity.name}")
            con.execute(
                f"CREATE TEMP TABLE _batch_{entity.name} AS SELECT {', '.join(referenced)} "
                f"FROM {s.candidates} WHERE _source_row NOT IN (SELECT unnest(?::BIGINT[]))",
                [[row for row, _rules in bad_rows]],
            )

    if not reject_if_any_failed([s.result for s in staged]):
        for s in staged:
            if s.table is not None:
                _publish(con, s, quarantine[s.result.file.relative], ctx)
    return [s.result for s in staged]


def _validate(
    con: duckdb.DuckDBPyConnection, entity: Entity, s: _Staged, ctx: _RunContext
) -> tuple[Any, ...]:
    """Every candidate row through the entity's suite, in parts (``_frame_parts``)."""
    from ingestion.hygiene.outcomes import merge_outcomes

    ((rows,),) = con.execute(f"SELECT count(*) FROM {s.candidates}").fetchall()
    sql = _frame_sql(con, entity, s)
    with contextlib.closing(_frame_parts(con, entity, sql, rows)) as parts:
        results = ctx.pool.validate(parts, labels=ctx.labels, severities=ctx.severities)
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


def _version(entity: Entity, alias: str = "", dialect: SqlDialect = DUCKDB) -> list[str]:
    """The supersede order as a tuple: latest updated_at (a missing one loses), then the
    later batch, then the later row of the file."""
    parts = [f"{alias}_batch_id", f"{alias}_source_row"]
    if "updated_at" in entity.column_names:
        parts.insert(0, f"coalesce({alias}updated_at, {dialect.earliest})")
    return parts


def _version_values(entity: Entity, dialect: SqlDialect = DUCKDB) -> str:
    return f"{dialect.row}({', '.join(_VERSION_VALUES[entity.name])})"


def candidates_sql(entity: Entity, staged: str, dialect: SqlDialect = DUCKDB) -> str:
    """The query of ``_with_candidates`` (both engines run it): the rows of the table
    ``staged`` (one file, typed) that would change raw.

    Newest per key in the file, newer than the stored row and different from it (an
    identical re-export is a duplicate, not an update). Rows with a missing key cannot
    be matched; they stay candidates (and fail the not-null rule).

    An entity of ``ONE_VERSION_PER_KEY`` gets the flag ``key__conflicting``: a key the
    file holds with different values keeps one row per distinct version, each a
    candidate whatever raw holds (all of them fail ``<entity>.key_not_conflicting``);
    an identical repeat of a version is still a duplicate.
    """
    target = f"{RAW_SCHEMA}.{entity.name}"
    key = ", ".join(entity.key)
    null_key = " OR ".join(f"{k} IS NULL" for k in entity.key)
    newest_first = ", ".join(f"{part} DESC" for part in _version(entity, "", dialect))
    matches = " AND ".join(f"t.{k} = n.{k}" for k in entity.key)
    row = dialect.row
    newer = (
        f"{row}({', '.join(_version(entity, 'n.', dialect))}) > "
        f"{row}({', '.join(_version(entity, 't.', dialect))})"
    )
    changed = (
        f"{row}({', '.join('n.' + c for c in entity.column_names)}) IS DISTINCT FROM "
        f"{row}({', '.join('t.' + c for c in entity.column_names)})"
    )
    flag, per_version, conflicting = "", "", ""
    if entity.name in ONE_VERSION_PER_KEY:
        values = _version_values(entity, dialect)
        distinct = dialect.distinct_in_window.format(values, f"PARTITION BY {key}")
        flag = f", (NOT ({null_key}) AND {distinct} > 1) AS key__conflicting"
        per_version = f", CASE WHEN key__conflicting THEN {values} END"
        conflicting = "n.key__conflicting OR "
    return f"""WITH flagged AS (SELECT *{flag} FROM {staged}),
            newest AS (
                SELECT * FROM flagged
                QUALIFY {null_key}
                    OR row_number() OVER (
                        PARTITION BY {key}{per_version} ORDER BY {newest_first}
                    ) = 1
            )
            SELECT n.* FROM newest n LEFT JOIN {target} t ON {matches}
            WHERE t.{entity.key[0]} IS NULL OR {conflicting}({newer} AND {changed})"""


def _with_candidates(
    con: duckdb.DuckDBPyConnection, s: _Staged, full_export: bool = False
) -> _Staged:
    """The rows that would change raw (``candidates_sql``), in a temporary table; every
    other row of the file is a duplicate."""
    entity = s.result.file.entity
    if entity.name not in ONE_VERSION_PER_KEY and not full_export:
        # A file of distinct keys into an empty table (a first load): every row is a
        # candidate, and the staged table serves as is. Copying it cost 40 s of a
        # 1M-opportunity first load. (A full export keeps its staged table whole: the
        # records it holds are the ones not deleted.)
        # Raw first: a daily batch stops there, without grouping its file by key.
        ((stored,),) = con.execute(
            f"SELECT EXISTS (SELECT 1 FROM {RAW_SCHEMA}.{entity.name})"
        ).fetchall()
        if not stored:
            null_key = " OR ".join(f"{k} IS NULL" for k in entity.key)
            ((repeated,),) = con.execute(
                f"SELECT EXISTS (SELECT 1 FROM {s.table} WHERE NOT ({null_key}) "
                f"GROUP BY {', '.join(entity.key)} HAVING count(*) > 1)"
            ).fetchall()
            if not repeated:
                s.result.duplicate_rows = 0
                return _Staged(s.result, s.table, s.header, s.table)
    assert s.table is not None
    candidates = f"{s.table}_candidates"
    con.execute(f"CREATE TEMP TABLE {candidates} AS\n            {candidates_sql(entity, s.table)}")
    (count,) = con.execute(f"SELECT count(*) FROM {candidates}").fetchone()
    s.result.duplicate_rows = s.result.input_rows - count
    return _Staged(s.result, s.table, s.header, candidates)


def _frame_parts(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    sql: str,
    rows: int,
    order: str = "_source_row",
) -> Iterator[tuple[str, Any]]:
    """The rows of a frame query (``rows`` of them) as (entity name, Arrow table) parts:
    a large batch is validated in parts of at most ``VALIDATION_PART_ROWS`` rows, split
    by a hash of the key (each part holds every row of its keys), so that memory stays
    bounded whatever the batch's size (a first load's 10M activities would otherwise be
    one frame of several GB). Each part's rows come in ``order`` (file and row: a
    message's examples are then the same on every run).

    One query streams every part, sorted by part: the flags (reference joins) and hashes
    are computed once, and no part is searched for among the others' rows. (Writing the
    frame to a table and reading each part back with a filter and a sort of its own cost
    about twice the CPU: bench/RESULTS.md.) A part without rows is left out; a frame
    without rows is one empty part. The stream holds the connection until it is read
    out or this generator is closed: close it (``contextlib.closing``) before the
    connection runs anything else, also when validation fails."""
    import numpy as np
    import pyarrow as pa

    parts = max(1, -(-rows // VALIDATION_PART_ROWS))
    part = f"hash({', '.join(entity.key)}) % {parts}" if parts > 1 else "0"
    reader = con.sql(f"SELECT *, {part} AS _part FROM ({sql}) ORDER BY _part, {order}")
    reader = reader.to_arrow_reader(STREAM_BATCH_ROWS)
    try:
        schema = reader.schema.remove(reader.schema.get_field_index("_part"))
        pending: list[Any] = []  # the current part's slices of the stream's batches
        current, sent = None, False
        for batch in reader:
            if not batch.num_rows:
                continue
            keys = batch.column("_part").to_numpy()
            data = batch.select(schema.names)
            cuts = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(keys)]
            for start, end in itertools.pairwise(cuts):
                if keys[start] != current and pending:
                    sent = True
                    yield entity.name, pa.Table.from_batches(pending, schema=schema)
                    pending = []
                current = keys[start]
                pending.append(data.slice(start, end - start))
        if pending or not sent:
            yield entity.name, pa.Table.from_batches(pending, schema=schema)
    finally:
        reader.close()


def _frame_sql(con: duckdb.DuckDBPyConnection, entity: Entity, s: _Staged) -> str:
    """The candidates with the flags the hygiene suite reads: whether each reference
    resolves (in raw or among this batch's accepted rows), the creation time of a stage
    change's opportunity, whether a contact's e-mail is already taken."""
    flags = _reference_flags(con, entity, "_batch_")
    joins = []
    if entity.name == "stage_changes":
        joins.append(
            f"LEFT JOIN {RAW_SCHEMA}.opportunities ro ON ro.opportunity_id = c.opportunity_id"
        )
        created = "ro.created_at"
        if _temp_table_exists(con, "_batch_opportunities"):
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
    return _frame_select(con, entity, s.candidates, flags, joins)


def _reference_flags(
    con: duckdb.DuckDBPyConnection, entity: Entity, kept: str, kept_filter: str = ""
) -> list[str]:
    """``<column>__known`` for each reference of ``entity``: null, or found in raw or among
    the accepted rows kept in ``<kept><referenced entity>`` (matching ``kept_filter``)."""
    flags = []
    for column, ref_entity, ref_key in REFERENCES.get(entity.name, ()):
        found = [
            f"EXISTS (SELECT 1 FROM {RAW_SCHEMA}.{ref_entity} r WHERE r.{ref_key} = c.{column})"
        ]
        if _temp_table_exists(con, f"{kept}{ref_entity}"):
            found.append(
                f"EXISTS (SELECT 1 FROM {kept}{ref_entity} b WHERE b.{ref_key} = c.{column}"
                f"{kept_filter})"
            )
        flags.append(f"(c.{column} IS NULL OR {' OR '.join(found)}) AS {column}__known")
    return flags


def _frame_select(
    con: duckdb.DuckDBPyConnection, entity: Entity, table: str, flags: list[str], joins: list[str]
) -> str:
    """The frame query: ``table``'s rows (alias c) with ``flags``, only the columns the
    rules read: at 10M rows every column held in pandas counts."""
    from ingestion.hygiene.rules import frame_columns

    available = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()} | {
        flag.rsplit(" AS ", 1)[1] for flag in flags
    }
    # The export file and line of an adapter's row name it in messages (optional).
    optional = (*EXPORT_LINEAGE, "email__seen_in_batch")
    wanted = [c for c in (*frame_columns(entity.name), *optional) if c in available]
    select = ", ".join(["c.*", *flags])
    return f"SELECT {', '.join(wanted)} FROM (SELECT {select} FROM {table} c {' '.join(joins)})"


def _temp_table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether this connection holds the temporary ``table`` (a batch's accepted rows of
    an entity validated earlier: ``_batch_<entity>``, ``_group_<entity>``)."""
    ((count,),) = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [table]
    ).fetchall()
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
        # A converted CRM export's row also names the user's own file and line (NULL for
        # a canonical landing file), beside the converted file's source_file / source_row.
        con.execute(
            f"""INSERT INTO {QUALITY_SCHEMA}.quarantine
                    (entity, batch_id, source_file, source_row, raw_row, failed_rules,
                     quarantined_at, run_id, {", ".join(QUARANTINE_EXPORT_COLUMNS)})
                SELECT '{entity.name}', '{f.batch_id}', '{f.relative}', r._source_row,
                       r.raw_row, b.rules, ?, ?, {", ".join(f"r.{c}" for c in EXPORT_LINEAGE)}
                FROM (SELECT row_number() OVER () AS _source_row, {raw_json} AS raw_row,
                          {_export_lineage_sql(s.header)}
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


def _export_lineage_sql(header: list[str]) -> str:
    """SELECT items of a landing file's export lineage (EXPORT_LINEAGE) as text, NULL for
    a column the file lacks (a canonical landing file has none)."""
    by_name: dict[str, str] = {}
    for name in header:
        by_name.setdefault(name.strip().lower(), name)
    return ", ".join(
        (f"CAST({quote_ident(by_name[c])} AS VARCHAR)" if c in by_name else "NULL") + f" AS {c}"
        for c in EXPORT_LINEAGE
    )


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
