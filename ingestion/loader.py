"""Load a landing directory of canonical batches into ``raw.*``.

Layout: ``<landing>/<batch_id>/<entity>.<csv|parquet|jsonl>``; batches are processed in
name order. The work is set-based in DuckDB: each file is read once, typed with SQL, and
merged into its raw table with one window query per entity.

Merge rules (DATA_MODEL.md): a row supersedes earlier rows with the same key when its
``updated_at`` is later, ties going to the later batch (then the later row of the file);
event entities (stage changes, activities) accumulate, one row per key. A manifest of
ingested files (content hash) makes re-ingesting a batch a no-op.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingestion.errors import DataQualityError, LandingError
from ingestion.schema import (
    ENTITIES,
    LANDING_FORMATS,
    LINEAGE_COLUMNS,
    SQL_TYPES,
    Column,
    Entity,
)
from ingestion.stages import StageMap
from ingestion.warehouse import RAW_SCHEMA, create_raw_tables

_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")
_EXAMPLES = 3


@dataclass(frozen=True)
class LandingFile:
    batch_id: str
    entity: Entity
    path: Path

    @property
    def relative(self) -> str:
        return f"{self.batch_id}/{self.path.name}"


@dataclass
class IngestionReport:
    """What one ingestion did, per file and per entity."""

    batches: list[str] = field(default_factory=list)
    loaded_files: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    input_rows: dict[str, int] = field(default_factory=dict)
    table_rows: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.loaded_files:
            return f"no new files ({len(self.skipped_files)} already ingested)"
        rows = sum(self.input_rows.values())
        return (
            f"{len(self.loaded_files)} files from {len(self.batches)} batch(es), "
            f"{rows:,} rows read; {len(self.skipped_files)} files already ingested"
        )


def discover(landing: Path) -> list[LandingFile]:
    """List the landing files in processing order, refusing anything that isn't one."""
    if not landing.is_dir():
        raise LandingError(
            f"Landing directory {landing} does not exist. Point --landing at a folder "
            f"holding one sub-folder per batch (<landing>/<batch_id>/<entity>.csv)."
        )
    files: list[LandingFile] = []
    for item in sorted(landing.iterdir()):
        if item.name.startswith((".", "_")):
            continue
        if not item.is_dir():
            raise LandingError(
                f"{item} is a file at the top of the landing directory; files belong in a "
                f"batch folder: {landing}/<batch_id>/{item.name}."
            )
        seen: dict[str, Path] = {}
        for path in sorted(item.iterdir()):
            if path.name.startswith((".", "_")) or path.is_dir():
                continue
            stem, _, ext = path.name.partition(".")
            if ext not in LANDING_FORMATS or stem not in ENTITIES:
                raise LandingError(
                    f"{path}: not a canonical landing file. Expected <entity>.<format> with "
                    f"entity one of {', '.join(ENTITIES)} and format one of "
                    f"{', '.join(LANDING_FORMATS)}. Rename or remove the file."
                )
            if stem in seen:
                raise LandingError(
                    f"Batch {item.name} holds {stem} twice ({seen[stem].name} and "
                    f"{path.name}); keep one file per entity in a batch."
                )
            seen[stem] = path
            files.append(LandingFile(item.name, ENTITIES[stem], path))
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ingest(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    *,
    stage_map: StageMap | None = None,
    source: str = "crm",
    source_timezone: str = "UTC",
    ingested_at: datetime | None = None,
) -> IngestionReport:
    """Ingest every batch file not ingested before; all or nothing in one transaction.

    Timestamps without an offset are read in ``source_timezone`` and stored as UTC.
    """
    files = discover(landing)
    create_raw_tables(con)
    ingested_at = (ingested_at or datetime.now(UTC)).replace(tzinfo=None)
    report = IngestionReport()
    known = {
        row[0]
        for row in con.execute(f"SELECT content_sha256 FROM {RAW_SCHEMA}._manifest").fetchall()
    }
    pending: list[tuple[LandingFile, str]] = []
    for f in files:
        sha = file_sha256(f.path)
        if sha in known:
            report.skipped_files.append(f.relative)
        else:
            pending.append((f, sha))
            known.add(sha)

    con.execute("BEGIN TRANSACTION")
    con.execute(f"SET TimeZone = '{source_timezone.replace(chr(39), '')}'")
    try:
        _write_stage_map(con, stage_map or StageMap())
        staged: dict[str, list[str]] = {}
        for n, (f, sha) in enumerate(pending):
            staged_table = f"_staged_{n}"
            rows = _stage_file(con, f, staged_table, source, ingested_at)
            staged.setdefault(f.entity.name, []).append(staged_table)
            con.execute(
                f"INSERT INTO {RAW_SCHEMA}._manifest VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)",
                [f.batch_id, f.entity.name, f.relative, sha, rows, ingested_at],
            )
            report.loaded_files.append(f.relative)
            report.input_rows[f.entity.name] = report.input_rows.get(f.entity.name, 0) + rows
            if f.batch_id not in report.batches:
                report.batches.append(f.batch_id)
        for entity_name, tables in staged.items():
            _merge(con, ENTITIES[entity_name], tables)
            for t in tables:
                con.execute(f"DROP TABLE {t}")
        _record_loaded_rows(con, [f for f, _ in pending])
        for table in (*ENTITIES, "stage_map"):
            (count,) = con.execute(f"SELECT count(*) FROM {RAW_SCHEMA}.{table}").fetchone()
            report.table_rows[table] = count
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("SET TimeZone = 'UTC'")
    return report


def _write_stage_map(con: duckdb.DuckDBPyConnection, stage_map: StageMap) -> None:
    frame = stage_map.to_frame()  # noqa: F841 (read by DuckDB's replacement scan)
    con.execute(f"DELETE FROM {RAW_SCHEMA}.stage_map")
    con.execute(f"INSERT INTO {RAW_SCHEMA}.stage_map SELECT * FROM frame")


def _csv_header(f: LandingFile) -> list[str]:
    """The header row, read by Python so that DuckDB never guesses it (no sniffing)."""
    try:
        with f.path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise LandingError(
            f"{f.path}: not UTF-8 ({exc.reason} near byte {exc.start}). Export the file as UTF-8."
        ) from exc
    if not header or not any(h.strip() for h in header):
        raise LandingError(
            f"{f.path}: the file is empty or has no header row. The first line must name "
            f"the columns, e.g. {','.join(f.entity.required_columns)}."
        )
    return header


def _scan_sql(f: LandingFile, header: list[str] | None = None) -> str:
    path = str(f.path).replace("'", "''")
    ext = f.path.name.partition(".")[2]
    if ext == "csv":
        columns = ", ".join(
            "'" + h.replace("'", "''") + "': 'VARCHAR'" for h in (header or _csv_header(f))
        )
        return (
            f"read_csv('{path}', auto_detect = false, header = true, delim = ',', "
            f"quote = '\"', escape = '\"', strict_mode = true, columns = {{{columns}}})"
        )
    if ext == "parquet":
        return f"read_parquet('{path}')"
    return f"read_json('{path}', format = 'newline_delimited')"


def _read_columns(con: duckdb.DuckDBPyConnection, f: LandingFile) -> list[str]:
    if f.path.suffix == ".csv":
        return _csv_header(f)
    try:
        return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {_scan_sql(f)}").fetchall()]
    except duckdb.Error as exc:
        raise LandingError(
            f"{f.path}: cannot be read as {f.path.suffix[1:].upper()}: {_first_line(exc)}."
        ) from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _parse_sql(col: Column, raw: str) -> str:
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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stage_file(
    con: duckdb.DuckDBPyConnection,
    f: LandingFile,
    table: str,
    source: str,
    ingested_at: datetime,
) -> int:
    """Read, check and type one file into a temporary table shaped like its raw table."""
    header = _read_columns(con, f)
    by_name: dict[str, str] = {}
    for name in header:
        key = name.strip().lower()
        if key in by_name:
            raise LandingError(f"{f.path}: column {key!r} appears twice in the header.")
        by_name[key] = name
    missing = [c for c in f.entity.required_columns if c not in by_name]
    if missing:
        raise DataQualityError(
            f"{f.path}: required column(s) {', '.join(missing)} missing from the header "
            f"(found: {', '.join(header) or 'none'}). Add them; the {f.entity.name} contract "
            f"is in DATA_MODEL.md."
        )
    extras = [by_name[k] for k in by_name if k not in f.entity.column_names]

    raw_select = ", ".join(
        f"CAST({_quote(by_name[c.name])} AS VARCHAR) AS {_quote('r_' + c.name)}"
        for c in f.entity.columns
        if c.name in by_name
    )
    extra_select = (
        "json_object("
        + ", ".join(
            f"'{e.replace(chr(39), chr(39) * 2)}', CAST({_quote(e)} AS VARCHAR)" for e in extras
        )
        + ")"
        if extras
        else "CAST(NULL AS VARCHAR)"
    )
    try:
        con.execute(
            f"CREATE TEMP TABLE _read AS SELECT {raw_select}, "
            f"CAST({extra_select} AS VARCHAR) AS _attributes, "
            f"row_number() OVER () AS _source_row FROM {_scan_sql(f, header)}"
        )
    except duckdb.Error as exc:
        raise LandingError(
            f"{f.path}: cannot be read: {_first_line(exc)}. Fix the file (UTF-8, comma-"
            f"separated, quoted fields closed, the same number of fields on every line)."
        ) from exc
    try:
        typed = []
        for c in f.entity.columns:
            if c.name in by_name:
                typed.append(f"{_parse_sql(c, _quote('r_' + c.name))} AS {c.name}")
            else:
                typed.append(f"NULL AS {c.name}")
        con.execute(f"CREATE TEMP TABLE _typed AS SELECT {', '.join(typed)}, * FROM _read")
        _raise_on_unparseable(
            con, f, [c for c in f.entity.columns if c.name in by_name and c.type != "string"]
        )
        lineage = {
            "_source": f"'{source}'",
            "_batch_id": f"'{f.batch_id}'",
            "_source_file": f"'{f.relative}'",
            "_source_row": "_source_row",
            "_ingested_at": f"TIMESTAMP '{ingested_at.isoformat(sep=' ')}'",
            "_attributes": "_attributes",
        }
        cols = [f"CAST({c.name} AS {SQL_TYPES[c.type]}) AS {c.name}" for c in f.entity.columns]
        cols += [f"{lineage[name]} AS {name}" for name, _ in LINEAGE_COLUMNS]
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT {', '.join(cols)} FROM _typed")
        (rows,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    finally:
        con.execute("DROP TABLE IF EXISTS _read")
        con.execute("DROP TABLE IF EXISTS _typed")
    return rows


def _raise_on_unparseable(
    con: duckdb.DuckDBPyConnection, f: LandingFile, columns: Iterable[Column]
) -> None:
    problems = []
    for c in columns:
        raw = _quote("r_" + c.name)
        bad = con.execute(
            f"SELECT _source_row, {raw} FROM _typed "
            f"WHERE {c.name} IS NULL AND NULLIF(trim({raw}), '') IS NOT NULL "
            f"ORDER BY _source_row"
        ).fetchall()
        if bad:
            shown = "; ".join(f"row {r} {v!r}" for r, v in bad[:_EXAMPLES])
            problems.append(
                f"column {c.name} ({c.type}): {len(bad)} value(s) do not parse, e.g. {shown}"
            )
    if problems:
        raise DataQualityError(
            f"{f.path}: " + " | ".join(problems) + ". Rows are numbered from 1 after the header. "
            "Timestamps must be ISO 8601, numbers plain decimals, booleans true/false/1/0/yes/no."
        )


def _merge(con: duckdb.DuckDBPyConnection, entity: Entity, staged: list[str]) -> None:
    """Rebuild raw.<entity> as the winning version of every key, set-based."""
    target = f"{RAW_SCHEMA}.{entity.name}"
    union = " UNION ALL ".join([f"SELECT * FROM {target}"] + [f"SELECT * FROM {t}" for t in staged])
    order = []
    if "updated_at" in entity.column_names:
        order.append("updated_at DESC NULLS LAST")
    order += ["_batch_id DESC", "_source_row DESC"]
    key = ", ".join(entity.key)
    # Rows with a missing key cannot be matched across batches; they are kept (and the
    # hygiene suite reports them) rather than collapsed into one another.
    key_null = " OR ".join(f"{k} IS NULL" for k in entity.key if entity.column(k).required)
    keep = f"row_number() OVER (PARTITION BY {key} ORDER BY {', '.join(order)}) = 1"
    if key_null:
        keep = f"({keep}) OR {key_null}"
    con.execute(f"CREATE TEMP TABLE _merged AS SELECT * FROM ({union}) QUALIFY {keep}")
    con.execute(f"DELETE FROM {target}")
    con.execute(f"INSERT INTO {target} SELECT * FROM _merged ORDER BY {key}")
    con.execute("DROP TABLE _merged")


def _record_loaded_rows(con: duckdb.DuckDBPyConnection, files: list[LandingFile]) -> None:
    """Count, per new file, the rows that are current after the merge."""
    for f in files:
        (loaded,) = con.execute(
            f"SELECT count(*) FROM {RAW_SCHEMA}.{f.entity.name} WHERE _source_file = ?",
            [f.relative],
        ).fetchone()
        con.execute(
            f"UPDATE {RAW_SCHEMA}._manifest SET loaded_rows = ?, "
            f"superseded_rows = input_rows - ? WHERE source_file = ? AND loaded_rows IS NULL",
            [loaded, loaded, f.relative],
        )
