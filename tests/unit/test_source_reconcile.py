"""Source-level reconciliation (ingestion.sources.reconcile) without dbt: for every export
file an adapter reads, rows read = rows emitted + rows set aside, each set-aside group with
its reason; an optional object that cannot fill a required column is set aside whole (a
note), the deals never are; and what a run records and finds from it.

Every count below is read off the fixture files by hand (tests/fixtures/salesforce,
tests/fixtures/hubspot) or off the small exports written in the test.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import duckdb
import pytest

from ingestion.config import SourceSpec
from ingestion.sources import NOTES_FILE, convert_landing
from ingestion.sources.export import Conversion, ExportBatch
from ingestion.sources.reconcile import (
    FILE_SET_ASIDE,
    NO_OPPORTUNITIES,
    OVERCOUNTED,
    UNEXPLAINED,
    BatchRecord,
    FileTally,
    read_batch,
    reconcile,
    record,
)
from ingestion.warehouse import connect, create_raw_tables
from orchestration.lib.summary import source_summary

FIXTURES = Path(__file__).parents[1] / "fixtures"
SF_B1, SF_B2 = "2026-03-07T0600", "2026-03-14T0600"
HS_B2 = "2026-03-14T0600"


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def tallies(out: Path, batch: str) -> dict[tuple[str, str | None], tuple[int, int, dict]]:
    """(file, entity) → (rows read, rows emitted, set aside by reason), from the notes file."""
    record_ = read_batch(out / batch, NOTES_FILE)
    assert record_ is not None
    return {
        (t.export_file, t.entity): (t.rows_read, t.rows_emitted, t.set_aside)
        for t in record_.tallies
    }


def notes(out: Path, batch: str) -> list[str]:
    return json.loads((out / batch / NOTES_FILE).read_text(encoding="utf-8"))["notes"]


# --- Salesforce ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def salesforce(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sf")
    shutil.copytree(FIXTURES / "salesforce", tmp / "landing")
    convert_landing(SourceSpec("salesforce", "salesforce", tmp / "landing"), tmp / "out")
    return tmp / "out"


def test_salesforce_every_file_of_a_full_export(salesforce):
    no_stage = "history rows without a stage change (an amount or close-date change)"
    assert tallies(salesforce, SF_B1) == {
        # One canonical row per record: Opp1..Opp6, Acme/Globex/Initech, 3 users, 2
        # contacts, 6 leads, 3 tasks and 3 events, 3 EUR rates.
        ("Opportunity.csv", "opportunities"): (6, 6, {}),
        ("Account.csv", "accounts"): (3, 3, {}),
        ("User.csv", "users"): (3, 3, {}),
        ("Contact.csv", "contacts"): (2, 2, {}),
        ("Lead.csv", "leads"): (6, 6, {}),
        ("Task.csv", "activities"): (3, 3, {}),
        ("Event.csv", "activities"): (3, 3, {}),
        ("DatedConversionRate.csv", "fx_rates"): (3, 3, {}),
        # 24 history rows: H0004 (Opp1, 02-05) and H0010 (Opp2) repeat the deal's stage
        # (amount / close-date changes): 22 stage entries.
        ("OpportunityHistory.csv", "stage_changes"): (24, 22, {no_stage: 2}),
        # 7 quotas: Quo6 counts units (IsQuantity), Quo7 is a product family's share.
        ("ForecastingQuota.csv", "quotas"): (
            7,
            5,
            {
                "quantity quota(s) (IsQuantity: units, not money)": 1,
                "product-family quota(s) (ProductFamily set: a share of the owner's quota)": 1,
            },
        ),
    }


def test_salesforce_every_file_of_an_incremental_export(salesforce):
    assert tallies(salesforce, SF_B2) == {
        ("opportunity.csv", "opportunities"): (4, 4, {}),
        # H0025 puts Opp3 in Needs Analysis again (batch 1's last entry): an amount change.
        # Earlier batches' history, read for context, is not this batch's to account for.
        ("opportunityhistory.csv", "stage_changes"): (
            7,
            6,
            {"history rows without a stage change (an amount or close-date change)": 1},
        ),
        # Tsk5 is IsDeleted: a deleted call is no touchpoint.
        ("Task.csv", "activities"): (2, 1, {"deleted records": 1}),
        ("ForecastingQuota.csv", "quotas"): (2, 2, {}),
    }


def test_a_lead_file_without_created_date_is_set_aside_the_deals_are_not(tmp_path):
    landing = tmp_path / "landing"
    write(
        landing / "b1",
        {
            "Opportunity.csv": """
                Id,Name,StageName,CreatedDate,LastModifiedDate
                006A,Deal A,Prospecting,2026-01-01T00:00:00.000Z,2026-01-02T00:00:00.000Z
                006B,Deal B,Closed Won,2026-01-03T00:00:00.000Z,2026-01-09T00:00:00.000Z
            """,
            # A report-style export: no CreatedDate, which every lead needs (created_at).
            "Lead.csv": """
                Id,Company,Status
                00QA,Hooli,Open - Not Contacted
                00QB,Globex,Working - Contacted
                00QC,Initech,Closed - Converted
            """,
        },
    )
    convert_landing(SourceSpec("salesforce", "salesforce", landing), tmp_path / "out")
    out = tmp_path / "out" / "b1"
    # The leads file is not written (the loader would reject the whole batch for it);
    # the opportunities are.
    assert sorted(p.name for p in out.glob("*.csv")) == ["opportunities.csv"]
    reason = "in a file without created_at, which leads require"
    assert tallies(tmp_path / "out", "b1") == {
        ("Opportunity.csv", "opportunities"): (2, 2, {}),
        ("Lead.csv", "leads"): (3, 0, {reason: 3}),
    }
    (lead,) = [t for t in read_batch(out, NOTES_FILE).tallies if t.entity == "leads"]
    assert lead.skip_reason == reason
    got = notes(tmp_path / "out", "b1")
    # The adapter names the export's field, the framework what setting the file aside means.
    assert (
        "Lead.csv has no CreatedDate (for created_at) column, which the leads contract "
        "requires: its rows are set aside"
    ) in got
    assert got[-1] == (
        "Lead.csv: no leads from this batch: the file cannot fill created_at (no such "
        "column), which the leads contract requires. Its rows are set aside (quality."
        "source_reconciliation) and the rest of the batch loads; export it with the field for "
        "created_at to load them."
    )


def test_deals_without_a_required_column_still_block(tmp_path):
    landing = tmp_path / "landing"
    write(landing / "b1", {"Opportunity.csv": "Id,Name,CreatedDate\n006A,Deal A,2026-01-01\n"})
    convert_landing(SourceSpec("salesforce", "salesforce", landing), tmp_path / "out")
    # Written without stage: the loader rejects the batch naming the column, as before.
    header = (tmp_path / "out/b1/opportunities.csv").read_text().splitlines()[0]
    assert "stage" not in header.split(",")
    assert tallies(tmp_path / "out", "b1") == {("Opportunity.csv", "opportunities"): (1, 1, {})}


# --- HubSpot ------------------------------------------------------------------------------


def test_hubspot_property_history_keeps_dealstage_rows_only(tmp_path):
    shutil.copytree(FIXTURES / "hubspot", tmp_path / "landing")
    convert_landing(SourceSpec("hubspot", "hubspot", tmp_path / "landing"), tmp_path / "out")
    # 9 history rows, 2 of them amount changes; the deals' date-entered columns fan out
    # into stage changes too, but those are derived rows, not file rows.
    assert tallies(tmp_path / "out", HS_B2) == {
        ("Deals.csv", "opportunities"): (4, 4, {}),
        ("deal_property_history.csv", "stage_changes"): (
            9,
            7,
            {"changes of another property than dealstage": 2},
        ),
    }


def test_hubspot_companies_without_a_name_column_are_set_aside(tmp_path):
    write(
        tmp_path / "landing" / "b1",
        {
            "deals.csv": """
                hs_object_id,dealname,dealstage,createdate
                1,Deal one,appointmentscheduled,2026-01-05T10:00:00Z
            """,
            # No name column: every account would fail name_not_null and be quarantined,
            # more than quarantine_max_share, and reject the deals with them.
            "companies.csv": "hs_object_id,domain\n11,acme.example\n12,globex.example\n",
        },
    )
    convert_landing(SourceSpec("hubspot", "hubspot", tmp_path / "landing"), tmp_path / "out")
    assert not (tmp_path / "out/b1/accounts.csv").exists()
    assert (tmp_path / "out/b1/opportunities.csv").exists()
    reason = "in a file with no value in any row for name, which accounts require"
    assert tallies(tmp_path / "out", "b1") == {
        ("deals.csv", "opportunities"): (1, 1, {}),
        ("companies.csv", "accounts"): (2, 0, {reason: 2}),
    }
    assert (
        "companies.csv has no name column (name / Company name): its rows are set aside (name)."
    ) in notes(tmp_path / "out", "b1")


# --- mapping ------------------------------------------------------------------------------

MAPPING = """
    full_export: true
    stage_labels: {Lead In: prospecting, Demo: meeting, Won: closed_won}
    entities:
      opportunities:
        file: deals.csv
        columns: {opportunity_id: Deal ID, stage: Stage, created_at: Created,
                  account_id: Company ID}
        stage_entered: {columns: {Created: Lead In, Demo on: Demo}}
      accounts: {file: deals.csv, columns: {account_id: Company ID, name: Company}}
      activities:
        - {file: calls.csv, columns: {activity_id: ID, occurred_at: When},
           constants: {activity_type: call}}
        - {file: mails.csv, columns: {activity_id: ID, occurred_at: When},
           constants: {activity_type: email}}
      users:
        file: owners.csv
        optional: true
        columns: {user_id: ID, name: Name}
        optional_columns: [ID]
"""


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mapping")
    write(tmp, {"m.yaml": MAPPING})
    write(
        tmp / "landing",
        {
            "b1/deals.csv": """
                Deal ID,Stage,Created,Demo on,Company ID,Company
                D1,Demo,2026-01-05,2026-01-09,C1,Acme
                D2,Lead In,2026-01-06,,C2,Globex
                D3,Won,2026-01-07,2026-01-08,C1,Acme
            """,
            "b1/calls.csv": "ID,When\nK1,2026-01-09\nK2,2026-01-10\n",
            "b1/mails.csv": "ID,When\nM1,2026-01-11\n",
            # The export left the id column out (listed in optional_columns).
            "b1/owners.csv": "Name\nAlice Ames\nBo Byrne\n",
            # A full export without D2: deleted in the CRM.
            "b2/deals.csv": """
                Deal ID,Stage,Created,Demo on,Company ID,Company
                D1,Won,2026-01-05,2026-01-09,C1,Acme
                D3,Won,2026-01-07,2026-01-08,C1,Acme
            """,
            "b2/calls.csv": "ID,When\nK3,2026-02-01\n",
            "b2/mails.csv": "ID,When\n",
        },
    )
    spec = SourceSpec("home", "mapping", tmp / "landing", tmp / "m.yaml")
    convert_landing(spec, tmp / "out")
    return tmp / "out"


def test_mapping_every_file_and_entity(mapped):
    users = "in a file with no value in any row for user_id, which users require"
    assert tallies(mapped, "b1") == {
        # deals.csv feeds two entities: each of its 3 rows is an opportunity and an
        # account row (the loader keeps one account per id). Its "Created" and "Demo on"
        # dates are 5 stage changes derived from those rows, not rows of their own.
        ("deals.csv", "opportunities"): (3, 3, {}),
        ("deals.csv", "accounts"): (3, 3, {}),
        ("calls.csv", "activities"): (2, 2, {}),
        ("mails.csv", "activities"): (1, 1, {}),
        ("owners.csv", "users"): (2, 0, {users: 2}),
    }
    assert not (mapped / "b1" / "users.csv").exists()


def test_mapping_full_export_counts_this_batchs_rows_only(mapped):
    # b2's opportunities file holds D1, D3 and D2 carried over as deleted (3 rows); the
    # reconciliation is of b2's export rows: 2 read, 2 emitted.
    opportunities = (mapped / "b2" / "opportunities.csv").read_text().splitlines()
    assert len(opportunities) == 1 + 3
    assert tallies(mapped, "b2") == {
        ("deals.csv", "opportunities"): (2, 2, {}),
        ("deals.csv", "accounts"): (2, 2, {}),
        ("calls.csv", "activities"): (1, 1, {}),
        ("mails.csv", "activities"): (0, 0, {}),
    }


# --- the framework's arithmetic -----------------------------------------------------------


def test_a_gap_is_never_silent(tmp_path):
    write(
        tmp_path / "b1",
        {
            "a.csv": "id,kind\n1,x\n2,y\n3,z\n4,z\n",
            "b.csv": "id\n1\n2\n",
            "c.csv": "id\n1\n",
        },
    )
    con = duckdb.connect()
    batch = ExportBatch(con, tmp_path / "b1")
    a, b = batch.read("a"), batch.read("b")
    batch.read("c")
    conv = Conversion()
    # a: x emitted, y set aside with a reason, the two z rows dropped without one.
    conv.feed(
        a, "users", f"SELECT * FROM {a.view} WHERE kind = 'x'", set_aside=[("y", "kind = 'y'")]
    )
    # b: an adapter's mistake, a row both emitted and set aside.
    conv.feed(b, "accounts", f"SELECT * FROM {b.view}", set_aside=[("one", "id = '1'")])
    # c: read, never declared.
    got = {t.export_file: t for t in reconcile(batch, conv, written={})}
    assert (got["a.csv"].rows_read, got["a.csv"].rows_emitted) == (4, 1)
    assert got["a.csv"].set_aside == {"y": 1, UNEXPLAINED: 2}
    assert got["b.csv"].set_aside == {"one": 1, OVERCOUNTED: -1}
    assert got["b.csv"].rows_set_aside == 0
    assert (got["c.csv"].entity, got["c.csv"].set_aside) == (None, {UNEXPLAINED: 1})


# --- recording and findings ---------------------------------------------------------------


def test_record_and_summary(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    con = connect(warehouse)
    create_raw_tables(con)
    leads_aside = "in a file without created_at, which leads require"
    batches = [
        BatchRecord(
            "b1",
            [
                "Lead.csv has no CreatedDate (for created_at) column, which the leads contract "
                "requires: its rows are set aside"
            ],
            [
                FileTally("Opportunity.csv", "opportunities", 36, 36),
                FileTally("Task.csv", "activities", 10, 8, {"deleted records": 2}),
                FileTally("Lead.csv", "leads", 6, 0, {leads_aside: 6}, leads_aside),
            ],
        ),
        BatchRecord(
            "b2",
            ["no Opportunity file: no opportunities in this batch"],
            [FileTally("Task.csv", "activities", 5, 5)],
        ),
    ]
    messages = record(con, "salesforce", batches, "run-1")
    assert messages == [
        "salesforce batch b1: Lead.csv set aside, 6 rows in a file without created_at, which "
        "leads require; no leads from it. Lead.csv has no CreatedDate (for created_at) "
        "column, which the leads contract requires: its rows are set aside. The rest of the "
        "batch loads; export Lead.csv with that field to load them.",
        "salesforce batch b2: 5 rows read, no opportunity converted. No Opportunity file: no "
        "opportunities in this batch. Converted instead: Task.csv → activities: 5. If the "
        "batch should hold deals, export it again with its deals file "
        "(quality.source_reconciliation has every file's rows).",
    ]
    assert con.execute(
        "select rule, batch_id, entity, source_file, severity, success "
        "from quality.validation_results order by batch_id, rule"
    ).fetchall() == [
        (NO_OPPORTUNITIES, "b1", "opportunities", None, "warn", True),
        (FILE_SET_ASIDE, "b1", "leads", "Lead.csv", "warn", False),
        (NO_OPPORTUNITIES, "b2", "opportunities", None, "warn", False),
    ]
    assert con.execute(
        "select batch_id, export_file, rows_read, rows_emitted, rows_set_aside, set_aside, "
        "skip_reason from quality.source_reconciliation order by batch_id, export_file"
    ).fetchall() == [
        ("b1", "Lead.csv", 6, 0, 6, json.dumps({leads_aside: 6}), leads_aside),
        ("b1", "Opportunity.csv", 36, 36, 0, "{}", None),
        ("b1", "Task.csv", 10, 8, 2, json.dumps({"deleted records": 2}), None),
        ("b2", "Task.csv", 5, 5, 0, "{}", None),
    ]
    con.close()
    # 4 files, 36 + 10 + 6 + 5 = 57 rows read, 36 + 8 + 5 = 49 converted, 8 set aside.
    where = "select * from quality.source_reconciliation where run_id = 'run-1'"
    assert source_summary(warehouse, "run-1") == [
        f"salesforce: 4 export files, 57 rows read, 49 converted, 8 set aside (6 {leads_aside}"
        f", 2 deleted records): {where}"
    ]
    assert source_summary(warehouse, "another run") == []


def test_set_aside_reasons_come_in_the_adapters_order(tmp_path):
    """The record and the run's summary list the reasons as the adapter declared them,
    whatever order DuckDB's grouping returns them in (it varies from run to run)."""
    kinds = [f"k{i}" for i in range(12)]
    rows = "".join(f"{n},{kind}\n" for n, kind in enumerate(kinds * 50))
    write(tmp_path / "b1", {"a.csv": "id,kind\n" + rows})
    con = duckdb.connect()
    batch = ExportBatch(con, tmp_path / "b1")
    a = batch.read("a")
    conv = Conversion()
    declared = [(f"reason {kind}", f"kind = '{kind}'") for kind in reversed(kinds)]
    conv.feed(a, "users", f"SELECT * FROM {a.view} WHERE false", set_aside=declared)
    (tally,) = reconcile(batch, conv, written={})
    assert list(tally.set_aside.items()) == [(reason, 50) for reason, _ in declared]
