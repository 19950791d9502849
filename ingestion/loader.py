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

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingestion.errors import DataQualityError, LandingError
from ingestion.landing import (
    LandingFile,
    discover,
    file_sha256,
    quote_ident,
    read_error,
    read_header,
    scan_sql,
)
from ingestion.schema import (
    ENTITIES,
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
    # A file is known by where it sits and what it holds: the same bytes in another
    # batch folder are another export (an unchanged daily file), and are recorded too.
    known = set(
        con.execute(f"SELECT source_file, content_sha256 FROM {RAW_SCHEMA}._manifest").fetchall()
    )
    pending: list[tuple[LandingFile, str]] = []
    for f in files:
        sha = file_sha256(f.path)
        if (f.relative, sha) in known:
            report.skipped_files.append(f.relative)
        else:
            pending.append((f, sha))

    con.execute("BEGIN TRANSACTION")
    con.execute(f"SET TimeZone = '{source_timezone.replace(chr(39), '')}'")
    try:
        _write_stage_map(con, stage_map or StageMap())
        # Entity by entity, so that only one entity's new rows are held at a time.
        for entity in ENTITIES.values():
            files_of_entity = [(f, sha) for f, sha in pending if f.entity is entity]
            staged = []
            for f, sha in files_of_entity:
                staged_table = f"_staged_{len(staged)}"
                rows = _stage_file(con, f, staged_table, source, ingested_at)
                staged.append(staged_table)
                con.execute(
                    f"INSERT INTO {RAW_SCHEMA}._manifest VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)",
                    [f.batch_id, entity.name, f.relative, sha, rows, ingested_at],
                )
                report.input_rows[entity.name] = report.input_rows.get(entity.name, 0) + rows
            if staged:
                _merge(con, entity, staged)
                for t in staged:
                    con.execute(f"DROP TABLE {t}")
        for f, _ in pending:
            report.loaded_files.append(f.relative)
            if f.batch_id not in report.batches:
                report.batches.append(f.batch_id)
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
    con.register("_stage_map_frame", stage_map.to_frame())
    try:
        con.execute(f"DELETE FROM {RAW_SCHEMA}.stage_map")
        con.execute(f"INSERT INTO {RAW_SCHEMA}.stage_map SELECT * FROM _stage_map_frame")
    finally:
        con.unregister("_stage_map_frame")


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


def _stage_file(
    con: duckdb.DuckDBPyConnection,
    f: LandingFile,
    table: str,
    source: str,
    ingested_at: datetime,
) -> int:
    """Read, check and type one file into a temporary table shaped like its raw table."""
    header = read_header(con, f)
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

    raw = {c.name: f"CAST({quote_ident(by_name[c.name])} AS VARCHAR)" for c in f.entity.columns
           if c.name in by_name}  # fmt: skip
    typed, bad = [], []
    for c in f.entity.columns:
        if c.name not in raw:
            typed.append(f"CAST(NULL AS {SQL_TYPES[c.type]}) AS {c.name}")
            continue
        parsed = _parse_sql(c, raw[c.name])
        typed.append(f"CAST({parsed} AS {SQL_TYPES[c.type]}) AS {c.name}")
        if c.type != "string":
            bad.append(
                f"CASE WHEN {parsed} IS NULL AND NULLIF(trim({raw[c.name]}), '') IS NOT NULL "
                f"THEN '{c.name}' END"
            )
    attributes = (
        "CAST(json_object("
        + ", ".join(
            f"'{e.replace(chr(39), chr(39) * 2)}', CAST({quote_ident(e)} AS VARCHAR)"
            for e in extras
        )
        + ") AS VARCHAR)"
        if extras
        else "CAST(NULL AS VARCHAR)"
    )
    lineage = {
        "_source": f"'{source}'",
        "_batch_id": f"'{f.batch_id}'",
        "_source_file": f"'{f.relative}'",
        "_source_row": "_source_row",
        "_ingested_at": f"TIMESTAMP '{ingested_at.isoformat(sep=' ')}'",
        "_attributes": attributes,
    }
    columns = typed + [f"{lineage[name]} AS {name}" for name, _ in LINEAGE_COLUMNS]
    # One pass over the file: typed values, lineage, and the names of the columns whose
    # value did not parse (null when all did), so errors cost nothing on good files.
    try:
        con.execute(
            f"CREATE TEMP TABLE {table} AS SELECT {', '.join(columns)}, "
            f"concat_ws(',', {', '.join(bad) or 'NULL'}) AS _unparsed "
            f"FROM (SELECT *, row_number() OVER () AS _source_row FROM {scan_sql(f, header)})"
        )
    except duckdb.Error as exc:
        raise read_error(f, exc) from exc
    (rows, unparsed) = con.execute(
        f"SELECT count(*), count(*) FILTER (_unparsed <> '') FROM {table}"
    ).fetchone()
    if unparsed:
        _raise_on_unparseable(con, f, table, raw, header)
    con.execute(f"ALTER TABLE {table} DROP COLUMN _unparsed")
    return rows


def _raise_on_unparseable(
    con: duckdb.DuckDBPyConnection,
    f: LandingFile,
    table: str,
    raw: dict[str, str],
    header: list[str],
) -> None:
    """Name every column with values that do not parse, with counts and examples."""
    per_column = con.execute(
        f"""SELECT col, count(*), list(_source_row ORDER BY _source_row)[1:{_EXAMPLES}]
            FROM (SELECT unnest(string_split(_unparsed, ',')) AS col, _source_row
                  FROM {table} WHERE _unparsed <> '')
            GROUP BY col ORDER BY col"""
    ).fetchall()
    problems = []
    for col, count, example_rows in per_column:
        # The error path re-reads the file for the raw values; good files never pay this.
        values = con.execute(
            f"SELECT _source_row, {raw[col]} FROM (SELECT *, row_number() OVER () AS "
            f"_source_row FROM {scan_sql(f, header)}) WHERE _source_row IN "
            f"({', '.join(str(r) for r in example_rows)}) ORDER BY _source_row"
        ).fetchall()
        shown = "; ".join(f"row {r} {v!r}" for r, v in values)
        kind = f.entity.column(col).type
        problems.append(f"column {col} ({kind}): {count} value(s) do not parse, e.g. {shown}")
    raise DataQualityError(
        f"{f.path}: " + " | ".join(problems) + ". Rows are numbered from 1 after the header. "
        "Timestamps must be ISO 8601, numbers plain decimals, booleans true/false/1/0/yes/no."
    )


def _merge(con: duckdb.DuckDBPyConnection, entity: Entity, staged: list[str]) -> None:
    """Merge new rows into raw.<entity>, touching only the keys they bring.

    The newest version of each key among the new rows replaces the stored one when it is
    newer by the supersede order; a daily batch thus costs in proportion to its size, not
    to the size of the table.
    """
    target = f"{RAW_SCHEMA}.{entity.name}"
    new_rows = " UNION ALL ".join(f"SELECT * FROM {t}" for t in staged)
    key = ", ".join(entity.key)
    # Rows with a missing key cannot be matched across batches; they are kept (and the
    # hygiene suite reports them) rather than collapsed into one another.
    null_key = " OR ".join(f"{k} IS NULL" for k in entity.key)
    newest_first = ", ".join(f"{part} DESC" for part in _version(entity))
    con.execute(
        f"""CREATE TEMP TABLE _newest AS SELECT * FROM ({new_rows})
            QUALIFY {null_key}
                OR row_number() OVER (PARTITION BY {key} ORDER BY {newest_first}) = 1"""
    )
    matches = " AND ".join(f"t.{k} = n.{k}" for k in entity.key)
    newer = f"row({', '.join(_version(entity, 'n.'))}) > row({', '.join(_version(entity, 't.'))})"
    con.execute(
        f"""CREATE TEMP TABLE _winners AS SELECT n.* FROM _newest n
            LEFT JOIN {target} t ON {matches}
            WHERE t.{entity.key[0]} IS NULL OR {newer}"""
    )
    con.execute(f"DELETE FROM {target} t USING _winners n WHERE {matches}")
    con.execute(f"INSERT INTO {target} SELECT * FROM _winners")
    con.execute("DROP TABLE _newest")
    con.execute("DROP TABLE _winners")


def _version(entity: Entity, alias: str = "") -> list[str]:
    """The supersede order as a tuple: latest updated_at (a missing one loses), then the
    later batch, then the later row of the file."""
    parts = [f"{alias}_batch_id", f"{alias}_source_row"]
    if "updated_at" in entity.column_names:
        parts.insert(0, f"coalesce({alias}updated_at, TIMESTAMP '-infinity')")
    return parts


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
