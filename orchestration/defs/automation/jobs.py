"""The job that materializes everything, and the daily schedule that runs it."""

import dagster as dg

from ingestion.config import ScheduleSettings
from orchestration.lib.pipeline import AS_OF_TAG

crm_pipeline_job = dg.define_asset_job(
    name="crm_pipeline",
    selection=dg.AssetSelection.all(),
    description="Ingest the landing directory, run the hygiene checks, build every dbt model.",
)


def daily_schedule(settings: ScheduleSettings) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="crm_pipeline_daily",
        job=crm_pipeline_job,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # as_of is the scheduled instant, so re-running a past tick reproduces its numbers.
        as_of = context.scheduled_execution_time.isoformat()
        return dg.RunRequest(tags={AS_OF_TAG: as_of})

    return _schedule


def build_defs(settings: ScheduleSettings) -> dg.Definitions:
    return dg.Definitions(jobs=[crm_pipeline_job], schedules=[daily_schedule(settings)])
