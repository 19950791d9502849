"""Alerts that no run raises by itself: a run that failed, and data that went stale.

Check failures alert from inside the run (orchestration/defs/quality/checks.py); these
sensors cover what happens outside a check: a step that crashed, and exports that stopped
arriving while nothing runs.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from ingestion.config import PipelineConfig, SensorSettings
from ingestion.landing.layout import batch_folders
from ingestion.landing_checks import batch_time
from orchestration.lib.alerts import Alert, send_alert
from orchestration.lib.pipeline import PipelineResource
from orchestration.lib.run_failures import run_failure_alert

# Dagster marks a failed run it will retry as a whole (dagster.yaml run_retries).
_WILL_RETRY = "dagster/will_retry"


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts when a run fails for a reason other than a blocking check "
    "(those alert from the check, with the rows and examples).",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, pipeline: PipelineResource
) -> None:
    run = context.dagster_run
    if run.tags.get(_WILL_RETRY) == "true":
        context.log.info(f"run {run.run_id} failed and will be retried; no alert yet")
        return
    records = context.instance.get_records_for_run(
        run.run_id,
        of_type={
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.RESOURCE_INIT_FAILURE,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        },
    ).records
    events = [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event]
    alert = run_failure_alert(run.run_id, run.job_name, events, context.failure_event.message)
    if alert is not None:
        send_alert(pipeline.settings(), alert, log=context.log)


def landing_freshness_sensor(settings: SensorSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_freshness_alert",
        minimum_interval_seconds=settings.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once when no new batch has landed within "
        "quality.freshness_max_age_hours; again only after a new batch arrived and aged.",
    )
    def _sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource) -> dg.SkipReason:
        cfg = pipeline.settings()
        sources = [spec for spec in cfg.sources if spec.kind != "synthetic"]
        if not sources:
            return dg.SkipReason("The synthetic source generates its own batches.")
        now = datetime.now(UTC).replace(tzinfo=None)
        stale = [a for spec in sources if (a := stale_landing(cfg, spec.landing_dir, now))]
        if not stale:
            return dg.SkipReason(
                f"Fresh: a batch landed within {cfg.quality.freshness_max_age_hours:g} h."
            )
        # The cursor names the newest batches already alerted on: one alert per stale spell.
        alerted = set(json.loads(context.cursor)) if context.cursor else set()
        new = [a for a in stale if a.key not in alerted]
        for alert in new:
            send_alert(cfg, alert, log=context.log)
        context.update_cursor(json.dumps(sorted(a.key for a in stale)))
        if not new:
            return dg.SkipReason("Still stale; the alert went out already.")
        return dg.SkipReason(f"Stale data: alert sent ({'; '.join(a.title for a in new)}).")

    return _sensor


def stale_landing(cfg: PipelineConfig, landing: Path, now: datetime) -> Alert | None:
    """The stale-data alert when the newest batch is older than the freshness limit."""
    max_age = cfg.quality.freshness_max_age_hours
    times = [(t, f.name) for f in batch_folders(landing) if (t := batch_time(f.name, f))]
    severity = cfg.quality.severity.get("landing.freshness", "warn")
    where = f"the export job that writes {landing}"
    if not times:
        return Alert(
            kind="stale_data",
            severity=severity,
            title="No CRM batch has landed",
            message=f"The landing directory {landing} holds no batch folder.",
            entity="landing",
            check="landing_freshness",
            where=where,
            key=f"stale_data:{landing}:none",
        )
    newest_time, newest = max(times)
    age = (now - newest_time).total_seconds() / 3600
    if age <= max_age:
        return None
    return Alert(
        kind="stale_data",
        severity=severity,
        title=f"No new CRM batch for {age:.0f} h",
        message=(
            f"The newest batch, {newest}, is {age:.1f} h old, more than "
            f"quality.freshness_max_age_hours ({max_age:g} h). The marts still show the data "
            f"as of that batch. Check that the CRM export still runs."
        ),
        entity="landing",
        check="landing_freshness",
        where=where,
        key=f"stale_data:{landing}:{newest}",
    )


def build_defs(cfg: PipelineConfig) -> dg.Definitions:
    return dg.Definitions(sensors=[run_failure_alert_sensor, landing_freshness_sensor(cfg.sensor)])
