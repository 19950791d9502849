"""Load a landing directory of canonical batches into ``raw.*`` in Spark's catalog.

The same steps, rules and records as the DuckDB loader (ingestion.loader, module doc),
executed by Spark: each file read and typed (values that do not parse become NULL and are
flagged), the newest version per key kept and compared with the stored row, the hygiene
suite run on the candidates by Great Expectations' Spark engine (ingestion.spark.hygiene),
then the batch rejected whole, or its failing rows quarantined and the rest merged. The
lineage columns, the supersede order (latest updated_at, then the later batch, then the
later row of the file), the conflicting-quota rule, full exports' soft deletes and
quality.ingestion_log / validation_results / quarantine are the DuckDB loader's.

Parquet tables cannot update rows in place: a merge writes the table's next version as
``raw.<table>__next`` and swaps it in once every file of the batch passed, so a rejected
or failed batch leaves ``raw.*`` as it was.

Why one module (~570 lines): it mirrors ``ingestion.loader`` step for step, batch by
batch only (Spark pays its fixed costs per job, not per GX expectation), and is best
read beside it; its gate lives in ``ingestion.spark.hygiene``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ingestion.errors import LandingError
from ingestion.landing.layout import LandingFile, discover, file_sha256
from ingestion.landing.reader import read_header
from ingestion.loader import (
    _FALSE,
    _TRUE,
    FileResult,
    IngestionReport,
    SqlDialect,
    candidates_sql,
    file_verdict,
    reject_if_any_failed,
    run_files,
)
from ingestion.schema import (
    ENTITIES,
    EXPORT_LINEAGE,
    LINEAGE_COLUMNS,
    PROCESSING_ORDER,
    REFERENCES,
    Column,
    Entity,
)
from ingestion.spark.hygiene import validate_frame
from ingestion.spark.warehouse import (
    QUALITY_TABLES,
    create_tables,
    ddl_schema,
    raw_columns,
)
from ingestion.stages import StageMap, normalize_label
from ingestion.warehouse import QUALITY_SCHEMA, RAW_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The candidate query is the DuckDB loader's (ingestion.loader.candidates_sql), in Spark's
# words: Spark has no distinct window aggregate and no -infinity timestamp.
SPARK_SQL = SqlDialect(
    row="struct",
    earliest="TIMESTAMP '0001-01-01 00:00:00'",
    distinct_in_window="size(collect_set({0}) OVER ({1}))",
)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _micros(value: datetime) -> int:
    """A naive UTC datetime as microseconds since the epoch."""
    delta = value - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class _RunContext:
    source: str
    ingested_at: datetime
    run_id: str
    labels: set[str]
    severities: dict[str, str]
    quarantine_max_share: float
    source_timezone: str
    full_export: bool = False
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class _Staged:
    result: FileResult
    typed: DataFrame | None  # the file typed like its raw table, plus flags
    raw: DataFrame | None  # the file as text, with _source_row (for quarantine)
    header: list[str]
    candidates: DataFrame | None = None


def ingest_spark(
    spark: SparkSession,
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
    """ingestion.loader.ingest on Spark: same arguments, same report."""
    files = discover(landing)
    create_tables(spark)
    ingested_at = (ingested_at or datetime.now(UTC)).replace(tzinfo=None)
    report = IngestionReport()
    published = {
        (r.source_file, r.content_sha256)
        for r in spark.sql(
            f"SELECT source_file, content_sha256 FROM {QUALITY_SCHEMA}.ingestion_log "
            f"WHERE status = 'published'"
        ).collect()
    }
    to_load: dict[str, list[tuple[LandingFile, str]]] = {}
    for f in run_files(files, until_batch, batches):
        sha = file_sha256(f.path)
        if (f.relative, sha) in published:
            report.skipped_files.append(f.relative)
        else:
            to_load.setdefault(f.batch_id, []).append((f, sha))
    stage_map = stage_map or StageMap()
    ctx = _RunContext(
        source=source,
        ingested_at=ingested_at,
        run_id=run_id or "",
        labels=set(stage_map.label_map()),
        severities=dict(severities or {}),
        quarantine_max_share=quarantine_max_share,
        source_timezone=source_timezone,
        full_export=full_export,
        value_labels={k: dict(v) for k, v in (value_labels or {}).items()},
    )
    _write_stage_map(spark, stage_map)
    order = {name: n for n, name in enumerate(PROCESSING_ORDER)}
    for batch_id in sorted(to_load):
        files_in_order = sorted(to_load[batch_id], key=lambda fs: order[fs[0].entity.name])
        staged = [_stage_file(spark, f, sha, ctx) for f, sha in files_in_order]
        results = _validate_and_publish(spark, staged, ctx)
        report.files.extend(results)
    for table in (*ENTITIES, "stage_map"):
        report.table_rows[table] = spark.table(f"{RAW_SCHEMA}.{table}").count()
    return report


def _write_stage_map(spark: SparkSession, stage_map: StageMap) -> None:
    frame = stage_map.to_frame()
    schema = spark.table(f"{RAW_SCHEMA}.stage_map").schema
    rows = [tuple(r) for r in frame.itertuples(index=False)]
    spark.createDataFrame(rows, schema=schema).write.insertInto(
        f"{RAW_SCHEMA}.stage_map", overwrite=True
    )


def parse_expr(col: Column, raw: str) -> str:
    """ingestion.loader.parse_sql in Spark SQL: one raw text value typed, NULL where it
    does not parse (ANSI mode off: a failed cast is NULL)."""
    v = f"nullif(trim({raw}), '')"
    if col.type == "string":
        return f"nullif({raw}, '')"
    if col.type == "timestamp":
        # Offsets convert to UTC; values without one are read in the session time zone.
        return f"cast({v} as timestamp)"
    if col.type == "date":
        return (
            f"CASE WHEN {v} RLIKE '^[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}$' "
            f"THEN cast({v} as date) ELSE cast(cast({v} as timestamp) as date) END"
        )
    if col.type == "double":
        return f"cast({v} as double)"
    if col.type == "bigint":
        d = f"cast({v} as double)"
        return f"CASE WHEN {d} = floor({d}) THEN cast({d} as bigint) END"
    if col.type == "boolean":
        t = ", ".join(f"'{x}'" for x in _TRUE)
        fl = ", ".join(f"'{x}'" for x in _FALSE)
        return f"CASE WHEN lower({v}) IN ({t}) THEN true WHEN lower({v}) IN ({fl}) THEN false END"
    raise AssertionError(col.type)


_SPARK_TYPES = {
    "string": "string",
    "timestamp": "timestamp",
    "date": "date",
    "double": "double",
    "bigint": "bigint",
    "boolean": "boolean",
}


def _read_text(spark: SparkSession, f: LandingFile, header: list[str]) -> DataFrame:
    """The file with every column as text, in file order, plus _source_row (1-based)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    path = str(f.path)
    ext = f.path.name.partition(".")[2]
    if ext == "csv":
        schema = StructType([StructField(h, StringType()) for h in header])
        frame = spark.read.csv(
            path, schema=schema, header=True, quote='"', escape='"', multiLine=True,
            mode="FAILFAST", enforceSchema=True,
        )  # fmt: skip
    elif ext == "parquet":
        frame = spark.read.parquet(path)
    else:
        frame = spark.read.option("primitivesAsString", "true").json(path)
    frame = frame.select(
        *[F.col(_q(h)).cast("string").alias(h) if h in frame.columns else F.lit(None).cast(
            "string").alias(h) for h in header]
    )  # fmt: skip
    # A single file is read in order, split by offset: the increasing id keeps that order.
    order = Window.orderBy(F.monotonically_increasing_id())
    return frame.withColumn("_source_row", F.row_number().over(order).cast("bigint"))


def _stage_file(spark: SparkSession, f: LandingFile, sha: str, ctx: _RunContext) -> _Staged:
    """Read and type one file like its raw table, plus a ``<column>__parses`` flag per
    typed column; file-level problems reject the file (the DuckDB loader's messages)."""
    result = FileResult(f, sha)
    try:
        with duckdb.connect() as con:  # the header checks and their messages are shared
            header = read_header(con, f)
    except LandingError as exc:
        result.reasons.append(str(exc))
        return _Staged(result, None, None, [])
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
        return _Staged(result, None, None, header)
    extras = [by_name[k] for k in by_name if k not in f.entity.column_names]
    raw = {c.name: _q(by_name[c.name]) for c in f.entity.columns if c.name in by_name}
    for name, expr in raw.items():
        mapping = ctx.value_labels.get(f"{f.entity.name}.{name}")
        if mapping:
            cases = " ".join(
                f"WHEN {_lit(normalize_label(k))} THEN {_lit(v)}" for k, v in mapping.items()
            )
            raw[name] = (
                f"CASE lower(trim(regexp_replace({expr}, '\\\\s+', ' '))) {cases} ELSE {expr} END"
            )
    typed, flags = [], []
    for c in f.entity.columns:
        type_ = _SPARK_TYPES[c.type]
        if c.name not in raw:
            typed.append(f"cast(null as {type_}) AS {c.name}")
            continue
        parsed = parse_expr(c, raw[c.name])
        typed.append(f"cast({parsed} as {type_}) AS {c.name}")
        if c.type != "string":
            flags.append(
                f"({parsed} IS NOT NULL OR nullif(trim({raw[c.name]}), '') IS NULL) "
                f"AS {c.name}__parses"
            )
    attributes = (
        "to_json(named_struct("
        + ", ".join(f"{_lit(c)}, {_q(c)}" for c in extras)
        + "), map('ignoreNullFields', 'false'))"
        if extras
        else "cast(null as string)"
    )
    lineage = {
        "_source": _lit(ctx.source),
        "_batch_id": _lit(f.batch_id),
        "_source_file": _lit(f.relative),
        "_source_row": "_source_row",
        # An instant, not a text: the session's zone is the source's while this is read.
        "_ingested_at": f"timestamp_micros({_micros(ctx.ingested_at)})",
        "_attributes": attributes,
    }
    columns = typed + [f"{lineage[name]} AS {name}" for name, _ in LINEAGE_COLUMNS] + flags
    columns += [f"{_q(by_name[c])} AS {c}" for c in EXPORT_LINEAGE if c in by_name]
    # Timestamps without an offset are read in the source's time zone: the zone is bound
    # when the plan is analysed, and the frame is materialised before it is reset.
    spark.conf.set("spark.sql.session.timeZone", ctx.source_timezone)
    try:
        text = _read_text(spark, f, header).localCheckpoint(eager=True)
        typed_frame = text.selectExpr(*columns).localCheckpoint(eager=True)
        result.input_rows = typed_frame.count()
    except Exception as exc:  # Spark's reader errors: the file cannot be read
        if type(exc).__name__ not in ("AnalysisException", "Py4JJavaError", "SparkException"):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result.reasons.append(f"{f.relative}: Spark could not read the file ({reason[:300]}).")
        return _Staged(result, None, None, header)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    return _Staged(result, typed_frame, text, header)


def _with_candidates(spark: SparkSession, s: _Staged) -> DataFrame:
    """ingestion.loader._with_candidates: the rows that would change raw."""
    entity = s.result.file.entity
    name = f"_staged_{entity.name}"
    assert s.typed is not None
    s.typed.createOrReplaceTempView(name)
    return spark.sql(candidates_sql(entity, name, SPARK_SQL)).localCheckpoint(eager=True)


def _validation_frame(
    spark: SparkSession, entity: Entity, candidates: DataFrame, accepted: dict[str, DataFrame]
) -> DataFrame:
    """The candidates with the flags the suite reads (ingestion.loader._validation_frame):
    whether each reference resolves (in raw or among this batch's accepted rows), a stage
    change's opportunity's creation time, whether a contact's e-mail is already taken."""
    candidates.createOrReplaceTempView("_candidates")
    flags, joins = [], []
    for n, (column, ref_entity, ref_key) in enumerate(REFERENCES.get(entity.name, ())):
        view = f"_known_{n}"
        known = spark.table(f"{RAW_SCHEMA}.{ref_entity}").select(ref_key)
        if ref_entity in accepted:
            known = known.unionByName(accepted[ref_entity].select(ref_key))
        known.distinct().withColumnRenamed(ref_key, "_k").createOrReplaceTempView(view)
        joins.append(f"LEFT JOIN {view} ON {view}._k = c.{column}")
        flags.append(f"(c.{column} IS NULL OR {view}._k IS NOT NULL) AS {column}__known")
    if entity.name == "stage_changes":
        joins.append(
            f"LEFT JOIN (SELECT opportunity_id AS _oid, created_at AS _ro_created "
            f"FROM {RAW_SCHEMA}.opportunities) ro ON ro._oid = c.opportunity_id"
        )
        created = "ro._ro_created"
        if "opportunities" in accepted:
            accepted["opportunities"].selectExpr(
                "opportunity_id AS _bid", "created_at AS _bo_created"
            ).createOrReplaceTempView("_batch_opportunities")
            joins.append("LEFT JOIN _batch_opportunities bo ON bo._bid = c.opportunity_id")
            created = "coalesce(bo._bo_created, ro._ro_created)"
        flags.append(f"{created} AS opportunity_created_at")
    if entity.name == "contacts":
        spark.sql(
            f"""SELECT DISTINCT c._source_row AS _seen_row FROM _candidates c
                JOIN {RAW_SCHEMA}.contacts o
                  ON lower(trim(o.email)) = lower(trim(c.email))
                 AND o.contact_id <> c.contact_id"""
        ).createOrReplaceTempView("_seen_emails")
        joins.append("LEFT JOIN _seen_emails se ON se._seen_row = c._source_row")
        flags.append("(se._seen_row IS NOT NULL) AS email__seen_before")
    select = ", ".join(["c.*", *flags])
    return spark.sql(f"SELECT {select} FROM _candidates c {' '.join(joins)}")


def _validate_and_publish(
    spark: SparkSession, staged: list[_Staged], ctx: _RunContext
) -> list[FileResult]:
    """Validate one staged batch and publish it, or reject all of it."""
    quarantine: dict[str, list[tuple[int, list[str]]]] = {}
    accepted: dict[str, DataFrame] = {}
    outcome_rows: list[tuple] = []
    for s in staged:
        if s.typed is None:
            continue
        entity = s.result.file.entity
        s.candidates = _with_candidates(spark, s)
        count = s.candidates.count()
        s.result.duplicate_rows = s.result.input_rows - count
        frame = _validation_frame(spark, entity, s.candidates, accepted)
        outcomes = validate_frame(entity.name, frame, labels=ctx.labels, severities=ctx.severities)
        outcome_rows += _outcome_rows(s.result, outcomes, ctx)
        bad_rows = quarantine[s.result.file.relative] = file_verdict(
            s.result, outcomes, ctx.quarantine_max_share
        )
        good = s.candidates
        if bad_rows:
            bad = spark.createDataFrame([(r,) for r, _rules in bad_rows], "_bad_row bigint")
            good = good.join(bad, good["_source_row"] == bad["_bad_row"], "left_anti")
        accepted[entity.name] = good.localCheckpoint(eager=True)

    if outcome_rows:
        _append(spark, "validation_results", outcome_rows)
    if not reject_if_any_failed([s.result for s in staged]):
        swaps = []
        for s in staged:
            if s.typed is None:
                continue
            entity = s.result.file.entity
            swaps.append(
                _publish(spark, s, accepted[entity.name], quarantine[s.result.file.relative], ctx)
            )
        # Every next version is written before any is swapped in: a failure while
        # writing leaves raw.* as it was.
        for table in swaps:
            _swap(spark, table)
    _append(spark, "ingestion_log", _log_rows(staged, ctx))
    return [s.result for s in staged]


def _publish(
    spark: SparkSession,
    s: _Staged,
    good: DataFrame,
    bad_rows: list[tuple[int, list[str]]],
    ctx: _RunContext,
) -> str:
    """Quarantine the failing rows with their raw values; write the raw table's next
    version (stored rows not superseded, plus the accepted candidates). Returns the table."""
    from pyspark.sql import functions as F

    f = s.result.file
    entity = f.entity
    if bad_rows:
        assert s.raw is not None
        bad = spark.createDataFrame(
            [(row, json.dumps(rules)) for row, rules in bad_rows], "_bad_row bigint, rules string"
        )
        raw_json = F.to_json(
            F.struct(*[F.col(_q(h)) for h in s.header]), {"ignoreNullFields": "false"}
        )
        # A converted CRM export's row also names the user's own file and line (NULL for
        # a canonical landing file), as on DuckDB (ingestion.loader._publish).
        by_name: dict[str, str] = {}
        for name in s.header:
            by_name.setdefault(name.strip().lower(), name)
        export = [
            F.col(_q(by_name[c])).cast("string") if c in by_name else F.lit(None).cast("string")
            for c in EXPORT_LINEAGE
        ]
        rows = s.raw.join(bad, s.raw["_source_row"] == bad["_bad_row"]).select(
            F.lit(entity.name), F.lit(f.batch_id), F.lit(f.relative), F.col("_source_row"),
            raw_json, F.col("rules"), F.lit(ctx.ingested_at), F.lit(ctx.run_id), *export,
        )  # fmt: skip
        rows.write.insertInto(f"{QUALITY_SCHEMA}.quarantine")
    s.result.quarantined_rows = len(bad_rows)
    columns = [name for name, _ in raw_columns(entity)]
    target = spark.table(f"{RAW_SCHEMA}.{entity.name}")
    kept = target.join(good.select(*entity.key), list(entity.key), "left_anti")
    if ctx.full_export and entity.kind == "versioned" and "is_deleted" in entity.column_names:
        (key,) = entity.key
        assert s.typed is not None
        in_file = s.typed.where(F.col(key).isNotNull()).select(F.col(key).alias("_in_file"))
        kept = kept.join(in_file, kept[key] == in_file["_in_file"], "left")
        missing = (
            (F.col("_source") == ctx.source)
            & ~F.coalesce(F.col("is_deleted"), F.lit(False))
            & F.col("_in_file").isNull()
        )
        kept = kept.withColumn("_gone", missing).drop("_in_file")
        for name, value in (
            ("is_deleted", F.lit(True)),
            ("_batch_id", F.lit(f.batch_id)),
            ("_source_file", F.lit(f.relative)),
            ("_ingested_at", F.lit(ctx.ingested_at).cast("timestamp")),
        ):
            kept = kept.withColumn(name, F.when(F.col("_gone"), value).otherwise(F.col(name)))
        kept = kept.localCheckpoint(eager=True)
        s.result.deleted_rows = kept.where("_gone").count()
        kept = kept.drop("_gone")
    merged = kept.select(*columns).unionByName(good.select(*columns))
    s.result.loaded_rows = good.count()
    next_table = f"{RAW_SCHEMA}.{entity.name}__next"
    spark.sql(f"DROP TABLE IF EXISTS {next_table}")
    merged.write.format("parquet").saveAsTable(next_table)
    return entity.name


def _swap(spark: SparkSession, table: str) -> None:
    """raw.<table>__next becomes raw.<table>; the old version is dropped after."""
    name = f"{RAW_SCHEMA}.{table}"
    spark.sql(f"DROP TABLE IF EXISTS {name}__old")
    spark.sql(f"ALTER TABLE {name} RENAME TO {name}__old")
    spark.sql(f"ALTER TABLE {name}__next RENAME TO {name}")
    spark.sql(f"DROP TABLE {name}__old")


def _outcome_rows(result: FileResult, outcomes: Any, ctx: _RunContext) -> list[tuple]:
    return [
        (
            ctx.run_id, ctx.ingested_at, result.file.batch_id, result.file.entity.name,
            result.file.relative, o.rule.name, o.rule.expectation, o.rule.column, o.severity,
            o.success, o.element_count, o.unexpected_count, o.observed,
            json.dumps(list(o.examples)), o.describe(),
        )
        for o in outcomes
    ]  # fmt: skip


def _log_rows(staged: list[_Staged], ctx: _RunContext) -> list[tuple]:
    return [
        (
            ctx.run_id, r.file.batch_id, r.file.entity.name, r.file.relative, r.sha256,
            r.status, r.input_rows, r.loaded_rows, r.quarantined_rows, r.duplicate_rows,
            r.rejected_rows, json.dumps(r.reasons), ctx.ingested_at,
        )
        for r in (s.result for s in staged)
    ]  # fmt: skip


def _append(spark: SparkSession, table: str, rows: list[tuple]) -> None:
    """Append rows to a quality.* table (few: one per file or rule)."""
    if rows:
        frame = spark.createDataFrame(rows, ddl_schema(QUALITY_TABLES[table]))
        frame.write.insertInto(f"{QUALITY_SCHEMA}.{table}")


def quality_rows(spark: SparkSession, sql: str) -> list[Any]:
    """Rows of a query on quality.* (small: the checks read one run's records)."""
    return spark.sql(sql).collect()
