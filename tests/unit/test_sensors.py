"""The landing sensors and the run-failure alert, evaluated the way the daemon does."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration.defs import build_definitions
from orchestration.lib.pipeline import PipelineResource


def write_batch(landing: Path, name: str, age_seconds: float = 3600) -> None:
    """A batch folder whose file was last written ``age_seconds`` ago."""
    folder = landing / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "opportunities.csv"
    path.write_text("opportunity_id,created_at,stage\nO1,2026-01-01,prospecting\n")
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))


@pytest.fixture
def setup(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    config = tmp_path / "crm.yaml"
    config.write_text(
        f"source: crm\nlanding_dir: {landing}\nwarehouse: {tmp_path / 'w.duckdb'}\n"
        "sensor: {interval_seconds: 30, settle_seconds: 60}\n"
        "quality: {freshness_max_age_hours: 48}\n"
    )
    pipeline = PipelineResource(config_path=str(config))
    return build_definitions(pipeline), pipeline, landing, tmp_path


def tick(defs, pipeline, name, cursor=None):
    sensor = defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(cursor=cursor, resources={"pipeline": pipeline})
    return sensor(context), context


def test_sensor_interval_comes_from_the_config(setup):
    defs, *_ = setup
    assert defs.resolve_sensor_def("landing_batches").minimum_interval_seconds == 30
    assert defs.resolve_sensor_def("landing_freshness_alert").minimum_interval_seconds == 30


def test_no_batch_no_run(setup):
    defs, pipeline, _, _ = setup
    result, _ = tick(defs, pipeline, "landing_batches")
    assert isinstance(result, dg.SkipReason)


def test_new_batches_give_one_run_and_are_not_run_again(setup):
    defs, pipeline, landing, _ = setup
    write_batch(landing, "2026-11-25T0600")
    write_batch(landing, "2026-11-26T0600")
    result, _ = tick(defs, pipeline, "landing_batches")
    (request,) = result.run_requests
    # One run covers both: it ingests every batch up to the newest.
    assert request.run_key == "batch:2026-11-26T0600"
    assert request.tags["crm/batch"] == "2026-11-26T0600"
    assert request.tags["crm/new_batches"] == "2026-11-25T0600, 2026-11-26T0600"
    assert "crm/as_of" in request.tags
    assert json.loads(result.cursor) == ["2026-11-25T0600", "2026-11-26T0600"]

    again, _ = tick(defs, pipeline, "landing_batches", cursor=result.cursor)
    assert isinstance(again, dg.SkipReason)

    write_batch(landing, "2026-11-27T0600")
    third, _ = tick(defs, pipeline, "landing_batches", cursor=result.cursor)
    assert [r.tags["crm/batch"] for r in third.run_requests] == ["2026-11-27T0600"]
    assert third.run_requests[0].tags["crm/new_batches"] == "2026-11-27T0600"


def test_a_batch_still_being_written_waits(setup):
    defs, pipeline, landing, _ = setup
    write_batch(landing, "2026-11-25T0600", age_seconds=5)  # settle_seconds is 60
    result, _ = tick(defs, pipeline, "landing_batches")
    assert isinstance(result, dg.SkipReason)
    assert "still being written: 2026-11-25T0600" in result.skip_message
    # A settled later batch must wait too: its run would ingest the unsettled one.
    write_batch(landing, "2026-11-26T0600", age_seconds=3600)
    result, _ = tick(defs, pipeline, "landing_batches")
    assert isinstance(result, dg.SkipReason)

    write_batch(landing, "2026-11-25T0600", age_seconds=120)
    result, _ = tick(defs, pipeline, "landing_batches")
    assert [r.tags["crm/batch"] for r in result.run_requests] == ["2026-11-26T0600"]


def test_an_empty_folder_is_not_a_batch_yet(setup):
    defs, pipeline, landing, _ = setup
    (landing / "2026-11-25T0600").mkdir()
    result, _ = tick(defs, pipeline, "landing_batches")
    assert isinstance(result, dg.SkipReason)


def test_synthetic_source_needs_no_sensor(tmp_path):
    defs = build_definitions(PipelineResource(landing_dir=str(tmp_path)))
    write_batch(tmp_path, "2026-11-25T0600")
    result, _ = tick(defs, PipelineResource(landing_dir=str(tmp_path)), "landing_batches")
    assert isinstance(result, dg.SkipReason)


def alert_log(tmp_path):
    path = tmp_path / "logs" / "alerts.jsonl"
    return [json.loads(line) for line in path.open()] if path.exists() else []


def test_stale_data_alerts_once_per_stale_spell(setup):
    defs, pipeline, landing, tmp_path = setup
    write_batch(landing, "2026-01-05T0600")  # named long before now: stale
    result, context = tick(defs, pipeline, "landing_freshness_alert")
    assert "alert sent" in result.skip_message
    (alert,) = alert_log(tmp_path)
    assert alert["kind"] == "stale_data"
    assert "2026-01-05T0600" in alert["message"]
    assert "freshness_max_age_hours (48 h)" in alert["message"]

    # Every later tick of the same spell stays quiet.
    cursor = context.cursor
    result, context = tick(defs, pipeline, "landing_freshness_alert", cursor=cursor)
    assert "already" in result.skip_message
    assert len(alert_log(tmp_path)) == 1

    # A fresh batch ends the spell ...
    now_name = time.strftime("%Y-%m-%dT%H%M", time.gmtime())
    write_batch(landing, now_name)
    result, _ = tick(defs, pipeline, "landing_freshness_alert", cursor=cursor)
    assert result.skip_message.startswith("Fresh")
    assert len(alert_log(tmp_path)) == 1


def test_no_batch_at_all_is_stale(setup):
    defs, pipeline, _, tmp_path = setup
    tick(defs, pipeline, "landing_freshness_alert")
    (alert,) = alert_log(tmp_path)
    assert alert["title"] == "No CRM batch has landed"


def failed_run(defs, tmp_path):
    """A real run of the job that fails in the loader (a stray file in the landing)."""
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("crm_pipeline").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    return instance, result


def test_user_errors_are_not_retried_and_alert_once(setup):
    defs, pipeline, landing, tmp_path = setup
    write_batch(landing, "2026-11-25T0600")
    (landing / "notes.txt").write_text("stray\n")
    instance, result = failed_run(defs, tmp_path)
    types = [e.event_type_value for e in result.all_events]
    # The retry policy allows 2 retries, but a landing error is the user's to fix.
    assert "STEP_UP_FOR_RETRY" not in types

    run = instance.get_run_by_id(result.run_id)
    (record,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    failure = record.dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
        resources={"pipeline": pipeline},
    ).for_run_failure()
    defs.resolve_sensor_def("run_failure_alert")(context)
    (alert,) = alert_log(tmp_path)
    assert alert["kind"] == "run_failed"
    assert alert["run_id"] == result.run_id
    assert alert["message"].startswith("step raw_tables: ")
    assert "notes.txt is a file at the top of the landing directory" in alert["message"]


def test_an_abandoned_empty_folder_does_not_hold_back_later_batches(setup):
    defs, pipeline, landing, _ = setup
    empty = landing / "2026-11-25T0600"
    empty.mkdir()
    stamp = time.time() - 3600
    os.utime(empty, (stamp, stamp))
    write_batch(landing, "2026-11-26T0600")
    result, _ = tick(defs, pipeline, "landing_batches")
    assert [r.tags["crm/batch"] for r in result.run_requests] == ["2026-11-26T0600"]


def test_several_sources_get_a_run_each(tmp_path):
    sf, hs = tmp_path / "sf", tmp_path / "hs"
    write_batch(sf, "2026-11-25T0600")
    write_batch(hs, "2026-11-25T0600")
    write_batch(hs, "2026-11-26T0600")
    config = tmp_path / "crm.yaml"
    config.write_text(
        f"sources:\n  - {{name: sfdc, kind: salesforce, landing_dir: {sf}}}\n"
        f"  - {{name: hs, kind: hubspot, landing_dir: {hs}}}\n"
    )
    pipeline = PipelineResource(config_path=str(config))
    defs = build_definitions(pipeline)
    result, _ = tick(defs, pipeline, "landing_batches")
    assert [(r.run_key, r.tags["crm/new_batches"]) for r in result.run_requests] == [
        ("batch:sfdc/2026-11-25T0600", "2026-11-25T0600"),
        ("batch:hs/2026-11-26T0600", "2026-11-25T0600, 2026-11-26T0600"),
    ]
    assert json.loads(result.cursor) == [
        "hs/2026-11-25T0600",
        "hs/2026-11-26T0600",
        "sfdc/2026-11-25T0600",
    ]
