"""A landing file linked to a file outside the landing, through `crm-pipeline run`: the run
stops with exit code 2 and a message naming the link, and the linked file's content is in
no output, no log, no alert (log, webhook, Slack, e-mail) and no converted file.

The canonical landing is refused before the run starts (the command line checks its
layout first); a Salesforce export's batch is refused inside the run, whose failure is
alerted, so every alert sink is on, each against a real server on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import run_pipeline

AS_OF = "2026-03-15T00:00:00Z"
SECRET = "hunter2-Sekret"
PASSWD = f"root:x:0:0:{SECRET}:/root:/bin/bash\ndaemon:x:1:1:{SECRET}-row:/usr/sbin\n"

pytestmark = pytest.mark.slow


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir()
    path.write_text(PASSWD, encoding="utf-8")
    return path


@pytest.fixture
def sinks(monkeypatch, http, smtp):
    """Every alert sink on; returns a function giving everything they received."""
    for name, value in {
        "CRM_ALERT_WEBHOOK_URL": f"{http.base}/hook",
        "CRM_SLACK_TOKEN": "xoxb-test",
        "CRM_SLACK_CHANNEL": "#crm-alerts",
        "CRM_SLACK_API_URL": f"{http.base}/api/",
        "CRM_SMTP_HOST": "127.0.0.1",
        "CRM_SMTP_PORT": str(smtp.port),
        "CRM_SMTP_SECURITY": "none",
        "CRM_SMTP_FROM": "crm-pipeline@example.com",
        "CRM_SMTP_TO": "data-team@example.com",
        "CRM_SMTP_USER": "",
    }.items():
        monkeypatch.setenv(name, value)

    def received() -> dict[str, list[str]]:
        return {
            "webhook": [r["json"]["text"] for r in http.to("/hook")],
            "slack": [r["json"]["text"] for r in http.to("/api/chat.postMessage")],
            "email": [m["content"].decode() for m in smtp.messages],
        }

    return received


def files_holding_secret(folder: Path) -> list[Path]:
    """Files under ``folder`` (logs, alert log, converted batches) that hold the secret."""
    return [p for p in folder.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_a_crm_file_linked_outside_stops_the_run_before_it_starts(
    tmp_path, secret_file, sinks, capsys
):
    landing = tmp_path / "landing"
    (landing / "2026-03-14T0600").mkdir(parents=True)
    link = landing / "2026-03-14T0600" / "opportunities.csv"
    link.symlink_to(secret_file)
    data = tmp_path / "data"
    code = run_pipeline(landing, data / "warehouse.duckdb", AS_OF)
    out, err = capsys.readouterr()
    assert code == 2
    assert err == (
        f"error: {link}: this file is a symbolic link that points outside the landing "
        f"directory {landing}; it is refused, and nothing it points at was read. Copy the "
        f"export into the landing directory instead of linking to it (a link to a place "
        f"inside {landing} is fine), or remove the link.\n"
    )
    assert SECRET not in out + err
    assert "Traceback" not in err
    assert sinks() == {"webhook": [], "slack": [], "email": []}  # no run: no alert
    assert files_holding_secret(tmp_path / "data") == []


def test_a_salesforce_file_linked_outside_fails_the_run_and_its_alerts_hold_no_content(
    tmp_path, secret_file, sinks, capsys
):
    landing = tmp_path / "export"
    batch = landing / "2026-03-14T0600"
    batch.mkdir(parents=True)
    (batch / "Opportunity.csv").write_text(
        "Id,Name,StageName,CreatedDate\n006A1,Alpha,Prospecting,2026-03-01T09:00:00.000Z\n"
    )
    link = batch / "OpportunityHistory.csv"
    link.symlink_to(secret_file)
    data = tmp_path / "data"
    code = run_pipeline(landing, data / "warehouse.duckdb", AS_OF, source="salesforce")
    out, err = capsys.readouterr()
    assert code == 2, err
    assert (
        f"error: step raw_tables: {link}: this file is a symbolic link that points outside "
        f"the landing directory {landing}; it is refused" in err
    )
    assert SECRET not in out + err
    assert "Traceback" not in err
    # The failure went to the alert log and to every sink, naming the link only.
    alert_log = data / "logs" / "alerts.jsonl"
    assert str(link) in alert_log.read_text(encoding="utf-8")
    received = sinks()
    assert [len(texts) for texts in received.values()] == [1, 1, 1]
    assert str(link) in received["webhook"][0] and str(link) in received["slack"][0]
    assert not any(SECRET in text for texts in received.values() for text in texts)
    # Nothing beside the warehouse holds it: no run log, no alert log, no converted file.
    assert files_holding_secret(data) == []
