"""The pipeline resource: where the configuration, landing and warehouse are, and as_of."""

import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from ingestion.config import PipelineConfig, check_source, load_config, parse_as_of
from ingestion.warehouse import WriterLock

# A run's as_of travels as a run tag, so every step of the run (and a re-execution of it)
# computes against the same instant.
AS_OF_TAG = "crm/as_of"
# The batch a sensor launched the run for: the run ingests batches up to this one only.
BATCH_TAG = "crm/batch"
# How long a run waits for another writer before it fails (and is retried).
LOCK_WAIT_SECONDS = 15 * 60


class PipelineResource(dg.ConfigurableResource):
    """Settings of one deployment. Empty fields fall back to the config file's values."""

    config_path: str | None = None
    source: str | None = None
    landing_dir: str | None = None
    warehouse: str | None = None
    as_of: str | None = None

    @classmethod
    def from_env(cls) -> "PipelineResource":
        """The settings a daemon or `dagster dev` gets: CRM_* environment variables."""
        source = os.environ.get("CRM_SOURCE") or None
        if source is not None:
            check_source(source, "CRM_SOURCE")  # named as the operator wrote it
        return cls(
            config_path=os.environ.get("CRM_CONFIG") or None,
            source=source,
            landing_dir=os.environ.get("CRM_LANDING_DIR") or None,
            warehouse=os.environ.get("CRM_WAREHOUSE_PATH") or None,
        )

    def settings(self) -> PipelineConfig:
        cfg = load_config(Path(self.config_path) if self.config_path else None)
        cfg = cfg.with_overrides(
            source=self.source, landing_dir=self.landing_dir, warehouse=self.warehouse
        )
        # Steps and the dbt subprocess may run from other directories than the launcher.
        return cfg.with_overrides(
            landing_dir=cfg.landing_dir.resolve(),
            warehouse=cfg.warehouse.resolve(),
            spark=replace(cfg.spark, warehouse_dir=cfg.spark_warehouse_dir),
            source_list=tuple(
                replace(
                    spec,
                    landing_dir=spec.landing_dir.resolve(),
                    mapping=spec.mapping.resolve() if spec.mapping else None,
                )
                for spec in cfg.source_list
            ),
        )

    def run_as_of(
        self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext
    ) -> datetime:
        """as_of of this run: its tag, else this resource's value, else when the run was created."""
        tag = context.run.tags.get(AS_OF_TAG)
        if tag:
            return parse_as_of(tag, f"run tag {AS_OF_TAG}")
        if self.as_of:
            return parse_as_of(self.as_of, "as_of")
        record = context.instance.get_run_record_by_id(context.run.run_id)
        created = record.create_timestamp if record else datetime.now(UTC)
        return created.astimezone(UTC).replace(tzinfo=None, microsecond=0)


class WarehouseWriter(dg.ConfigurableResource):
    """Holds the warehouse's writer lock from the start of a run to its end.

    The job runs in one process (in-process executor), so the resource is set up once per
    run. Steps that write or read the warehouse require it; sensors never do, so a sensor
    tick never contends with a run.
    """

    pipeline: PipelineResource
    _lock: WriterLock | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        lock = WriterLock(
            self.pipeline.settings().warehouse,
            f"Dagster run {context.run.run_id if context.run else '?'}",
        )
        # Dagster's run queue keeps its own runs apart; this waits out a writer from
        # outside Dagster (a `crm-pipeline run` from a terminal) instead of failing.
        self._lock = lock.acquire(
            wait_seconds=LOCK_WAIT_SECONDS,
            on_wait=lambda other: (
                context.log
                and context.log.warning(
                    f"waiting for the warehouse: it is being written by {other}"
                )
            ),
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
