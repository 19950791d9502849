"""One asset per raw entity, loaded together: one pass over the landing directory."""

from collections.abc import Iterator

import dagster as dg

from ingestion.errors import ConfigError, DataQualityError, LandingError
from ingestion.landing.layout import prepare_landing
from ingestion.landing_checks import freshness, record, volume
from ingestion.loader import IngestionReport
from ingestion.schema import ENTITIES
from ingestion.sources import ingest_sources
from ingestion.warehouse import connect
from orchestration.lib.pipeline import BATCH_TAG, PipelineResource, WarehouseWriter

RAW_TABLES: tuple[str, ...] = (*ENTITIES, "stage_map")
# Dagster's tag on runs its scheduler launched.
SCHEDULE_TAG = "dagster/schedule_name"


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


@dg.multi_asset(
    name="raw_tables",
    specs=[
        dg.AssetSpec(
            raw_key(name),
            group_name="raw",
            kinds={"duckdb"},
            description=(
                "The stage map of the configuration: source label → canonical stage."
                if name == "stage_map"
                else f"Canonical {name}, latest version per key, with lineage columns."
            ),
        )
        for name in RAW_TABLES
    ],
)
def raw_tables(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    warehouse_writer: WarehouseWriter,  # held for the whole run: no writer in between
) -> Iterator:
    try:
        yield from _ingest(context, pipeline)
    except (ConfigError, LandingError, DataQualityError) as exc:
        # The user's to fix: trying again cannot help, so the retry policy is bypassed.
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def _ingest(context: dg.AssetExecutionContext, pipeline: PipelineResource) -> Iterator:
    cfg = pipeline.settings()
    as_of = pipeline.run_as_of(context)
    # A run launched for one batch by the sensor ingests up to that batch only.
    until_batch = context.run.tags.get(BATCH_TAG)
    generated = prepare_landing(cfg, end=as_of.date())
    if generated:
        context.log.info(f"generated synthetic landing data: {generated}")
    # A scheduled run may start while an export is being written; the sensor's runs only
    # ever get settled batches.
    settle_seconds = cfg.sensor.settle_seconds if SCHEDULE_TAG in context.run.tags else None
    if cfg.engine == "spark":
        from ingestion.spark.pipeline import ingest_sources_spark

        report = ingest_sources_spark(
            cfg, run_id=context.run.run_id, as_of=as_of, until_batch=until_batch,
            settle_seconds=settle_seconds, log=context.log.info, warn=context.log.warning,
        )  # fmt: skip
        yield from _materializations(report)
        return
    quality = cfg.quality
    con = connect(cfg.warehouse, memory_limit=cfg.memory_limit)
    try:
        report = ingest_sources(
            con,
            cfg,
            run_id=context.run.run_id,
            until_batch=until_batch,
            settle_seconds=settle_seconds,
            log=context.log.info,
            warn=context.log.warning,
        )
        landing_outcomes = [
            freshness(
                con,
                cfg.landing_dir,
                as_of,
                quality.freshness_max_age_hours,
                quality.severity.get("landing.freshness", "warn"),
            ),
            *volume(
                con,
                context.run.run_id,
                quality.volume_min_ratio,
                quality.volume_max_ratio,
                quality.severity.get("landing.volume", "warn"),
            ),
        ]
        record(con, landing_outcomes, context.run.run_id, as_of)
    finally:
        con.close()
    yield from _materializations(report)


def _materializations(report: IngestionReport) -> Iterator:
    for name in RAW_TABLES:
        yield dg.MaterializeResult(
            asset_key=raw_key(name),
            metadata={
                "dagster/row_count": report.table_rows.get(name, 0),
                "new_input_rows": report.rows(name),
                "loaded_rows": report.rows(name, "loaded_rows"),
                "quarantined_rows": report.rows(name, "quarantined_rows"),
                "duplicate_rows": report.rows(name, "duplicate_rows"),
                "batches": ", ".join(report.batches) or "none new",
            },
        )


defs = dg.Definitions(assets=[raw_tables])
