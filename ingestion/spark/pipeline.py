"""What the pipeline's steps call with ``engine: spark``: ingestion with the landing checks,
and the quality records a run's checks read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ingestion.config import PipelineConfig, SourceSpec
from ingestion.landing_checks import LandingOutcome, freshness, volume
from ingestion.loader import IngestionReport
from ingestion.spark.loader import _append, ingest_spark
from ingestion.spark.mirror import mirror_quality
from ingestion.spark.session import get_session
from ingestion.spark.warehouse import QUALITY_TABLES
from ingestion.warehouse import QUALITY_SCHEMA, create_quality_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from ingestion.sources.reconcile import BatchRecord


def ingest_sources_spark(
    cfg: PipelineConfig,
    *,
    run_id: str,
    as_of: datetime,
    until_batch: str | None = None,
    settle_seconds: float | None = None,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> IngestionReport:
    """ingestion.sources.ingest_sources and the landing checks, on Spark: the same sources
    in the same order, CRM exports converted by the same adapters (into canonical batches
    beside the warehouse) and their rows reconciled the same way."""
    from ingestion.sources import load_sources, loader_settings, stage_map

    spark = get_session(cfg)
    stages = stage_map(cfg)

    def load(
        spec: SourceSpec, landing: Path, until: str | None, batches: set[str] | None
    ) -> IngestionReport:
        settings = loader_settings(cfg, spec, stages, run_id)
        return ingest_spark(spark, landing, until_batch=until, batches=batches, **settings)

    report = load_sources(
        cfg,
        load,
        lambda source, records: record_batches(spark, source, records, run_id),
        until_batch=until_batch,
        settle_seconds=settle_seconds,
        log=log,
        warn=warn,
        engine_note=" on Spark",
    )
    _landing_checks(cfg, run_id, as_of)
    # The checks, the run summary and the report read the records from the DuckDB file.
    mirror_quality(cfg)
    return report


def record_batches(
    spark: SparkSession, source: str, records: list[BatchRecord], run_id: str
) -> list[str]:
    """ingestion.sources.reconcile.record on Spark: the rows it records (tallies and
    findings, few: one per export file) computed by the same code in a DuckDB in memory,
    then appended to Spark's quality tables. Returns the findings' messages."""
    from ingestion.sources.reconcile import record

    with duckdb.connect() as con:
        messages = record(con, source, records, run_id)
        for table in ("source_reconciliation", "validation_results"):
            columns = ", ".join(f'"{name}"' for name, _ in QUALITY_TABLES[table])
            rows = con.execute(f"SELECT {columns} FROM {QUALITY_SCHEMA}.{table}").fetchall()
            _append(spark, table, [tuple(r) for r in rows])
    return messages


def _landing_checks(cfg: PipelineConfig, run_id: str, as_of: datetime) -> None:
    """Freshness and volume (ingestion.landing_checks) read quality.ingestion_log, one row
    per landing file: small enough to check in DuckDB on the driver with the same code."""
    spark = get_session(cfg)
    log = spark.table(f"{QUALITY_SCHEMA}.ingestion_log").toPandas()
    quality = cfg.quality
    with duckdb.connect() as con:
        create_quality_tables(con)
        con.register("_log", log)
        # By name: the DuckDB log has columns the Spark log does not keep (file_size ...).
        con.execute(f"INSERT INTO {QUALITY_SCHEMA}.ingestion_log BY NAME SELECT * FROM _log")
        outcomes: list[LandingOutcome] = [
            freshness(
                con,
                cfg.landing_dir,
                as_of,
                quality.freshness_max_age_hours,
                quality.severity.get("landing.freshness", "warn"),
            ),
            *volume(
                con,
                run_id,
                quality.volume_min_ratio,
                quality.volume_max_ratio,
                quality.severity.get("landing.volume", "warn"),
            ),
        ]
    _append(
        spark,
        "validation_results",
        [
            (run_id, as_of, None, o.entity, None, o.rule, "sql", None, o.severity, o.success,
             None, None, o.observed, "[]", o.message)
            for o in outcomes
        ],
    )  # fmt: skip


def run_records(cfg: PipelineConfig, run_id: str) -> tuple[list[Any], list[Any]]:
    """One run's rule results and file log (the hygiene checks' input), as tuples in the
    order orchestration.defs.quality.checks reads them from DuckDB."""
    spark = get_session(cfg)
    results = spark.sql(
        f"""SELECT entity, rule, severity, success, coalesce(unexpected_count, 0),
                   examples, message, source_file
            FROM {QUALITY_SCHEMA}.validation_results WHERE run_id = :run_id
            ORDER BY entity, rule, source_file""",
        args={"run_id": run_id},
    ).collect()
    files = spark.sql(
        f"""SELECT entity, source_file, status, reasons, input_rows, loaded_rows,
                   quarantined_rows, duplicate_rows, rejected_rows
            FROM {QUALITY_SCHEMA}.ingestion_log WHERE run_id = :run_id
            ORDER BY source_file""",
        args={"run_id": run_id},
    ).collect()
    return [tuple(r) for r in results], [tuple(r) for r in files]
