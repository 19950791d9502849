"""The job that materializes everything, and the daily schedule that runs it."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ingestion.config import PipelineConfig, RetrySettings, ScheduleSettings
from orchestration.defs.automation.sensors import landing_batch_sensor
from orchestration.lib.pipeline import AS_OF_TAG

JOB_NAME = "crm_pipeline"
# Every run of the job writes the one DuckDB file. dagster.yaml limits runs with this tag
# to one at a time (deploy/dagster.yaml), so the run queue serialises them.
WAREHOUSE_TAG = "crm/warehouse"


def pipeline_job(retries: RetrySettings) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=JOB_NAME,
        selection=dg.AssetSelection.all(),
        description="Ingest the landing directory, run the hygiene checks, build every dbt model.",
        # One process per run: Python, Dagster and the definitions load once, and the
        # warehouse writer lock (WarehouseWriter) spans the whole run.
        executor_def=dg.in_process_executor,
        # A step that raised (a lock held by a client, a full disk, a killed dbt) is
        # tried again with backoff. Bad data is never retried: a failing blocking check
        # is not a raised error, and the loader raises user errors as Failure with
        # allow_retries=False.
        op_retry_policy=dg.RetryPolicy(
            max_retries=retries.max_retries,
            delay=retries.delay_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
        ),
        tags={
            WAREHOUSE_TAG: "write",
            # When dagster.yaml enables run retries, only a crashed run worker is
            # retried as a whole; step failures are the retry policy's business.
            "dagster/retry_on_asset_or_op_failure": "false",
        },
    )


def daily_schedule(
    job: UnresolvedAssetJobDefinition, settings: ScheduleSettings
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="crm_pipeline_daily",
        job=job,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # as_of is the scheduled instant, so re-running a past tick reproduces its numbers.
        as_of = context.scheduled_execution_time.isoformat()
        return dg.RunRequest(tags={AS_OF_TAG: as_of})

    return _schedule


def build_defs(cfg: PipelineConfig) -> dg.Definitions:
    job = pipeline_job(cfg.retries)
    return dg.Definitions(
        jobs=[job],
        schedules=[daily_schedule(job, cfg.schedule)],
        sensors=[landing_batch_sensor(job, cfg.sensor)],
    )
