"""End to end: the real asset graph (ingest → GX check → dbt build) on a temporary
warehouse, driven through the CLI, checked against mart values computed by hand.

The fixture (tests/fixtures/skeleton, two batches), with as_of = 2026-03-15T00:00:00Z:

| opp | created | amount | stage changes | outcome |
| --- | --- | --- | --- | --- |
| O1 | 01-05 | 1000 | prospecting 01-05, qualification 01-10, proposal 01-20 (meeting skipped), closed_won 02-04 | won, cycle 30 d |
| O2 | 01-10 | 500 | prospecting 01-10, meeting 01-15, closed_lost 01-25 | lost, cycle 15 d |
| O3 | 02-01 | 2000, 2500 in batch 2 | prospecting 02-01, qualification 02-11 | open |
| O4 | 02-10 | 300 | none; current stage label `Meeting` | open, synthesized interval |
| O5 | 03-01 | 800 | prospecting 03-01, closed_won 03-11 | won, cycle 10 d |
| O6 | 02-15 | 1000 | prospecting 02-15, proposal 02-20, qualification 02-25 (regression) | open |

Batch 2 re-exports O1's closed_won change (overlap) and repeats one row exactly.
"""  # noqa: E501

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from pipeline_helpers import query, run_pipeline

from orchestration.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "skeleton"
AS_OF = "2026-03-15T00:00:00Z"

pytestmark = pytest.mark.slow


def run(landing: Path, warehouse: Path, *extra: str) -> int:
    return run_pipeline(landing, warehouse, AS_OF, *extra)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("e2e")
    landing = tmp / "landing"
    shutil.copytree(FIXTURE, landing)
    warehouse = tmp / "warehouse.duckdb"
    assert run(landing, warehouse) == 0
    return warehouse


def test_raw_layer_applies_supersede_and_dedup(built):
    assert reconciles(built)
    assert query(
        built,
        "select opportunity_id, amount, _batch_id from raw.opportunities "
        "where opportunity_id = 'O3'",
    ) == [("O3", 2500.0, "2026-03-15T0000")]
    # 8 + 8 rows landed; O1's re-exported change and O5's duplicate collapse: 14 changes.
    assert query(built, "select count(*) from raw.stage_changes") == [(14,)]


def test_stage_history(built):
    got = query(
        built,
        """select opportunity_id, stage, stage_order, entered_at, exited_at, next_stage,
                  duration_days, is_current, is_regression
           from marts.fct_stage_history where opportunity_id in ('O1', 'O4', 'O6')
           order by opportunity_id, entered_at""",
    )
    d = datetime
    assert got == [
        ("O1", "prospecting", 1, d(2026, 1, 5), d(2026, 1, 10), "qualification", 5.0, False, False),
        ("O1", "qualification", 2, d(2026, 1, 10), d(2026, 1, 20), "proposal", 10.0, False, False),
        ("O1", "proposal", 4, d(2026, 1, 20), d(2026, 2, 4), "closed_won", 15.0, False, False),
        # current: duration runs to as_of (Feb 2026 has 28 days)
        ("O1", "closed_won", 6, d(2026, 2, 4), None, None, 39.0, True, False),
        # no stage changes: one interval, the current stage entered at created_at
        ("O4", "meeting", 3, d(2026, 2, 10), None, None, 33.0, True, False),
        ("O6", "prospecting", 1, d(2026, 2, 15), d(2026, 2, 20), "proposal", 5.0, False, False),
        ("O6", "proposal", 4, d(2026, 2, 20), d(2026, 2, 25), "qualification", 5.0, False, True),
        ("O6", "qualification", 2, d(2026, 2, 25), None, None, 18.0, True, False),
    ]


def test_kpi_monthly(built):
    got = query(
        built,
        """select month, opportunities_created, won_count, lost_count, won_amount, lost_amount,
                  win_rate, win_rate_by_value, avg_deal_size, avg_sales_cycle_days,
                  median_sales_cycle_days, open_count_end, open_amount_end,
                  weighted_pipeline_end, round(pipeline_velocity_per_day, 6)
           from marts.kpi_monthly order by month""",
    )
    assert got == [
        # Jan: O2 lost. Open at Feb 1 00:00: O1 only (O3 is created at that instant),
        # in proposal (0.5) → weighted 500. Velocity: no won deal → null.
        (date(2026, 1, 1), 2, 0, 1, 0.0, 500.0, 0.0, 0.0, None, None, None, 1, 1000.0, 500.0, None),
        # Feb: O1 won (cycle 30). Open at Mar 1: O3 (2500, qualification .1), O4 (300,
        # meeting .2), O6 (1000, qualification .1) → 3800, weighted 250 + 60 + 100 = 410.
        # Velocity over Dec–Feb: 3 × (1 won / 2 closed) × 1000 / 30 = 50.
        (
            date(2026, 2, 1),
            3,
            1,
            0,
            1000.0,
            0.0,
            1.0,
            1.0,
            1000.0,
            30.0,
            30.0,
            3,
            3800.0,
            410.0,
            50.0,
        ),
        # Mar (to as_of): O5 won (cycle 10); open at as_of as at Mar 1.
        # Velocity over Jan–Mar: 3 × (2/3) × ((1000 + 800) / 2) / ((30 + 10) / 2) = 90.
        (
            date(2026, 3, 1),
            1,
            1,
            0,
            800.0,
            0.0,
            1.0,
            1.0,
            800.0,
            10.0,
            10.0,
            3,
            3800.0,
            410.0,
            90.0,
        ),
    ]


def mart_digest(warehouse: Path) -> str:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'marts' order by 1"
            ).fetchall()
        ]
        digest = hashlib.sha256()
        for t in tables:
            for row in con.execute(f"select * from marts.{t} order by all").fetchall():
                digest.update(repr(row).encode())
        return digest.hexdigest()
    finally:
        con.close()


def reconciles(warehouse: Path) -> bool:
    """Every file of every run: input rows = loaded + quarantined + duplicates + rejected."""
    (bad,) = query(
        warehouse,
        "select count(*) from quality.ingestion_log where input_rows <> "
        "loaded_rows + quarantined_rows + duplicate_rows + rejected_rows",
    )[0]
    return bad == 0


def add_batch(landing: Path, rows: str) -> None:
    bad = landing / "2026-03-16T0000"
    bad.mkdir()
    (bad / "opportunities.csv").write_text("opportunity_id,created_at,stage,amount\n" + rows)


def test_unmapped_label_rejects_the_batch_and_leaves_the_marts_untouched(
    built, tmp_path, capsys, monkeypatch, http, smtp
):
    # Every alert sink on, each against a real server on 127.0.0.1.
    secrets = ("/hooks/SECRET-PATH-7", "xoxb-SECRET-7", "SECRET-PASSWORD-7")
    for name, value in {
        "CRM_ALERT_WEBHOOK_URL": f"{http.base}{secrets[0]}",
        "CRM_SLACK_TOKEN": secrets[1],
        "CRM_SLACK_CHANNEL": "#crm-alerts",
        "CRM_SLACK_API_URL": f"{http.base}/api/",
        "CRM_SMTP_HOST": "127.0.0.1",
        "CRM_SMTP_PORT": str(smtp.port),
        "CRM_SMTP_SECURITY": "none",
        "CRM_SMTP_FROM": "crm-pipeline@example.com",
        "CRM_SMTP_TO": "data-team@example.com, revops@example.com",
    }.items():
        monkeypatch.setenv(name, value)
    # The password is only a secret to keep here (this SMTP server takes no login).
    monkeypatch.setenv("CRM_SMTP_PASSWORD", secrets[2])
    monkeypatch.setenv("CRM_SMTP_USER", "")
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built, warehouse)
    before = mart_digest(warehouse)
    add_batch(
        landing,
        "O7,2026-03-02T00:00:00Z,Demo Booked,100\nO8,2026-03-03T00:00:00Z,prospecting,-50\n",
    )
    assert run(landing, warehouse) == 1
    err = capsys.readouterr().err
    assert "blocked: check raw/opportunities:opportunities_hygiene failed" in err
    assert "Demo Booked" in err and "stage_labels" in err
    assert mart_digest(warehouse) == before
    assert query(
        warehouse,
        "select status from quality.ingestion_log where batch_id = '2026-03-16T0000'",
    ) == [("rejected",)]
    assert query(warehouse, "select count(*) from raw.opportunities") == [(6,)]
    assert reconciles(warehouse)
    alerts = [json.loads(line) for line in (tmp_path / "logs" / "alerts.jsonl").open()]
    blocked = [a for a in alerts if a["kind"] == "check_failed"]
    assert blocked and blocked[0]["entity"] == "opportunities"
    assert "Demo Booked" in blocked[0]["message"]
    assert [(d["sink"], d["status"]) for d in blocked[0]["deliveries"]] == [
        ("webhook", "delivered"),
        ("slack", "delivered"),
        ("email", "delivered"),
    ]
    # The terminal says where the alert went.
    assert (
        "alert: Data quality blocked the marts: opportunities (opportunities_hygiene) → "
        "alert log, webhook delivered, slack delivered, email delivered" in err
    )
    (hook,) = [
        r["json"] for r in http.to(secrets[0]) if r["json"]["alert"]["kind"] == "check_failed"
    ]
    (slack,) = [
        r["json"] for r in http.to("/api/chat.postMessage") if "blocked" in r["json"]["text"]
    ]
    (mail,) = [m for m in smtp.messages if b"blocked" in m["content"]]
    assert slack["channel"] == "#crm-alerts"
    assert mail["to"] == ["data-team@example.com", "revops@example.com"]
    for text in (hook["text"], slack["text"], mail["content"].decode()):
        assert "Demo Booked" in text and "stage_labels" in text  # the reason and the fix
        assert "entity: opportunities" in text
    everything = [r["raw"].decode() for r in http.requests] + [
        m["content"].decode() for m in smtp.messages
    ]
    everything += [err, (tmp_path / "logs" / "alerts.jsonl").read_text()]
    for secret in secrets:
        assert not any(secret in text for text in everything), secret
    # A blocked run never claims, in any alert, that the marts were built.
    assert not any("were built" in text for text in everything)


def test_bad_rows_are_quarantined_and_the_rest_published(built, tmp_path, capsys):
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built, warehouse)
    config = tmp_path / "crm.yaml"
    config.write_text("quality: {quarantine_max_share: 0.5}\n")
    add_batch(
        landing, "O7,2026-03-02T00:00:00Z,meeting,100\nO8,2026-03-03T00:00:00Z,prospecting,-50\n"
    )
    assert run(landing, warehouse, "--config", str(config)) == 0
    err = capsys.readouterr().err
    assert "1 row(s) quarantined" in err
    assert query(
        warehouse, "select source_row, raw_row->>'opportunity_id' from quality.quarantine"
    ) == [(2, "O8")]
    assert query(
        warehouse,
        "select opportunity_id from marts.fct_opportunities where opportunity_id in ('O7', 'O8')",
    ) == [("O7",)]
    assert reconciles(warehouse)


def test_usage_errors_exit_2(tmp_path, capsys):
    assert run(tmp_path / "missing", tmp_path / "w.duckdb") == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--as-of", "soon", "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    assert "not an ISO 8601 timestamp" in capsys.readouterr().err


def test_same_inputs_and_as_of_give_identical_marts(built, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    again = tmp_path / "again.duckdb"
    assert run(landing, again) == 0
    assert mart_digest(again) == mart_digest(built)


STAGES_OVERRIDE = """
stages:
  - {stage: prospecting, stage_order: 1, category: open, probability: 0.05}
  - {stage: qualification, stage_order: 2, category: open, probability: 0.25}
  - {stage: meeting, stage_order: 3, category: open, probability: 0.20}
  - {stage: proposal, stage_order: 4, category: open, probability: 0.50}
  - {stage: negotiation, stage_order: 5, category: open, probability: 0.80}
  - {stage: closed_won, stage_order: 6, category: won, probability: 1.0}
  - {stage: closed_lost, stage_order: 7, category: lost, probability: 0.0}
  - {stage: onboarding, stage_order: 8, category: post_sale, probability: 1.0}
  - {stage: follow_up, stage_order: 9, category: post_sale, probability: 1.0}
  - {stage: renewal, stage_order: 10, category: post_sale, probability: 1.0}
stage_labels:
  "Discovery Call": meeting
"""


def test_stage_map_from_the_config_reaches_every_mart(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    # A later export relabels O4 with a CRM label the config maps to meeting.
    (landing / "2026-03-15T0600").mkdir()
    (landing / "2026-03-15T0600" / "opportunities.csv").write_text(
        "opportunity_id,created_at,stage,owner_id,amount,updated_at\n"
        "O4,2026-02-10T00:00:00Z,Discovery Call,u1,300,2026-03-14T00:00:00Z\n"
    )
    config = tmp_path / "crm.yaml"
    config.write_text(STAGES_OVERRIDE)
    warehouse = tmp_path / "w.duckdb"
    assert run(landing, warehouse, "--config", str(config)) == 0
    # qualification now weighs 0.25: at Mar 1 and at as_of, O3 2500 × 0.25 + O4 300 × 0.2
    # (Discovery Call → meeting) + O6 1000 × 0.25 = 625 + 60 + 250 = 935.
    assert query(
        warehouse, "select month, weighted_pipeline_end from marts.kpi_monthly order by month"
    ) == [(date(2026, 1, 1), 500.0), (date(2026, 2, 1), 935.0), (date(2026, 3, 1), 935.0)]
    assert query(
        warehouse,
        "select stage from marts.fct_stage_history where opportunity_id = 'O4'",
    ) == [("meeting",)]


def test_a_failed_command_line_run_alerts(tmp_path, capsys, monkeypatch, http):
    # A step that fails for a reason other than data quality: DuckDB out of memory.
    monkeypatch.setenv("CRM_ALERT_WEBHOOK_URL", f"{http.base}/hooks/SECRET-9")
    config = tmp_path / "crm.yaml"
    config.write_text("memory_limit: 1MB\nretries: {max_retries: 0}\n")
    assert run(FIXTURE, tmp_path / "warehouse.duckdb", "--config", str(config)) == 3
    err = capsys.readouterr().err
    assert "error: step raw_tables: Out of Memory Error" in err
    assert "alert: Run of crm_pipeline failed → alert log, webhook delivered" in err
    (request,) = http.to("/hooks/SECRET-9")
    alert = request["json"]["alert"]
    assert alert["kind"] == "run_failed"
    assert alert["message"].startswith("step raw_tables: Out of Memory Error")


def dbt_nodes_run(warehouse: Path) -> set[str]:
    results = json.loads((warehouse.parent / "dbt_target" / "run_results.json").read_text())
    return {r["unique_id"].split(".")[2] for r in results["results"]}


def test_a_run_with_nothing_new_skips_staging_but_not_the_marts(built, tmp_path, capsys):
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(built, warehouse)  # built by a full run, staging tests passed
    capsys.readouterr()
    # The same landing a day later: nothing to publish, every mart rebuilt for the new as_of.
    assert run_pipeline(landing, warehouse, "2026-03-16T00:00:00Z") == 0
    err = capsys.readouterr().err
    assert "Not rerun: 10 staging views and their 32 tests" in err
    assert "Not rerun: 24 not_null tests: DuckDB enforces the NOT NULL constraints" in err
    nodes = dbt_nodes_run(warehouse)
    assert not any(n.startswith(("stg_", "not_null_stg_", "unique_stg_")) for n in nodes)
    # A test that reads a staging view and a mart still runs.
    assert any(n.startswith("relationships_fct_opportunities_owner_id") for n in nodes)
    assert "fct_opportunities" in nodes and "kpi_monthly" in nodes
    # Back at the fixture's as_of, the marts equal those of the full build.
    assert run_pipeline(landing, warehouse, AS_OF) == 0
    assert mart_digest(warehouse) == mart_digest(built)
    # A published batch brings the staging tests back, over its rows (delta mode); the
    # views stay as the first run built them.
    (landing / "2026-03-15T0600").mkdir()
    (landing / "2026-03-15T0600" / "accounts.csv").write_text(
        "account_id,name,industry,country,employee_count\na9,Late Corp,Retail,FR,40\n"
    )
    capsys.readouterr()
    assert run_pipeline(landing, warehouse, AS_OF) == 0
    err = capsys.readouterr().err
    assert "Not rerun: 10 staging views and their 32 tests" not in err
    assert "Not rerun: 10 staging views: the dbt project and the stage map are as when" in err
    nodes = dbt_nodes_run(warehouse)
    assert {"unique_stg_crm__accounts_account_id", "not_null_stg_crm__users_user_id"} <= nodes
    assert not any(n.startswith("stg_") for n in nodes)


def test_duckdb_leaves_mart_not_null_tests_to_the_contracts_which_catch_a_null(built, tmp_path):
    # The full run left out every not_null test of the marts...
    nodes = dbt_nodes_run(built)
    assert "fct_opportunities" in nodes and "unique_fct_opportunities_opportunity_id" in nodes
    assert not any(n.startswith(("not_null_fct_", "not_null_kpi_")) for n in nodes)
    # ...because DuckDB refuses the null itself: a null status reaching fct_opportunities
    # fails the model, and the mart keeps its previous rows.
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update intermediate.int_opportunities_closed set status = null "
            "where opportunity_id = 'O2'"
        )
    dbt = Path(sys.executable).parent / "dbt"
    vars_ = {"warehouse_path": str(warehouse), "reporting_currency": "USD"}
    result = subprocess.run(
        [str(dbt), "run", "--select", "fct_opportunities", "--profiles-dir", ".",
         "--target-path", str(tmp_path / "target"), "--vars", json.dumps(vars_)],
        cwd=Path(__file__).parents[2] / "dbt_project", capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    assert "NOT NULL constraint failed" in result.stdout
    assert "status" in result.stdout
    assert query(
        warehouse, "select status from marts.fct_opportunities where opportunity_id = 'O2'"
    ) == [("lost",)]
