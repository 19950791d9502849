"""The Pipedrive adapter alone (convert_landing, no dbt): quirks, stage history, notes.

Fixture tests/fixtures/pipedrive: batch 2026-02-28T0600 has every file (deals.csv with a
BOM and a title holding a comma and a newline, users.csv with a trailing empty column,
activities.csv with mixed-case headers, unmapped extra columns everywhere); batch
2026-03-14T0600 is incremental: deals + deal_changelog only (deal 3 moves to Negotiations
Started and is won, deal 4 is deleted; the changelog uses the flow API's item_id/log_time
headers). A third landing, written here, has neither deal_changelog nor stages.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from ingestion.config import SourceSpec
from ingestion.errors import LandingError
from ingestion.sources import NOTES_FILE, convert_landing
from ingestion.sources.pipedrive import DEFAULT_STAGE_LABELS

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pipedrive"
B1, B2 = "2026-02-28T0600", "2026-03-14T0600"


def convert(landing: Path, out: Path) -> list[str]:
    spec = SourceSpec(name="pipedrive", kind="pipedrive", landing_dir=landing)
    return convert_landing(spec, out)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def by(table: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    return {r[key]: r for r in table}


def history(out: Path, batch: str) -> set[tuple[str, str, str]]:
    return {
        (r["opportunity_id"], r["stage"], r["changed_at"])
        for r in rows(out / batch / "stage_changes.csv")
    }


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("pipedrive")
    shutil.copytree(FIXTURE, tmp / "landing")
    notes = convert(tmp / "landing", tmp / "out")
    return tmp / "out", notes


def test_default_labels_cover_the_default_pipeline():
    assert DEFAULT_STAGE_LABELS == {
        "Qualified": "qualification",
        "Contact Made": "meeting",
        "Demo Scheduled": "meeting",
        "Proposal Made": "proposal",
        "Negotiations Started": "negotiation",
    }


def test_deals_become_opportunities(converted):
    out, _ = converted
    opps = by(rows(out / B1 / "opportunities.csv"), "opportunity_id")
    assert len(opps) == 8
    d1 = opps["pipedrive:1"]
    # The BOM does not hide the first header (id); the quoted title keeps comma + newline.
    assert d1["name"] == "Acme rollout, phase 1\n(EU)"
    # Won is a status: the snapshot stage is closed_won, Pipedrive's stage kept aside.
    assert (d1["stage"], d1["pipedrive_stage"]) == ("closed_won", "Proposal Made")
    assert (d1["is_won"], d1["is_closed"], d1["is_deleted"]) == ("true", "true", "false")
    # Pipedrive times are UTC: marked Z so source_timezone cannot shift them.
    assert d1["created_at"] == "2026-01-05 09:00:00Z"
    # Closed: close_date is the actual close (won_time 02-04), not expected 02-15.
    assert d1["close_date"] == "2026-02-04"
    assert (d1["owner_id"], d1["account_id"], d1["amount"]) == (
        "pipedrive:1",
        "pipedrive:10",
        "10000",
    )
    # Probability empty → stage 4 (Proposal Made) deal_probability 60 % → 0.6.
    assert d1["probability"] == "0.6"
    # Explicit probability 25 % → 0.25.
    assert opps["pipedrive:6"]["probability"] == "0.25"
    # Unmapped columns carried along as attributes (custom field hash key included).
    assert d1["dcf558aac1ae4e8c4f849ba5e668430d8df9be12"] == "Enterprise"
    assert (d1["pipeline_id"], d1["stage_id"]) == ("1", "4")
    # Deal 2: lost, lost_reason empty in deals.csv → the changelog's lost_reason;
    # lost_time empty → the changelog's status change (01-28 12:00).
    d2 = opps["pipedrive:2"]
    assert (d2["stage"], d2["lost_reason"], d2["close_date"]) == (
        "closed_lost", "Price too high", "2026-01-28"
    )  # fmt: skip
    # Deal 5: lost_reason from deals.csv wins.
    assert opps["pipedrive:5"]["lost_reason"] == "No budget"
    # Open deal: stage name, expected close date.
    d3 = opps["pipedrive:3"]
    assert (d3["stage"], d3["close_date"], d3["is_closed"]) == (
        "Demo Scheduled", "2026-03-31", "false"
    )  # fmt: skip


def test_stage_history_first_batch(converted):
    out, _ = converted
    got = history(out, B1)
    expected = {
        # D1: created in the first move's old_value (1 = Qualified) at add_time, two moves
        # (Demo Scheduled skipped), won at won_time = the changelog's status change.
        ("pipedrive:1", "Qualified", "2026-01-05 09:00:00Z"),
        ("pipedrive:1", "Contact Made", "2026-01-10 10:00:00Z"),
        ("pipedrive:1", "Proposal Made", "2026-01-20 10:00:00Z"),
        ("pipedrive:1", "closed_won", "2026-02-04 09:00:00Z"),
        # D2: lost_time empty, closing from the changelog's status change.
        ("pipedrive:2", "Qualified", "2026-01-08 12:00:00Z"),
        ("pipedrive:2", "Contact Made", "2026-01-12 12:00:00Z"),
        ("pipedrive:2", "closed_lost", "2026-01-28 12:00:00Z"),
        # D3: no move at all, no stage_change_time → current stage at add_time.
        ("pipedrive:3", "Demo Scheduled", "2026-02-02 10:00:00Z"),
        ("pipedrive:4", "Qualified", "2026-02-10 08:00:00Z"),
        ("pipedrive:4", "Contact Made", "2026-02-15 08:00:00Z"),
        # D5: the creation is itself logged (old_value empty): no extra creation entry.
        ("pipedrive:5", "Qualified", "2026-02-12 09:00:00Z"),
        ("pipedrive:5", "Proposal Made", "2026-02-20 09:00:00Z"),
        ("pipedrive:5", "closed_lost", "2026-02-25 09:00:00Z"),
        # D6: only an owner change (user_id, ignored) → current stage at add_time.
        ("pipedrive:6", "Contact Made", "2026-02-20 14:00:00Z"),
        # D7: won without a status change in the log: closed_won at won_time.
        ("pipedrive:7", "Contact Made", "2026-01-15 11:00:00Z"),
        ("pipedrive:7", "Negotiations Started", "2026-02-01 11:00:00Z"),
        ("pipedrive:7", "closed_won", "2026-02-20 11:00:00Z"),
        # D8: lost, then reopened: back into the stage it held (Proposal Made).
        ("pipedrive:8", "Qualified", "2026-01-20 10:00:00Z"),
        ("pipedrive:8", "Proposal Made", "2026-01-25 10:00:00Z"),
        ("pipedrive:8", "closed_lost", "2026-02-05 10:00:00Z"),
        ("pipedrive:8", "Proposal Made", "2026-02-10 10:00:00Z"),
    }
    assert got == expected
    moves = by(rows(out / B1 / "stage_changes.csv"), "change_id")
    assert moves["pipedrive:1001"]["changed_by"] == "pipedrive:1"


def test_incremental_batch(converted):
    out, notes = converted
    opps = by(rows(out / B2 / "opportunities.csv"), "opportunity_id")
    assert set(opps) == {"pipedrive:3", "pipedrive:4"}
    # D3 modified and won; stage 5's probability 80 % comes from batch 1's stages.csv.
    d3 = opps["pipedrive:3"]
    assert (d3["amount"], d3["stage"], d3["pipedrive_stage"], d3["probability"]) == (
        "9000", "closed_won", "Negotiations Started", "0.8"
    )  # fmt: skip
    assert d3["updated_at"] == "2026-03-10 10:00:00Z"
    assert opps["pipedrive:4"]["is_deleted"] == "true"
    # D3's first move (batch 2) has old_value 3: its creation stage at add_time, which
    # batch 1 already gave (the loader deduplicates it); D4 likewise from batch 1's log.
    assert history(out, B2) == {
        ("pipedrive:3", "Demo Scheduled", "2026-02-02 10:00:00Z"),
        ("pipedrive:3", "Negotiations Started", "2026-03-02 10:00:00Z"),
        ("pipedrive:3", "closed_won", "2026-03-10 10:00:00Z"),
        ("pipedrive:4", "Qualified", "2026-02-10 08:00:00Z"),
    }
    assert (
        f"pipedrive {B2}: no stages file: stage names and probabilities come from batch {B1}"
        in notes
    )
    assert f"pipedrive {B2}: no users file: no sales reps from this batch" in notes
    assert not [n for n in notes if n.startswith(f"pipedrive {B1}")]
    assert json.loads((out / B1 / NOTES_FILE).read_text())["notes"] == []


def test_other_files(converted):
    out, _ = converted
    users = by(rows(out / B1 / "users.csv"), "user_id")
    # Trailing empty header column dropped; unmapped columns kept.
    assert list(users["pipedrive:1"]) == [
        "user_id", "name", "email", "is_active", "created_at", "updated_at",
        "is_admin", "role_id", "timezone_name",
    ]  # fmt: skip
    assert (users["pipedrive:2"]["is_active"], users["pipedrive:2"]["updated_at"]) == (
        "false", "2026-02-01 10:00:00Z"
    )  # fmt: skip
    acts = by(rows(out / B1 / "activities.csv"), "activity_id")  # mixed-case headers
    # type → activity_type: lunch → meeting, task/deadline → other, custom webinar → other.
    assert {k: v["activity_type"] for k, v in acts.items()} == {
        "pipedrive:501": "call", "pipedrive:502": "meeting", "pipedrive:503": "meeting",
        "pipedrive:504": "other", "pipedrive:505": "email", "pipedrive:506": "other",
        "pipedrive:507": "other",
    }  # fmt: skip
    assert acts["pipedrive:507"]["type"] == "webinar"
    # due_date + due_time (HH:MM) → occurred_at; no due_time → 00:00; no due_date → add_time.
    assert acts["pipedrive:502"]["occurred_at"] == "2026-01-21 14:30:00Z"
    assert acts["pipedrive:503"]["occurred_at"] == "2026-01-15 00:00:00Z"
    assert acts["pipedrive:507"]["occurred_at"] == "2026-02-21 08:00:00Z"
    assert acts["pipedrive:502"]["note"] == "Bring the demo kit, and\nthe pricing sheet"
    a = acts["pipedrive:501"]
    assert (a["opportunity_id"], a["contact_id"], a["account_id"], a["is_completed"]) == (
        "pipedrive:1", "pipedrive:100", "pipedrive:10", "true"
    )  # fmt: skip
    accounts = by(rows(out / B1 / "accounts.csv"), "account_id")
    acme = accounts["pipedrive:10"]
    assert (acme["country"], acme["is_deleted"], acme["address"]) == (
        "Germany", "false", "Hauptstr. 1,\n10115 Berlin"
    )  # fmt: skip
    # people_count is Pipedrive's count of persons, not employees: an attribute.
    assert "employee_count" not in acme
    assert acme["people_count"] == "12"
    contacts = by(rows(out / B1 / "contacts.csv"), "contact_id")
    assert contacts["pipedrive:100"]["email"] == "clara@acme.example"
    assert contacts["pipedrive:100"]["title"] == "CFO"
    assert contacts["pipedrive:101"]["account_id"] == "pipedrive:11"


# Neither deal_changelog nor stages, and deals lack probability, lost_time and org_id.
VARIANT_DEALS = """\
ID,Title,Value,Currency,Add_Time,Update_Time,Stage_Change_Time,Stage_ID,Status,Won_Time,Close_Time,Expected_Close_Date,User_ID
21,Alpha,1000,USD,2026-01-05 09:00:00,2026-01-20 09:00:00,2026-01-12 09:00:00,2,open,,,2026-03-01,1
22,Beta,2000,USD,2026-01-06 09:00:00,2026-02-01 09:00:00,,4,won,2026-02-01 09:00:00,2026-02-01 09:00:00,2026-02-10,1
23,Gamma,500,USD,2026-01-07 09:00:00,2026-01-30 09:00:00,,1,lost,,2026-01-30 09:00:00,2026-02-15,2
"""  # noqa: E501


def test_missing_changelog_and_stages(tmp_path):
    batch = tmp_path / "landing" / "2026-01-31T0600"
    batch.mkdir(parents=True)
    (batch / "Deals.csv").write_text(VARIANT_DEALS, encoding="utf-8")
    notes = convert(tmp_path / "landing", tmp_path / "out")
    out = tmp_path / "out" / "2026-01-31T0600"
    # Fallback: the current stage only, entered at stage_change_time (deal 21), else at
    # add_time; labels are 'stage_id <id>' (no names to map); closing at won_time, and
    # at close_time for the lost deal (no lost_time column).
    assert history(tmp_path / "out", "2026-01-31T0600") == {
        ("pipedrive:21", "stage_id 2", "2026-01-12 09:00:00Z"),
        ("pipedrive:22", "stage_id 4", "2026-01-06 09:00:00Z"),
        ("pipedrive:22", "closed_won", "2026-02-01 09:00:00Z"),
        ("pipedrive:23", "stage_id 1", "2026-01-07 09:00:00Z"),
        ("pipedrive:23", "closed_lost", "2026-01-30 09:00:00Z"),
    }
    opps = by(rows(out / "opportunities.csv"), "opportunity_id")
    assert {k: (v["stage"], v["probability"], v["close_date"]) for k, v in opps.items()} == {
        "pipedrive:21": ("stage_id 2", "", "2026-03-01"),
        "pipedrive:22": ("closed_won", "", "2026-02-01"),
        "pipedrive:23": ("closed_lost", "", "2026-01-30"),
    }
    assert opps["pipedrive:21"]["account_id"] == ""
    prefix = "pipedrive 2026-01-31T0600: "
    assert [n.removeprefix(prefix) for n in notes] == [
        "no deal_changelog: stage history is each deal's current stage only, entered at its "
        "stage_change_time (at add_time when it never changed stage); won and lost deals "
        "close at won_time / lost_time (else close_time)",
        "no stages file (in this or an earlier batch): stage ids cannot be turned into stage "
        "names, so stage labels read 'stage_id <id>' (map them under stage_labels: in the "
        "config), and an empty deal probability stays empty",
        "Deals.csv has no lost_time column: lost deals close at the changelog's status "
        "change, else close_time",
        "Deals.csv has no org_id column: opportunities have no account",
        "Deals.csv has no probability column: probability is the stage's deal_probability",
        "Deals.csv has no lost_reason column: lost_reason comes from the changelog only",
        "no users file: no sales reps from this batch",
        "no activities file: no activities from this batch",
        "no organizations file: no accounts from this batch",
        "no persons file: no contacts from this batch",
    ]


def test_changelog_alias_and_formatted_names(tmp_path):
    # deal_flow.csv is accepted; without stages.csv the flow's formatted value names the
    # stage.
    batch = tmp_path / "landing" / "b1"
    batch.mkdir(parents=True)
    (batch / "deals.csv").write_text(
        "id,add_time,update_time,stage_id,status\n31,2026-01-05 09:00:00,,2,open\n",
        encoding="utf-8",
    )
    (batch / "DEAL_FLOW.csv").write_text(
        "id,item_id,log_time,field_key,old_value,new_value,old_value_formatted,"
        "new_value_formatted\n"
        "9,31,2026-01-09 09:00:00,stage_id,1,2,Qualified,Contact Made\n",
        encoding="utf-8",
    )
    convert(tmp_path / "landing", tmp_path / "out")
    assert history(tmp_path / "out", "b1") == {
        ("pipedrive:31", "Qualified", "2026-01-05 09:00:00Z"),
        ("pipedrive:31", "Contact Made", "2026-01-09 09:00:00Z"),
    }


def test_folder_without_pipedrive_files(tmp_path):
    batch = tmp_path / "landing" / "b1"
    batch.mkdir(parents=True)
    (batch / "notes.csv").write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(LandingError, match="no Pipedrive export file"):
        convert(tmp_path / "landing", tmp_path / "out")
