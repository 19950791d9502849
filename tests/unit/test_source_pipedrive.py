"""The Pipedrive adapter alone (convert_landing, no dbt): quirks, stage history, notes.

Fixture tests/fixtures/pipedrive: batch 2026-02-28T0600 has every file (deals.csv with a
BOM and a title holding a comma and a newline, users.csv with a trailing empty column,
activities.csv with mixed-case headers, unmapped extra columns everywhere); batch
2026-03-14T0600 is incremental: deals + deal_changelog only (deal 3 moves to Negotiations
Started and is won, deal 4 is deleted; the changelog uses the flow API's item_id/log_time
headers). A third landing, written here, has neither deal_changelog nor stages.

Fixture tests/fixtures/pipedrive_changelog (one batch, no deals file): a change log as a
database dump writes it (deal_changes.csv: deal_id, change_time, changed_field_key,
new_value; no old_value), stages.csv with after-sales stages, users.csv, activity.csv.
Its deals are rebuilt from the log; the known answers are in
the table in tests/e2e/test_source_pipedrive.py.
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
        # After-sales stages a team adds after the pipeline: onboarding, follow-up and
        # renewal show in kpi_post_sale without a stage_labels entry.
        "Implementation/Onboarding": "onboarding",
        "Follow-up/Customer Success": "follow_up",
        "Customer Success": "follow_up",
        "Renewal/Expansion": "renewal",
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
        "is_admin", "role_id", "timezone_name", "_export_file", "_export_line",
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


# --- a change log without a deals file ----------------------------------------------------

CHANGELOG_FIXTURE = Path(__file__).parents[1] / "fixtures" / "pipedrive_changelog"
CL = "2026-03-31T0600"


def reconciliation(out: Path, batch: str) -> dict[str, tuple]:
    data = json.loads((out / batch / NOTES_FILE).read_text())
    return {
        t["export_file"]: (t["entity"], t["rows_read"], t["rows_emitted"], t["set_aside"])
        for t in data["reconciliation"]
    }


@pytest.fixture(scope="module")
def changelog_only(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("pipedrive_changelog")
    shutil.copytree(CHANGELOG_FIXTURE, tmp / "landing")
    notes = convert(tmp / "landing", tmp / "out")
    return tmp / "out", notes


def test_deals_rebuilt_from_the_change_log(changelog_only):
    out, _ = changelog_only
    opps = by(rows(out / CL / "opportunities.csv"), "opportunity_id")
    cols = ("created_at", "stage", "owner_id", "amount", "currency", "close_date",
            "is_closed", "is_won", "lost_reason", "updated_at", "pipedrive_stage")  # fmt: skip
    got = {k.removeprefix("pipedrive:"): tuple(v[c] for c in cols) for k, v in opps.items()}
    assert got == {
        # Won (status row 02-04), then moved on into after-sales stages: the stage is the
        # last one entered; closed at the win.
        "1": ("2026-01-05 09:00:00Z", "Follow-up/Customer Success", "pipedrive:1", "10000",
              "USD", "2026-02-04", "true", "true", "", "2026-03-01 09:00:00Z",
              "Follow-up/Customer Success"),
        "2": ("2026-01-08 12:00:00Z", "closed_lost", "pipedrive:2", "5000", "", "2026-01-28",
              "true", "false", "Price too high", "2026-01-28 12:00:00Z", "Contact Made"),
        # Lost, then open again (the latest status): open, owner changed to 2 on 03-02.
        "3": ("2026-02-02 10:00:00Z", "Proposal Made", "pipedrive:2", "8000", "", "",
              "false", "false", "", "2026-03-02 10:00:00Z", "Proposal Made"),
        # Two add_time rows: the earliest.
        "4": ("2026-01-10 09:00:00Z", "Proposal Made", "pipedrive:2", "3000", "", "", "", "",
              "", "2026-02-10 09:00:00Z", "Proposal Made"),
        # Won by won_time alone (no status row): closed at its value, not when it was set.
        "6": ("2026-01-15 11:00:00Z", "Renewal/Expansion", "pipedrive:1", "6000", "",
              "2026-02-20", "true", "true", "", "2026-03-20 11:00:00Z", "Renewal/Expansion"),
        # A lost_reason and no status row at all: lost when the reason was set.
        "7": ("2026-01-20 10:00:00Z", "closed_lost", "pipedrive:2", "1500", "", "2026-02-05",
              "true", "false", "No budget", "2026-02-05 10:00:00Z", "Proposal Made"),
        # No status row: is_closed / is_won not delivered. Its title rows are set aside,
        # so updated_at is its last change used (02-20), not the title's (03-05).
        "8": ("2026-02-20 14:00:00Z", "Contact Made", "pipedrive:2", "4000", "", "", "", "",
              "", "2026-02-20 14:00:00Z", "Contact Made"),
    }  # fmt: skip
    # Deal 5 (no add_time row) is not an opportunity: its rows are set aside, not dropped.
    assert "pipedrive:5" not in opps


def test_stage_history_rebuilt_from_the_change_log(changelog_only):
    out, _ = changelog_only
    assert history(out, CL) == {
        ("pipedrive:1", "Qualified", "2026-01-05 09:00:00Z"),
        ("pipedrive:1", "Contact Made", "2026-01-12 10:00:00Z"),
        ("pipedrive:1", "Proposal Made", "2026-01-20 10:00:00Z"),
        ("pipedrive:1", "closed_won", "2026-02-04 09:00:00Z"),
        ("pipedrive:1", "Implementation/Onboarding", "2026-02-10 09:00:00Z"),
        ("pipedrive:1", "Follow-up/Customer Success", "2026-03-01 09:00:00Z"),
        ("pipedrive:2", "Qualified", "2026-01-08 12:00:00Z"),
        ("pipedrive:2", "Contact Made", "2026-01-15 12:00:00Z"),
        ("pipedrive:2", "closed_lost", "2026-01-28 12:00:00Z"),
        # Reopened without old_value: the status before is the previous status row; the
        # deal re-enters the stage it held.
        ("pipedrive:3", "Qualified", "2026-02-02 10:00:00Z"),
        ("pipedrive:3", "Proposal Made", "2026-02-16 10:00:00Z"),
        ("pipedrive:3", "closed_lost", "2026-02-20 10:00:00Z"),
        ("pipedrive:3", "Proposal Made", "2026-02-25 10:00:00Z"),
        # The duplicated id keeps every stage change, none before its created_at (01-10).
        ("pipedrive:4", "Qualified", "2026-01-10 09:00:00Z"),
        ("pipedrive:4", "Contact Made", "2026-01-20 09:00:00Z"),
        ("pipedrive:4", "Qualified", "2026-02-01 09:00:00Z"),
        ("pipedrive:4", "Proposal Made", "2026-02-10 09:00:00Z"),
        ("pipedrive:6", "Contact Made", "2026-01-15 11:00:00Z"),
        ("pipedrive:6", "Negotiations Started", "2026-02-01 11:00:00Z"),
        ("pipedrive:6", "closed_won", "2026-02-20 11:00:00Z"),
        ("pipedrive:6", "Implementation/Onboarding", "2026-02-25 11:00:00Z"),
        ("pipedrive:6", "Renewal/Expansion", "2026-03-20 11:00:00Z"),
        ("pipedrive:7", "Qualified", "2026-01-20 10:00:00Z"),
        ("pipedrive:7", "Proposal Made", "2026-01-25 10:00:00Z"),
        ("pipedrive:7", "closed_lost", "2026-02-05 10:00:00Z"),
        # Its stage row twice: once.
        ("pipedrive:8", "Contact Made", "2026-02-20 14:00:00Z"),
    }
    assert len(rows(out / CL / "stage_changes.csv")) == 26


def test_change_log_notes_name_every_row_set_aside(changelog_only):
    _, notes = changelog_only
    prefix = f"pipedrive {CL}: "
    assert [n.removeprefix(prefix) for n in notes] == [
        "activity.csv: 2 rows set aside, activity id on two or more different rows (the "
        "last in file order is kept, the file having no update time): 2 ids: 906, 909",
        "deal_changes.csv: 3 rows set aside, of deals with no add_time row (no creation "
        "time to rebuild them from, and no earlier deals file has them): 1 deal: 5 (3 rows)",
        "deal_changes.csv: 3 rows set aside, of field keys a deal is not rebuilt from: "
        "org_id ×1, title ×2",
        "deal_changes.csv: 1 row set aside, a second, different add_time of a deal id (two "
        "deals under one id? check them in Pipedrive); the earliest is created_at, as the "
        "log cannot tell the two deals' later rows apart: the id is one deal from its first "
        "creation on, none of its changes predating it: 1 deal: 4 (2026-01-10 09:00:00Z "
        "kept; 2026-02-01 09:00:00Z set aside)",
        "no deals file: 7 deals rebuilt from the change log (deal_changes.csv): created_at "
        "from the add_time row, owner from the latest user_id, stage from the latest "
        "stage_id, won / lost from status, won_time, lost_time (1 repeated row applied "
        "once)",
        "deal_changes.csv: 1 deal with a lost_reason but no status change: lost when the "
        "reason was set (Pipedrive asks for it when a deal is marked lost), unless a stage "
        "move came after: 7",
        "no organizations file: no accounts from this batch",
        "no persons file: no contacts from this batch",
    ]


def test_change_log_rows_reconcile(changelog_only):
    out, _ = changelog_only
    # 58 change-log rows: 50 used + 3 (deal 5) + 3 (title ×2, org_id) + 1 (deal 4's
    # second add_time) + 1 (deal 8's repeated stage row).
    assert reconciliation(out, CL) == {
        "deal_changes.csv": ("opportunities", 58, 50, {
            "of deals with no add_time row (no creation time to rebuild them from, and no "
            "earlier deals file has them)": 3,
            "of field keys a deal is not rebuilt from": 3,
            "a second, different add_time of a deal (the earliest is kept)": 1,
            "repeats of another row (same deal, time, field and values: applied once)": 1,
        }),
        # 12 rows: 906 and 909 each lose one; 907's exact repeat passes on (the loader
        # stores it once and counts it as a duplicate).
        "activity.csv": ("activities", 12, 10, {
            "activity id on two or more different rows (the last in file order is kept, "
            "the file having no update time)": 2,
        }),
        "stages.csv": (None, 7, 0, {
            "read for reference (stage ids → names and probabilities)": 7,
        }),
        "users.csv": ("users", 2, 2, {}),
    }  # fmt: skip


def test_colliding_activity_ids_keep_the_last_row(changelog_only):
    out, _ = changelog_only
    acts = rows(out / CL / "activities.csv")
    assert len(acts) == 10
    kept = {(r["activity_id"], r["activity_type"], r["occurred_at"], r["opportunity_id"])
            for r in acts if r["activity_id"] in ("pipedrive:906", "pipedrive:909")}  # fmt: skip
    assert kept == {
        ("pipedrive:906", "meeting", "2026-02-17 09:00:00Z", "pipedrive:3"),
        ("pipedrive:909", "call", "2026-01-23 10:00:00Z", "pipedrive:7"),
    }
    # The database dump's headers: activity_id, assigned_to_user, due_to.
    a901 = by(acts, "activity_id")["pipedrive:901"]
    assert (a901["owner_id"], a901["occurred_at"], a901["is_completed"]) == (
        "pipedrive:1", "2026-01-06 10:00:00Z", "true"
    )  # fmt: skip


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_incremental_change_log_without_deals_file(tmp_path):
    """Batch 1 has a deals file (deal 1); batch 2 only a change log with old_value (the
    API's headers): deal 9 is rebuilt, deal 1's stage move still counts, and every other
    row is set aside with its reason. Batch 3 moves deal 9 on and wins it: it is rebuilt
    again from the change logs of batches 2 and 3."""
    landing = tmp_path / "landing"
    b1, b2, b3 = "2026-01-31T0600", "2026-02-28T0600", "2026-03-15T0600"
    write(landing / b1, "deals.csv",
          "id,title,value,currency,add_time,update_time,stage_id,status,user_id\n"
          "1,Known,1000,USD,2026-01-05 09:00:00,2026-01-05 09:00:00,1,open,1\n")  # fmt: skip
    write(landing / b1, "stages.csv", "id,name\n1,Qualified\n2,Contact Made\n3,Proposal Made\n")
    write(landing / b2, "deal_updates.csv",
          "id,deal_id,timestamp,field_key,old_value,new_value\n"
          "1,1,2026-02-02 10:00:00,stage_id,1,2\n"
          "2,1,2026-02-02 10:05:00,value,1000,1500\n"
          "3,1,2026-02-03 10:00:00,status,open,deleted\n"
          "4,9,2026-02-05 09:00:00,add_time,,2026-02-05 09:00:00\n"
          "5,9,2026-02-05 09:00:00,user_id,,2\n"
          "6,9,2026-02-06 09:00:00,stage_id,1,2\n"
          "7,9,not a time,user_id,2,1\n"
          "8,9,2026-02-07 09:00:00,stage_id,2,\n"
          "9,10,2026-02-05 09:00:00,stage_id,1,2\n"
          "10,,2026-02-05 09:00:00,stage_id,1,2\n"
          "11,11,2026-02-08 09:00:00,add_time,,2026-02-08 09:00:00\n")  # fmt: skip
    write(landing / b3, "deal_updates.csv",
          "id,deal_id,timestamp,field_key,old_value,new_value\n"
          "12,9,2026-03-01 09:00:00,stage_id,2,3\n"
          "13,9,2026-03-02 09:00:00,status,open,won\n")  # fmt: skip
    notes = convert(landing, tmp_path / "out")
    out = tmp_path / "out"

    opps = rows(out / b2 / "opportunities.csv")
    assert [(o["opportunity_id"], o["created_at"], o["stage"], o["owner_id"], o["updated_at"])
            for o in opps] == [
        # Owner 2: the later owner change has no readable time. updated_at: the emptied
        # stage of 02-07 is not a change used.
        ("pipedrive:9", "2026-02-05 09:00:00Z", "Contact Made", "pipedrive:2",
         "2026-02-06 09:00:00Z"),
    ]  # fmt: skip
    assert history(out, b2) == {
        # Deal 1 (batch 1's deals file): its stage move, as with a deals file.
        ("pipedrive:1", "Contact Made", "2026-02-02 10:00:00Z"),
        # Deal 9: created in the first move's old_value (Qualified) at add_time.
        ("pipedrive:9", "Qualified", "2026-02-05 09:00:00Z"),
        ("pipedrive:9", "Contact Made", "2026-02-06 09:00:00Z"),
    }
    # 11 rows: 4 used (1, 4, 5, 6), 7 set aside, each with its reason.
    assert reconciliation(out, b2)["deal_updates.csv"] == ("opportunities", 11, 4, {
        "without a deal id": 1,
        "of deals with no add_time row (no creation time to rebuild them from, and no "
        "earlier deals file has them)": 1,
        "of deals with neither a stage_id change nor a won / lost status (no stage)": 1,
        "of deals of an earlier deals file, other than stage moves and won / lost / open "
        "statuses (their state comes with the next deals file)": 2,
        "with an empty new_value for stage_id, status, user_id or add_time": 1,
        "with no readable change time (a change that cannot be ordered is not applied)": 1,
    })  # fmt: skip
    prefix = f"pipedrive {b2}: deal_updates.csv: "
    assert [n.removeprefix(prefix) for n in notes if n.startswith(prefix)] == [
        "1 row set aside, without a deal id",
        "1 row set aside, of deals with no add_time row (no creation time to rebuild them "
        "from, and no earlier deals file has them): 1 deal: 10 (1 row)",
        "1 row set aside, of deals with neither a stage_id change nor a won / lost status "
        "(no stage): 1 deal: 11 (1 row)",
        "2 rows set aside, of deals of an earlier deals file, other than stage moves and "
        "won / lost / open statuses (their state comes with the next deals file): "
        "status ×1, value ×1",
        "1 row set aside, with an empty new_value for stage_id, status, user_id or "
        "add_time: 1 deal: 9",
        "1 row set aside, with no readable change time (a change that cannot be ordered is "
        "not applied): 1 deal: 9",
    ]

    # Batch 3: deal 9 again, from both batches' logs: won after its last move.
    (o9,) = rows(out / b3 / "opportunities.csv")
    assert (o9["created_at"], o9["stage"], o9["is_won"], o9["close_date"], o9["updated_at"],
            o9["pipedrive_stage"]) == (
        "2026-02-05 09:00:00Z", "closed_won", "true", "2026-03-02", "2026-03-02 09:00:00Z",
        "Proposal Made",
    )  # fmt: skip
    assert history(out, b3) == {
        ("pipedrive:9", "Qualified", "2026-02-05 09:00:00Z"),  # batch 2's, stored once
        ("pipedrive:9", "Proposal Made", "2026-03-01 09:00:00Z"),
        ("pipedrive:9", "closed_won", "2026-03-02 09:00:00Z"),
    }
    assert reconciliation(out, b3)["deal_updates.csv"] == ("opportunities", 2, 2, {})


def test_conflicting_deals_and_files_read_together(tmp_path):
    batch = tmp_path / "landing" / "b1"
    write(batch, "deals.csv",
          "id,title,value,add_time,update_time,stage_id,status,user_id\n"
          "1,Alpha,1000,2026-01-05 09:00:00,2026-01-10 09:00:00,1,open,1\n"
          "1,Alpha,1200,2026-01-05 09:00:00,2026-01-20 09:00:00,1,open,1\n"
          "1,Alpha,1100,2026-01-05 09:00:00,2026-01-15 09:00:00,1,open,1\n"
          "2,Beta,500,2026-01-06 09:00:00,2026-01-06 09:00:00,1,open,2\n"
          "2,Beta,500,2026-01-06 09:00:00,2026-01-06 09:00:00,1,open,2\n"
          ",No id,1,2026-01-07 09:00:00,2026-01-07 09:00:00,1,open,2\n"
          ",No id,2,2026-01-07 09:00:00,2026-01-07 09:00:00,1,open,2\n")  # fmt: skip
    # Two activity files: read together; id 2 in both, different: the last in file order
    # (activity.csv sorts after activities.csv) is kept.
    write(batch, "activities.csv", "id,type,due_date,deal_id\n1,call,2026-01-07,1\n"
          "2,call,2026-01-08,1\n")  # fmt: skip
    write(batch, "activity.csv", "id,type,due_date,deal_id\n2,email,2026-01-09,2\n"
          "3,call,2026-01-10,2\n")  # fmt: skip
    write(batch, "notes.csv", "a\n1\n2\n3\n")
    write(batch, "README.txt", "exported by hand\n")
    notes = convert(tmp_path / "landing", tmp_path / "out")
    out = tmp_path / "out" / "b1"
    opps = rows(out / "opportunities.csv")
    # Deal 1: the latest update_time (1200); deal 2's exact repeat passes on to the loader,
    # which stores it once and counts it as a duplicate.
    # Rows without an id are no duplicates of each other: they pass, for the gate to name.
    assert sorted((o["opportunity_id"], o["amount"]) for o in opps) == [
        ("", "1"), ("", "2"), ("pipedrive:1", "1200"), ("pipedrive:2", "500"),
        ("pipedrive:2", "500"),
    ]  # fmt: skip
    acts = by(rows(out / "activities.csv"), "activity_id")
    assert {k: v["activity_type"] for k, v in acts.items()} == {
        "pipedrive:1": "call", "pipedrive:2": "email", "pipedrive:3": "call",
    }  # fmt: skip
    said = [n.removeprefix("pipedrive b1: ") for n in notes]
    fix = (
        "name it like deals, stages, users, activities, deal_changes (or deal_changelog, "
        "deal_flow, deal_updates), organizations or persons (.csv), or move it out of the "
        "batch folder"
    )
    for note in [
        "deals.csv: 2 rows set aside, deal id on two or more different rows (the row with "
        "the latest update_time is kept, else the last in file order): 1 id: 1",
        "activities.csv: 1 row set aside, activity id on two or more different rows (the "
        "last in file order is kept, the file having no update time): 1 id: 2",
        f"README.txt: not a file the Pipedrive adapter reads, not loaded: {fix}",
        f"notes.csv: 3 rows set aside, not a file the Pipedrive adapter reads: {fix}",
    ]:
        assert note in said
    tallies = reconciliation(tmp_path / "out", "b1")
    deal_rule = (
        "deal id on two or more different rows (the row with the latest update_time is "
        "kept, else the last in file order)"
    )
    activity_rule = (
        "activity id on two or more different rows (the last in file order is kept, the "
        "file having no update time)"
    )
    assert tallies["deals.csv"] == ("opportunities", 7, 5, {deal_rule: 2})
    assert tallies["activities.csv"] == ("activities", 2, 1, {activity_rule: 1})
    assert tallies["activity.csv"] == ("activities", 2, 2, {})
    assert tallies["notes.csv"] == (None, 3, 0, {"not a file the Pipedrive adapter reads": 3})


def test_change_log_file_names(tmp_path):
    """Any of the common names, in any case, spaces or hyphens for underscores."""
    for name in ("Deal Changes.csv", "DEAL-CHANGELOG.csv", "deal_flow.csv", "Deal_Updates.CSV"):
        landing = tmp_path / name.replace(" ", "_") / "landing"
        write(landing / "b1", name, "deal_id,change_time,changed_field_key,new_value\n"
              "1,2026-01-05 09:00:00,add_time,2026-01-05 09:00:00\n"
              "1,2026-01-05 09:00:00,stage_id,1\n")  # fmt: skip
        convert(landing, landing.parent / "out")
        assert history(landing.parent / "out", "b1") == {
            ("pipedrive:1", "stage_id 1", "2026-01-05 09:00:00Z")
        }, name


def test_rows_name_the_users_own_file_and_line(changelog_only, converted):
    """The gate names a bad row by the user's export file and line, also for rows the
    adapter builds from several change-log rows (a rebuilt deal: its add_time row)."""
    out, _ = changelog_only
    opps = by(rows(out / CL / "opportunities.csv"), "opportunity_id")
    ref = {k: (v["_export_file"], v["_export_line"]) for k, v in opps.items()}
    assert ref["pipedrive:1"] == ("deal_changes.csv", "2")
    # Two add_time rows (lines 11 and 29): the deal is the earliest one's.
    assert ref["pipedrive:4"] == ("deal_changes.csv", "11")
    moves = {
        (r["stage"], r["_export_file"], r["_export_line"])
        for r in rows(out / CL / "stage_changes.csv")
        if r["opportunity_id"] == "pipedrive:1" and r["changed_at"] < "2026-01-21"
    }
    # Its first stage_id row (line 4, no old_value: the creation itself), then the
    # moves at lines 14 and 20; stage names from stages.csv.
    assert moves == {
        ("Qualified", "deal_changes.csv", "4"),
        ("Contact Made", "deal_changes.csv", "14"),
        ("Proposal Made", "deal_changes.csv", "20"),
    }
    activity = by(rows(out / CL / "activities.csv"), "activity_id")["pipedrive:902"]
    assert (activity["_export_file"], activity["_export_line"]) == ("activity.csv", "3")
    out, _ = converted
    users = by(rows(out / B1 / "users.csv"), "user_id")
    assert (users["pipedrive:2"]["_export_file"], users["pipedrive:2"]["_export_line"]) == (
        "users.csv",
        "3",
    )
    # A title spanning two lines: records are numbered, and the message says so.
    deal = by(rows(out / B1 / "opportunities.csv"), "opportunity_id")["pipedrive:2"]
    assert deal["_export_line"] == "record 2 (line 3 without multi-line values)"
