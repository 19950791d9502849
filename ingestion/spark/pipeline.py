"""What the pipeline's steps call with ``engine: spark``: ingestion with the landing checks,
and the quality records a run's checks read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import duckdb

from ingestion.config import PipelineConfig
from ingestion.errors import ConfigError
from ingestion.landing_checks import LandingOutcome, freshness, volume
from ingestion.loader import IngestionReport
from ingestion.spark.loader import _append, ingest_spark
from ingestion.spark.session import get_session
from ingestion.warehouse import QUALITY_SCHEMA, create_quality_tables


def ingest_sources_spark(
    cfg: PipelineConfig,
    *,
    run_id: str,
    as_of: datetime,
    until_batch: str | None = None,
    log: Callable[[str], None] = print,
) -> IngestionReport:
    """ingestion.sources.ingest_sources and the landing checks, on Spark."""
    from ingestion.sources import stage_map

    adapters = [s.name for s in cfg.sources if s.is_adapter]
    if adapters:
        raise ConfigError(
            f"engine: spark loads canonical landings (source synthetic or crm); the CRM "
            f"export adapters ({', '.join(adapters)}) run on engine: duckdb only. Convert "
            f"the exports with engine: duckdb, or use engine: duckdb for these sources."
        )
    spark = get_session(cfg)
    stages = stage_map(cfg)
    target_source, _, target_batch = (until_batch or "").rpartition("/")
    combined = IngestionReport()
    for spec in cfg.sources:
        until = target_batch if target_batch and target_source in ("", spec.name) else None
        report = ingest_spark(
            spark,
            spec.landing_dir,
            stage_map=stages,
            source=spec.name,
            source_timezone=cfg.source_timezone,
            severities=cfg.quality.severity,
            quarantine_max_share=cfg.quality.quarantine_max_share,
            run_id=run_id,
            until_batch=until,
            full_export=spec.full_export,
            value_labels=cfg.value_labels,
        )
        log(f"ingested {spec.name} ({spec.landing_dir}) on Spark: {report}")
        combined.files += report.files
        combined.skipped_files += report.skipped_files
        combined.table_rows = report.table_rows
    _landing_checks(cfg, run_id, as_of)
    return combined


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
