"""The real Dagster daemon, with the shipped deploy/dagster.yaml in a temporary
DAGSTER_HOME: its sensor notices new batch folders and launches one run per batch, the
run queue and run launcher execute it, and the runs' outcome shows in the instance.

Every alert sink is configured, each against a real server on 127.0.0.1 (webhook and
Slack's Web API on one HTTP server, e-mail on an SMTP server). Batches dropped while the
daemon runs:
1. the skeleton's first batch → one run tagged with it, success, marts built;
2. the skeleton's second batch → one more run, success (each batch exactly once);
3. a batch with an unmapped stage label → the run is blocked by its hygiene check; the
   check's alert, with the label and the fix, reaches every sink, and the run-failure
   sensor adds no second alert for it;
4. a batch next to a stray file at the top of the landing directory → the run fails with
   the loader's error, and the run-failure sensor's alert reaches every sink.
No secret (the webhook's path, the Slack token, the SMTP password) appears in any alert,
in the daemon's log or in the runs' event logs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from pipeline_helpers import query

REPO = Path(__file__).parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "skeleton"
BATCHES = sorted(p.name for p in FIXTURE.iterdir())

WEBHOOK_PATH = "/hooks/T000/B000/SECRETPATH42"
SLACK_TOKEN = "xoxb-SECRET-TOKEN-42"
SMTP_PASSWORD = "SECRET-PASSWORD-42"
SECRETS = (WEBHOOK_PATH, SLACK_TOKEN, SMTP_PASSWORD)

pytestmark = pytest.mark.slow


@dataclass
class Daemon:
    process: subprocess.Popen
    log: Path

    def assert_alive(self) -> None:
        """A daemon that died fails the wait at once, with its log, not after a timeout."""
        if self.process.poll() is not None:
            tail = "\n".join(self.log.read_text().splitlines()[-30:])
            raise AssertionError(f"the daemon exited ({self.process.returncode}):\n{tail}")


@pytest.fixture
def deployment(tmp_path, http, smtp_factory):
    smtp = smtp_factory(auth=("alerts", SMTP_PASSWORD))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    landing = tmp_path / "landing"
    landing.mkdir()
    config = tmp_path / "crm.yaml"
    # Tick often and take a batch as soon as it is written: the test copies whole folders.
    config.write_text(
        "source: crm\n"
        f"landing_dir: {landing}\n"
        f"warehouse: {tmp_path / 'warehouse.duckdb'}\n"
        "sensor: {interval_seconds: 1, settle_seconds: 0}\n"
        "quality: {freshness_max_age_hours: 1000000}\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CRM_CONFIG": str(config),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CRM_ALERT_WEBHOOK_URL": f"{http.base}{WEBHOOK_PATH}",
        "CRM_SLACK_TOKEN": SLACK_TOKEN,
        "CRM_SLACK_CHANNEL": "#crm-alerts",
        "CRM_SLACK_API_URL": f"{http.base}/api/",
        "CRM_SMTP_HOST": "127.0.0.1",
        "CRM_SMTP_PORT": str(smtp.port),
        "CRM_SMTP_SECURITY": "none",
        "CRM_SMTP_USER": "alerts",
        "CRM_SMTP_PASSWORD": SMTP_PASSWORD,
        "CRM_SMTP_FROM": "crm-pipeline@example.com",
        "CRM_SMTP_TO": "data-team@example.com",
    }
    # The test's own instance creates the SQLite storage before the daemon starts: two
    # processes creating it at once race on its schema ("table alembic_version already
    # exists") and the loser, here the daemon, dies.
    instance = dg.DagsterInstance.from_config(str(home))
    log_path = tmp_path / "daemon.log"
    log = log_path.open("w")
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-m",
            "orchestration.definitions",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield instance, landing, tmp_path, http, smtp, Daemon(daemon, log_path)
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        instance.dispose()


def drop(landing: Path, name: str, files: dict[str, str] | None = None) -> None:
    """A batch appears whole, the way an export job should deliver it (write, rename)."""
    staging = landing.parent / f".incoming-{name}"
    if files is None:
        shutil.copytree(FIXTURE / name, staging)
    else:
        staging.mkdir()
        for file_name, text in files.items():
            (staging / file_name).write_text(text)
    staging.rename(landing / name)


def wait_for(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"still waiting for {what} after {timeout} s")


def wait_for_runs(instance, daemon: Daemon, count, timeout=240):
    """The job's runs, once ``count`` of them have finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        daemon.assert_alive()
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="crm_pipeline"))
        if len(runs) >= count and all(r.is_finished for r in runs):
            return sorted(runs, key=lambda r: r.tags["crm/batch"])
        time.sleep(1)
    raise AssertionError(f"fewer than {count} finished runs after {timeout} s: {runs}")


def test_daemon_runs_each_new_batch_once_and_alerts_every_sink(deployment):
    instance, landing, tmp, http, smtp, daemon = deployment
    drop(landing, BATCHES[0])
    (first,) = wait_for_runs(instance, daemon, 1)
    assert first.status == dg.DagsterRunStatus.SUCCESS
    assert first.tags["crm/batch"] == BATCHES[0]

    drop(landing, BATCHES[1])
    runs = wait_for_runs(instance, daemon, 2)
    assert [(r.tags["crm/batch"], r.status) for r in runs] == [
        (BATCHES[0], dg.DagsterRunStatus.SUCCESS),
        (BATCHES[1], dg.DagsterRunStatus.SUCCESS),
    ]
    warehouse = tmp / "warehouse.duckdb"
    # Both batches reached the marts: the skeleton's six opportunities.
    assert query(warehouse, "select count(*) from marts.fct_opportunities") == [(6,)]
    # Further ticks launch nothing: each batch had its one run.
    time.sleep(5)
    assert len(instance.get_runs(filters=dg.RunsFilter(job_name="crm_pipeline"))) == 2

    drop(
        landing,
        "2026-03-16T0000",
        {"opportunities.csv": "opportunity_id,created_at,stage,amount\n"
         "O7,2026-03-02T00:00:00Z,Demo Booked,100\n"},
    )  # fmt: skip
    third = wait_for_runs(instance, daemon, 3)[2]
    assert (third.tags["crm/batch"], third.status) == (
        "2026-03-16T0000",
        dg.DagsterRunStatus.FAILURE,
    )
    (landing / "notes.txt").write_text("not a batch\n")
    drop(landing, "2026-03-17T0000", {"activities.csv": "activity_id,activity_type,occurred_at\n"})
    fourth = wait_for_runs(instance, daemon, 4)[3]
    assert fourth.status == dg.DagsterRunStatus.FAILURE
    # The run-failure sensor ticks after the run ended.
    wait_for(lambda: len(http.to(WEBHOOK_PATH)) >= 2, "the run-failure alert")
    time.sleep(3)  # a duplicate alert would arrive now

    webhook = [r["json"]["alert"] for r in http.to(WEBHOOK_PATH)]
    failures = [a for a in webhook if a["kind"] in ("check_failed", "run_failed")]
    assert [(a["kind"], a["entity"], a["run_id"]) for a in failures] == [
        ("check_failed", "opportunities", third.run_id),
        ("run_failed", None, fourth.run_id),
    ]
    blocked, crashed = failures
    assert "Demo Booked" in blocked["message"] and "stage_labels" in blocked["message"]
    assert "notes.txt" in crashed["message"]
    slack = [r["json"]["text"] for r in http.to("/api/chat.postMessage")]
    mails = [m["content"].decode() for m in smtp.messages]
    for texts in (slack, mails):
        assert len(texts) == len(webhook)
        assert any("Demo Booked" in t for t in texts)
        assert any("notes.txt" in t for t in texts)

    events = [
        str(e.dagster_event or e.user_message)
        for run in instance.get_runs()
        for e in instance.all_logs(run.run_id)
    ]
    everything = [
        *(r["raw"].decode() for r in http.requests),
        *mails,
        (tmp / "daemon.log").read_text(),
        (tmp / "logs" / "alerts.jsonl").read_text(),
        *events,
    ]
    for secret in SECRETS:
        assert not any(secret in text for text in everything), secret
