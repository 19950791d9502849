"""The HubSpot adapter alone (convert_landing, no loader, no dbt): what it writes for the
fixture's quirks, and what it says when optional files or columns are missing.

Fixture tests/fixtures/hubspot: batch 2026-02-01T0600 (deals.csv with a BOM and CRLF,
epoch-ms deal 1002, a quoted lost reason holding a comma and a newline, deal 1008 merged
into 1004, companies.csv with a trailing empty column, contacts, owners, engagements) and
batch 2026-03-14T0600 (Deals.csv with mixed-case headers and no hs_is_closed(_won), deal
1007 archived, deal_property_history.csv). Expected values are read off the fixture files.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from ingestion.config import SourceSpec
from ingestion.sources import NOTES_FILE, convert_landing
from ingestion.sources.hubspot import DEFAULT_STAGE_LABELS
from ingestion.stages import DEFAULT_STAGES, StageMap

FIXTURE = Path(__file__).parents[1] / "fixtures" / "hubspot"
B1, B2 = "2026-02-01T0600", "2026-03-14T0600"


def convert(landing: Path, out: Path) -> list[str]:
    return convert_landing(SourceSpec("hubspot", "hubspot", landing), out)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def by_id(path: Path, key: str) -> dict[str, dict[str, str]]:
    return {r[key]: r for r in rows(path)}


@pytest.fixture(scope="module")
def fixture_out(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("hubspot") / "converted"
    return out, convert(FIXTURE, out)


def test_default_stage_labels_map_to_canonical_stages():
    canonical = {s.stage for s in DEFAULT_STAGES}
    assert set(DEFAULT_STAGE_LABELS.values()) <= canonical
    labels = StageMap(labels=DEFAULT_STAGE_LABELS).label_map()
    # internal ids and display labels, compared case- and space-insensitively
    assert labels["appointmentscheduled"] == "meeting"
    assert labels["qualifiedtobuy"] == "qualification"
    assert labels["decision maker bought-in"] == "proposal"
    assert labels["contractsent"] == "negotiation"
    assert labels["closed won"] == "closed_won"
    assert labels["closedlost"] == "closed_lost"


def test_batch1_deals_quirks(fixture_out):
    out, _notes = fixture_out
    opps = by_id(out / B1 / "opportunities.csv", "opportunity_id")
    # The BOM did not stick to the first header: the id column was found and namespaced.
    assert sorted(opps) == [f"hubspot:{n}" for n in (1001, 1002, 1003, 1004, 1007, 1008)]
    d2 = opps["hubspot:1002"]
    # epoch ms 1767830400000 = 2026-01-08 00:00 UTC, 1769558400000 = 2026-01-28 00:00 UTC
    assert d2["created_at"] == "2026-01-08T00:00:00Z"
    assert d2["close_date"] == "2026-01-28"
    assert d2["updated_at"] == "2026-01-28T00:00:00Z"
    # quoted value with a comma and a newline survives whole
    assert d2["lost_reason"] == "Budget frozen, revisit\nnext fiscal year"
    assert (d2["is_closed"], d2["is_won"]) == ("true", "false")
    d1 = opps["hubspot:1001"]
    assert d1["created_at"] == "2026-01-05T09:00:00.000Z"  # ISO passes unchanged
    assert d1["stage"] == "presentationscheduled"
    assert d1["owner_id"] == "hubspot:51000001"
    assert d1["account_id"] == "hubspot:7001"
    assert d1["probability"] == "0.6"  # already a fraction: not divided
    assert d1["lead_source"] == "ORGANIC_SEARCH"
    assert d1["close_date"] == "2026-02-28"
    # unmapped columns ride along (custom property, pipeline, merge list, exit dates)
    assert d1["partner_tier"] == "gold"
    assert d1["pipeline"] == "default"
    assert opps["hubspot:1004"]["hs_merged_object_ids"] == "1008"
    assert "hs_v2_date_exited_appointmentscheduled" in d1
    # date-entered columns are stage history, not attributes
    assert not any(c.startswith(("hs_v2_date_entered", "hs_date_entered")) for c in d1)


def test_merged_deal_is_soft_deleted(fixture_out):
    out, notes = fixture_out
    opps = by_id(out / B1 / "opportunities.csv", "opportunity_id")
    # 1008 is listed in 1004's hs_merged_object_ids; no archived column in batch 1, so
    # every other deal's is_deleted stays empty (read as false).
    assert {k: v["is_deleted"] for k, v in opps.items()} == {
        "hubspot:1001": "",
        "hubspot:1002": "",
        "hubspot:1003": "",
        "hubspot:1004": "",
        "hubspot:1007": "",
        "hubspot:1008": "true",
    }
    assert any(
        n.startswith(
            f"hubspot {B1}: deals.csv: 1 deal(s) listed in another deal's hs_merged_object_ids"
        )
        for n in notes
    )
    # its stage history stays under its own id (epoch 1768176000000 = 2026-01-12 00:00)
    changes = rows(out / B1 / "stage_changes.csv")
    assert [r for r in changes if r["opportunity_id"] == "hubspot:1008"] == [
        {
            "opportunity_id": "hubspot:1008",
            "stage": "appointmentscheduled",
            "changed_at": "2026-01-12T00:00:00Z",
            # Derived from deal 1008's row: named by it (a value spans lines in this
            # file, so records are counted) and by the column its date came from.
            "_export_file": "deals.csv",
            "_export_line": "record 6 (line 7 without multi-line values)",
            "_export_column": "hs_v2_date_entered_appointmentscheduled",
        }
    ]


def test_wide_stage_history_unpivoted(fixture_out):
    out, _notes = fixture_out
    got = sorted(
        (r["opportunity_id"].removeprefix("hubspot:"), r["stage"], r["changed_at"])
        for r in rows(out / B1 / "stage_changes.csv")
    )
    # One row per non-empty hs_v2_date_entered_* cell: 1001 ×3, 1002 ×2, 1003 ×1, 1004 ×3,
    # 1007 ×1, 1008 ×1 = 11. 1004's legacy hs_date_entered_closedwon (00:00:05) loses to
    # the v2 column (00:00:00).
    assert got == [
        ("1001", "appointmentscheduled", "2026-01-05T09:00:00.000Z"),
        ("1001", "presentationscheduled", "2026-01-20T09:00:00.000Z"),
        ("1001", "qualifiedtobuy", "2026-01-12T09:00:00.000Z"),
        ("1002", "appointmentscheduled", "2026-01-08T00:00:00Z"),
        ("1002", "closedlost", "2026-01-28T00:00:00Z"),
        ("1003", "qualifiedtobuy", "2026-01-15T00:00:00.000Z"),
        ("1004", "appointmentscheduled", "2026-01-10T00:00:00.000Z"),
        ("1004", "closedwon", "2026-01-30T00:00:00.000Z"),
        ("1004", "contractsent", "2026-01-25T00:00:00.000Z"),
        ("1007", "appointmentscheduled", "2026-01-25T00:00:00.000Z"),
        ("1008", "appointmentscheduled", "2026-01-12T00:00:00Z"),
    ]


def test_batch1_companies_contacts_owners(fixture_out):
    out, _notes = fixture_out
    accounts = by_id(out / B1 / "accounts.csv", "account_id")
    # trailing empty column dropped; unmapped domain and lifecyclestage kept
    assert list(accounts["hubspot:7001"]) == [
        "account_id", "name", "industry", "country", "employee_count", "annual_revenue",
        "created_at", "updated_at", "is_deleted", "domain", "lifecyclestage",
        "_export_file", "_export_line",
    ]  # fmt: skip
    globex = accounts["hubspot:7002"]
    assert (globex["name"], globex["employee_count"], globex["annual_revenue"]) == (
        "Globex, Inc.",
        "1200",
        "250000000.50",
    )
    assert globex["updated_at"] == "2026-01-28T00:00:00Z"  # epoch 1769558400000
    contacts = by_id(out / B1 / "contacts.csv", "contact_id")
    raj = contacts["hubspot:302"]
    assert (raj["account_id"], raj["first_name"], raj["title"], raj["created_at"]) == (
        "hubspot:7002",
        "Raj",
        "CFO",
        "2026-01-08T00:00:00Z",
    )
    assert raj["hs_lead_status"] == "OPEN_DEAL"
    users = by_id(out / B1 / "users.csv", "user_id")
    assert {k: (v["name"], v["team"], v["is_active"]) for k, v in users.items()} == {
        "hubspot:51000001": ("Ana Souza", "EMEA Sales", "true"),
        "hubspot:51000002": ("Ben Carter", "EMEA Sales", "true"),
        # archived → inactive; no first/last name → the e-mail names the owner
        "hubspot:51000003": ("chris.old@example.com", "", "false"),
    }
    assert users["hubspot:51000001"]["userid"] == "9001"  # HubSpot user id: an attribute


def test_batch1_engagements(fixture_out):
    out, _notes = fixture_out
    acts = by_id(out / B1 / "activities.csv", "activity_id")
    got = {
        k.removeprefix("hubspot:"): (
            v["activity_type"], v["occurred_at"], v["opportunity_id"], v["subject"],
            v["is_completed"],
        )
        for k, v in acts.items()
    }  # fmt: skip
    assert got == {
        # e-mail SENT counts as completed; subject with a comma kept whole
        "60001": ("email", "2026-01-06T10:00:00.000Z", "hubspot:1001", "Intro, pricing", "true"),
        # epoch 1768212000000 = 2026-01-12 10:00 UTC; a call's title names it
        "60002": ("call", "2026-01-12T10:00:00Z", "hubspot:1004", "Discovery call", "true"),
        # two associated deals "1001;1004": the first one; no status → unknown
        "60003": ("meeting", "2026-01-20T14:00:00.000Z", "hubspot:1001", "Platform demo", ""),
        "60004": ("other", "2026-01-22T11:00:00.000Z", "", "", ""),
        "60005": ("other", "2026-01-29T09:00:00.000Z", "hubspot:1003", "Send proposal", "false"),
    }
    assert acts["hubspot:60001"]["metadata_body"] == "Hi Dana,\nattached our pricing."
    assert acts["hubspot:60004"]["contact_id"] == "hubspot:302"


def test_batch2_mixed_case_headers_derived_flags_and_archive(fixture_out):
    out, notes = fixture_out
    opps = by_id(out / B2 / "opportunities.csv", "opportunity_id")
    got = {
        k.removeprefix("hubspot:"): (
            v["stage"], v["amount"], v["account_id"], v["is_closed"], v["is_won"],
            v["is_deleted"], v["updated_at"],
        )
        for k, v in opps.items()
    }  # fmt: skip
    # no hs_is_closed(_won) columns: closedwon → closed and won, closedlost → closed, not
    # won, appointmentscheduled → open; Archived true → deleted.
    assert got == {
        "1001": ("closedwon", "12000", "hubspot:7001", "true", "true", "false",
                 "2026-02-04T09:00:00.000Z"),
        "1005": ("closedwon", "6000", "hubspot:7003", "true", "true", "false",
                 "2026-03-05T00:00:00.000Z"),
        "1006": ("closedlost", "2000", "hubspot:7002", "true", "false", "false",
                 "2026-03-02T00:00:00.000Z"),
        "1007": ("appointmentscheduled", "1500", "hubspot:7002", "false", "false", "true",
                 "2026-02-15T00:00:00.000Z"),
    }  # fmt: skip
    assert opps["hubspot:1001"]["partner_tier"] == "platinum"
    b2_notes = [n.removeprefix(f"hubspot {B2}: ") for n in notes if n.startswith(f"hubspot {B2}")]
    assert b2_notes == [
        "Deals.csv has no is_won column (hs_is_closed_won / Is Closed Won): is_won derived "
        "from the default pipeline's stage (closedwon/closedlost), empty for other stages.",
        "Deals.csv has no is_closed column (hs_is_closed / Is closed): is_closed derived "
        "from the default pipeline's stage (closedwon/closedlost), empty for other stages.",
        "no companies file: no accounts in this batch.",
        "no contacts file: no contacts in this batch.",
        "no owners file: no users in this batch.",
        "no engagements file: no activities in this batch.",
    ]
    # the same notes are recorded beside the converted batch
    recorded = json.loads((out / B2 / NOTES_FILE).read_text(encoding="utf-8"))
    assert recorded["notes"] == b2_notes


def test_batch2_property_history_unioned(fixture_out):
    out, _notes = fixture_out
    changes = rows(out / B2 / "stage_changes.csv")
    # wide form: 1001 ×4, 1005 ×3, 1006 ×2, 1007 ×1 = 10; history: 9 rows, 2 of them
    # amount changes (dropped) → 7. 17 rows; the loader deduplicates the overlap.
    assert len(changes) == 17
    # The converted file is sorted (byte-identical reconversions), not in export order.
    history = sorted((r for r in changes if r["sourcetype"]), key=lambda r: r["changed_at"])
    history.sort(key=lambda r: r["opportunity_id"])
    assert [(r["opportunity_id"], r["stage"], r["changed_at"]) for r in history] == [
        ("hubspot:1005", "appointmentscheduled", "2026-02-03T00:00:00.000Z"),
        ("hubspot:1005", "presentationscheduled", "2026-02-13T00:00:00Z"),  # epoch ms
        ("hubspot:1005", "appointmentscheduled", "2026-02-18T00:00:00.000Z"),
        ("hubspot:1005", "presentationscheduled", "2026-02-23T00:00:00.000Z"),
        ("hubspot:1005", "closedwon", "2026-03-05T00:00:00.000Z"),
        ("hubspot:1006", "qualifiedtobuy", "2026-02-10T00:00:00.000Z"),
        ("hubspot:1006", "closedlost", "2026-03-02T00:00:00.000Z"),
    ]
    assert history[3]["sourceid"] == "workflow:77"


def test_missing_optional_files_and_columns(tmp_path):
    landing = tmp_path / "landing"
    (landing / "b1").mkdir(parents=True)
    # A bare deals export: no stage columns, no currency, no lastmodified, no flags.
    (landing / "b1" / "deal.csv").write_text(
        "hs_object_id,dealname,dealstage,amount,createdate\n"
        "1,Small deal,contractsent,100,2026-01-02T00:00:00Z\n"
        "2,Custom pipeline deal,123456789,200,2026-01-03T00:00:00Z\n",
        encoding="utf-8",
    )
    notes = convert(landing, tmp_path / "out")
    assert [n.removeprefix("hubspot b1: ") for n in notes] == [
        "deal.csv has no is_won column (hs_is_closed_won / Is Closed Won): is_won derived "
        "from the default pipeline's stage (closedwon/closedlost), empty for other stages.",
        "deal.csv has no is_closed column (hs_is_closed / Is closed): is_closed derived "
        "from the default pipeline's stage (closedwon/closedlost), empty for other stages.",
        "deal.csv has no updated_at column (hs_lastmodifieddate / Last Modified Date): a "
        "later batch's row replaces an earlier one only by batch order.",
        "deal.csv has no currency column (deal_currency_code / Currency): amounts are read "
        "as the reporting currency.",
        "deal.csv has no hs_v2_date_entered_<stage> (nor hs_date_entered_ or 'Date entered "
        "...') columns and there is no deal_property_history file: no stage history; each "
        "deal starts in its current stage at its createdate.",
        "no deal_property_history file: stage history comes from the deals' date-entered "
        "columns only (one entry per stage).",
        "no companies file: no accounts in this batch.",
        "no contacts file: no contacts in this batch.",
        "no owners file: no users in this batch.",
        "no engagements file: no activities in this batch.",
    ]
    written = sorted(p.name for p in (tmp_path / "out" / "b1").glob("*.csv"))
    assert written == ["opportunities.csv"]
    opps = by_id(tmp_path / "out" / "b1" / "opportunities.csv", "opportunity_id")
    # a default open stage derives open/not won; a custom pipeline's stage id stays unknown
    assert (opps["hubspot:1"]["is_closed"], opps["hubspot:1"]["is_won"]) == ("false", "false")
    assert (opps["hubspot:2"]["is_closed"], opps["hubspot:2"]["is_won"]) == ("", "")
    assert opps["hubspot:2"]["stage"] == "123456789"  # left to the config's stage_labels


def test_label_headers_and_date_entered_labels(tmp_path):
    landing = tmp_path / "landing"
    (landing / "b1").mkdir(parents=True)
    (landing / "b1" / "Deals.csv").write_text(
        "Record ID,Deal Name,Deal Stage,Amount,Create Date,Is Closed Won,"
        '"Date entered ""Appointment Scheduled (Sales Pipeline)""",'
        "Date entered Closed Won (Sales Pipeline),Date entered current stage,"
        "hs_v2_date_entered_current_stage\n"
        "77,Label export,Closed Won,300,2026-01-05T00:00:00Z,true,"
        "2026-01-05T00:00:00Z,2026-01-20T00:00:00Z,2026-01-20T00:00:00Z,1768867200000\n",
        encoding="utf-8",
    )
    convert(landing, tmp_path / "out")
    opps = rows(tmp_path / "out" / "b1" / "opportunities.csv")
    got = [(o["opportunity_id"], o["name"], o["stage"], o["is_won"], o["is_closed"]) for o in opps]
    assert got == [("hubspot:77", "Label export", "Closed Won", "true", "true")]
    # "current stage" is no stage: kept as attributes, not unpivoted
    assert opps[0]["date_entered_current_stage"] == "2026-01-20T00:00:00Z"
    assert opps[0]["hs_v2_date_entered_current_stage"] == "1768867200000"
    changes = rows(tmp_path / "out" / "b1" / "stage_changes.csv")
    assert sorted((c["stage"], c["changed_at"]) for c in changes) == [
        ("Appointment Scheduled", "2026-01-05T00:00:00Z"),
        ("Closed Won", "2026-01-20T00:00:00Z"),
    ]


def test_history_without_deals_and_reconversion_is_skipped(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE / B2, landing / B2)
    (landing / B2 / "Deals.csv").unlink()
    out = tmp_path / "out"
    notes = convert(landing, out)
    assert f"hubspot {B2}: no deals file (deals.csv): this batch has no opportunities and no " \
        "stage history from deal columns." in notes  # fmt: skip
    # only the 7 dealstage rows of the history file
    assert len(rows(out / B2 / "stage_changes.csv")) == 7
    assert not (out / B2 / "opportunities.csv").exists()
    # converted once: the same files again are not converted (no notes)
    assert convert(landing, out) == []


def test_every_row_names_its_export_file_and_line(fixture_out):
    """Owners, engagements and history rows carry the user's file and line like the
    deals; a stage change from a wide date-entered column also names the column."""
    out, _notes = fixture_out

    def ref(row: dict[str, str]) -> tuple[str, ...]:
        return (row["_export_file"], row["_export_line"], row.get("_export_column", ""))

    users = by_id(out / B1 / "users.csv", "user_id")
    assert ref(users["hubspot:51000002"]) == ("owners.csv", "3", "")
    # engagements.csv holds a body spanning two lines: records are counted.
    acts = by_id(out / B1 / "activities.csv", "activity_id")
    assert ref(acts["hubspot:60002"]) == (
        "engagements.csv", "record 2 (line 3 without multi-line values)", ""
    )  # fmt: skip
    changes = {
        (r["opportunity_id"], r["stage"], r["changed_at"][:10], r["_export_file"]): ref(r)
        for r in rows(out / B1 / "stage_changes.csv") + rows(out / B2 / "stage_changes.csv")
    }
    # Deal 1004 has both hs_v2_date_entered_closedwon and the legacy column: the v2
    # value is the one taken, so the v2 column is named.
    assert changes["hubspot:1004", "closedwon", "2026-01-30", "deals.csv"] == (
        "deals.csv", "record 4 (line 5 without multi-line values)", "hs_v2_date_entered_closedwon"
    )  # fmt: skip
    # Batch 2: deal 1005 on line 3 of Deals.csv (header as written), and its two entries
    # into presentationscheduled in deal_property_history.csv, lines 4 and 6.
    assert changes["hubspot:1005", "presentationscheduled", "2026-02-13", "Deals.csv"] == (
        "Deals.csv", "3", "HS_V2_Date_Entered_presentationscheduled"
    )  # fmt: skip
    history = "deal_property_history.csv"
    assert changes["hubspot:1005", "presentationscheduled", "2026-02-13", history] == (
        history, "4", ""
    )  # fmt: skip
    assert changes["hubspot:1005", "presentationscheduled", "2026-02-23", history] == (
        history, "6", ""
    )  # fmt: skip
