"""The sensor that runs the pipeline when a new batch lands."""

import json
import time
from datetime import UTC, datetime

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ingestion.config import SensorSettings, format_as_of
from ingestion.landing.layout import settled_batches
from orchestration.lib.pipeline import AS_OF_TAG, BATCH_TAG, PipelineResource

# Which new batches a sensor run covers (the batch tag names the newest of them).
NEW_BATCHES_TAG = "crm/new_batches"


def landing_batch_sensor(
    job: UnresolvedAssetJobDefinition, settings: SensorSettings
) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_batches",
        job=job,
        minimum_interval_seconds=settings.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches the pipeline once per new batch folder in the landing "
        "directory, when the folder's files have stopped changing (sensor.settle_seconds).",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, pipeline: PipelineResource
    ) -> dg.SensorResult | dg.SkipReason:
        cfg = pipeline.settings()
        sources = [spec for spec in cfg.sources if spec.kind != "synthetic"]
        if not sources:
            return dg.SkipReason("The synthetic source generates its own batches.")
        # The cursor is every batch already handed to a run: exactly one run per batch,
        # whatever order batches arrive in. The run key guards a lost cursor. With
        # several sources, a batch is known as <source>/<batch>.
        seen = set(json.loads(context.cursor)) if context.cursor else set()
        as_of = format_as_of(datetime.now(UTC).replace(tzinfo=None, microsecond=0))
        requests, skipped, handed = [], [], set()
        for spec in sources:
            prefix = f"{spec.name}/" if len(sources) > 1 else ""
            ready, unsettled = settled_batches(
                spec.landing_dir, cfg.sensor.settle_seconds, time.time()
            )
            # A run ingests every batch up to its own: one still being written comes later.
            new = [
                b for b in ready if prefix + b not in seen and (not unsettled or b < unsettled[0])
            ]
            if not new:
                waiting = f"; still being written: {', '.join(unsettled)}" if unsettled else ""
                skipped.append(f"No new batch in {spec.landing_dir}{waiting}.")
                continue
            newest = prefix + new[-1]
            covered = (
                ", ".join(new) if len(new) <= 3 else f"{len(new)} batches, {new[0]} … {new[-1]}"
            )
            requests.append(
                dg.RunRequest(
                    run_key=f"batch:{newest}",
                    tags={BATCH_TAG: newest, NEW_BATCHES_TAG: covered, AS_OF_TAG: as_of},
                )
            )
            handed |= {prefix + b for b in new}
        if not requests:
            return dg.SkipReason(" ".join(skipped))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(seen | handed)))

    return _sensor
