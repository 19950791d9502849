"""The generic mapping adapter without dbt: the mapping file's checks (each mistake is a
ConfigError naming the file, the key and what to write instead) and ``convert_landing``
on the fixture's quirks, on missing optional files and columns, and on values that do not
parse (they reach the gate unchanged, which quarantines them with the reason)."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from datetime import date
from pathlib import Path

import pytest

from ingestion.config import PipelineConfig, SourceSpec
from ingestion.errors import ConfigError
from ingestion.loader import ingest
from ingestion.sources import convert_landing, default_stage_labels, stage_map
from ingestion.sources.mapping import load_mapping
from ingestion.stages import StageMap
from ingestion.warehouse import connect, create_raw_tables

FIXTURE = Path(__file__).parents[1] / "fixtures" / "mapping"
B1, B2 = "2026-02-15", "2026-03-14"


def spec_for(mapping: Path, landing: Path, **kw) -> SourceSpec:
    return SourceSpec("home", "mapping", landing, mapping, **kw)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def by_id(path: Path, key: str) -> dict[str, dict[str, str]]:
    return {r[key]: r for r in rows(path)}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted")
    spec = spec_for(FIXTURE / "crm_mapping.yaml", FIXTURE / "exports")
    convert_landing(spec, out)
    return out


# --- the fixture --------------------------------------------------------------------------


def test_opportunities_from_a_bom_file_with_day_first_dates_and_a_status(converted):
    opps = by_id(converted / B1 / "opportunities.csv", "opportunity_id")
    assert list(opps) == [f"home:D-10{i}" for i in range(1, 9)]  # BOM: first header found
    d101 = opps["home:D-101"]
    assert d101["name"] == "Acme Corp, website relaunch"  # quoted comma
    assert d101["created_at"] == "2026-01-05 12:00:00"  # 05.01.2026 12:00, day first
    assert d101["close_date"] == "2026-02-04"  # 04.02.2026
    assert d101["updated_at"] == "2026-02-04 10:00:00"
    assert (d101["is_won"], d101["is_closed"]) == ("true", "true")  # Status Won
    assert d101["stage"] == "Won"  # raw keeps the CRM's label; the stage map translates
    assert (d101["owner_id"], d101["account_id"]) == ("home:U1", "home:C-1")
    # Extra columns are carried along as attributes; the consumed Status and the wide
    # stage-entered columns are not.
    assert (d101["tags"], d101["region"]) == ("upsell;web", "North")
    assert "status" not in d101 and "won_on" not in d101
    # Status Abandoned counts as lost; an empty Currency takes the constant USD.
    d106 = opps["home:D-106"]
    assert (d106["is_won"], d106["is_closed"], d106["currency"]) == ("false", "true", "USD")
    d104 = opps["home:D-104"]
    assert (d104["is_won"], d104["is_closed"]) == ("false", "false")  # Status Open


def test_wide_stage_entered_columns_become_stage_changes(converted):
    changes = rows(converted / B1 / "stage_changes.csv")
    # 8 Created (Lead In) + 5 Qualified + 5 Demo + 3 Proposal + 1 Negotiation + 2 Won +
    # 2 Lost = 26 filled cells.
    assert len(changes) == 26
    d101 = sorted(
        (r["changed_at"], r["stage"]) for r in changes if r["opportunity_id"] == "home:D-101"
    )
    assert d101 == [
        ("2026-01-05 12:00:00", "Lead In"),  # the Created column, also created_at
        ("2026-01-08 00:00:00", "Qualified"),
        ("2026-01-12 00:00:00", "Demo"),
        ("2026-01-20 00:00:00", "Proposal"),
        ("2026-02-04 00:00:00", "Won"),
    ]
    # Each derived row is named by its deal's row in the user's file (deals.csv line 2)
    # and the column its date is in, as the file writes it.
    assert sorted(
        (r["_export_file"], r["_export_line"], r["_export_column"])
        for r in changes
        if r["opportunity_id"] == "home:D-101"
    ) == [
        ("deals.csv", "2", "Created"),
        ("deals.csv", "2", "Entered Demo"),
        ("deals.csv", "2", "Entered Proposal"),
        ("deals.csv", "2", "Entered Qualified"),
        ("deals.csv", "2", "Won on"),
    ]
    # D-105 skipped Qualified (empty cell: no stage change).
    assert sorted(r["stage"] for r in changes if r["opportunity_id"] == "home:D-105") == [
        "Demo",
        "Lead In",
        "Proposal",
    ]


def test_other_files_mixed_case_headers_trailing_column_quoted_newline(converted):
    accounts = by_id(converted / B1 / "accounts.csv", "account_id")
    # Headers COMPANY ID / company name / COUNTRY match the mapping's Company ID ...
    assert accounts["home:C-2"]["name"] == "Birch & Sons"
    assert accounts["home:C-2"]["country"] == "AT"
    assert accounts["home:C-2"]["website"] == "birch.example"  # unmapped: kept
    users = rows(converted / B1 / "users.csv")
    # The trailing empty header column is dropped, Phone is kept, Yes → true.
    assert set(users[0]) == {
        "user_id", "name", "email", "team", "manager_id", "region", "is_active",
        "created_at", "updated_at", "phone", "_export_file", "_export_line",
    }  # fmt: skip
    assert (users[0]["is_active"], users[0]["phone"]) == ("true", "+49 30 1234567")
    acts = by_id(converted / B1 / "activities.csv", "activity_id")
    assert acts["home:A-1"]["subject"] == "Intro call, asked for\na demo next week"
    assert acts["home:A-1"]["occurred_at"] == "2026-01-06 10:00:00"
    # Value map: Call → call, E-Mail → email, Lunch → "*" = other; Done x → true.
    assert [acts[f"home:A-{i}"]["activity_type"] for i in range(1, 6)] == [
        "call", "demo", "email", "meeting", "other",
    ]  # fmt: skip
    assert (acts["home:A-1"]["is_completed"], acts["home:A-4"]["is_completed"]) == ("true", "")


def test_incremental_batch_modified_and_deleted_deals_and_notes(converted):
    opps = by_id(converted / B2 / "opportunities.csv", "opportunity_id")
    assert list(opps) == ["home:D-103", "home:D-105", "home:D-109"]
    assert (opps["home:D-103"]["amount"], opps["home:D-103"]["updated_at"]) == (
        "22000",
        "2026-03-06 12:00:00",
    )
    assert opps["home:D-105"]["is_deleted"] == "true"  # Deleted: yes
    assert not (converted / B2 / "users.csv").exists()  # owners.csv is not in batch 2
    notes = json.loads((converted / B2 / "_conversion.json").read_text())["notes"]
    assert notes == [
        "no owners.csv in this batch (entities.users is optional): users from it not updated.",
        "no companies.csv in this batch (entities.accounts is optional): accounts from it "
        "not updated.",
    ]
    assert json.loads((converted / B1 / "_conversion.json").read_text())["notes"] == []


def test_quotas_with_month_only_dates_and_a_constant_currency(converted):
    # targets.csv: "03.2026" read with the file's "%m.%Y" is March's first day; an empty
    # Currency takes the constant USD; owners namespaced like every id.
    got = [(r["owner_id"], r["month"], r["amount"], r["currency"])
           for r in rows(converted / B1 / "quotas.csv")]  # fmt: skip
    assert got == [
        ("home:U1", "2026-01-01", "15000", "USD"),
        ("home:U1", "2026-02-01", "15000", "USD"),
        ("home:U1", "2026-03-01", "20000", "USD"),
        ("home:U2", "2026-01-01", "25000", "USD"),
        ("home:U2", "2026-02-01", "25000", "USD"),
        ("home:U2", "2026-03-01", "25000", "USD"),
    ]
    # Batch 2 revises U1's March (the loader replaces batch 1's row with it).
    assert [
        (r["owner_id"], r["month"], r["amount"]) for r in rows(converted / B2 / "quotas.csv")
    ] == [("home:U1", "2026-03-01", "18000")]


def test_stage_labels_come_from_the_mapping_file_under_the_configs(tmp_path):
    spec = spec_for(FIXTURE / "crm_mapping.yaml", FIXTURE / "exports")
    assert default_stage_labels(spec)["Demo"] == "meeting"
    cfg = PipelineConfig(source_list=(spec,), stage_map=StageMap(labels={"Demo": "proposal"}))
    labels = stage_map(cfg).label_map()
    assert (labels["demo"], labels["lead in"]) == ("proposal", "prospecting")


# --- small hand-made exports ------------------------------------------------------------

DEALS = "Deal ID,Created,Stage,Status,Won on\nD1,05.01.2026,Won,Won,04.02.2026\n"
QUOTAS = """\
  quotas:
    file: targets.csv
    columns: {owner_id: Owner, month: Month, amount: Target}
"""
BASE = """
entities:
  opportunities:
    file: deals.csv
    columns: {opportunity_id: Deal ID, created_at: Created, stage: Stage}
"""


def write(tmp_path: Path, mapping: str, files: dict[str, str]) -> SourceSpec:
    for rel, text in files.items():
        path = tmp_path / "landing" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (tmp_path / "m.yaml").write_text(textwrap.dedent(mapping), encoding="utf-8")
    return spec_for(tmp_path / "m.yaml", tmp_path / "landing")


def error(tmp_path: Path, mapping: str, files: dict[str, str] | None = None) -> str:
    spec = write(tmp_path, mapping, files or {"b1/deals.csv": DEALS})
    with pytest.raises(ConfigError) as exc:
        convert_landing(spec, tmp_path / "out")
    return str(exc.value)


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (
            BASE + "  oportunities: {file: x.csv}\n",
            "entities: unknown entity 'oportunities'; did you mean 'opportunities'?",
        ),
        (
            BASE.replace("stage: Stage", "stage: Stage, ammount: Value"),
            "entities.opportunities.columns: unknown opportunities column 'ammount'; "
            "did you mean 'amount'?",
        ),
        (
            BASE + '    dates: {Created: "%d.%m.%Q"}\n',
            "entities.opportunities.dates.Created: '%d.%m.%Q' is not a strptime format",
        ),
        (
            BASE + '    dates: {Created: "day-month"}\n',
            "'day-month' has no day, month and year (%d, %m, %Y)",
        ),
        (
            BASE + "stage_labels: {Won: closed-won}\n",
            "stage_labels.Won: 'closed-won' is not a canonical stage; did you mean 'closed_won'?",
        ),
        (
            BASE.replace("stage: Stage}", "stage: Stage}\n    colums: {}"),
            "entities.opportunities: unknown setting 'colums'; did you mean 'columns'?",
        ),
        (
            BASE.replace("created_at: Created, ", ""),
            "the required column(s) created_at are not mapped; add them under columns: "
            "(e.g. created_at: <your column>)",
        ),
        (
            BASE + "    status: {column: Status, won: [Won], lost: [yes]}\n",
            "entities.opportunities.status.lost: True was read as a boolean",
        ),
        (
            BASE + "    values: {lead_source: {Web: web}}\n",
            "values.lead_source: maps values of lead_source, which columns: does not map",
        ),
        (
            BASE.replace("stage: Stage}", "stage: Stage, lead_source: Src}")
            + "    values: {lead_source: {Web: web}}\n"
            + "  leads:\n    file: leads.csv\n"
            + "    columns: {lead_id: ID, created_at: Created, channel: Ch}\n"
            + "    values: {channel: {Web: web}}\n",
            "entities.leads.values.channel.Web: unknown channel value 'web'; did you mean "
            "'website'?",
        ),
        (
            BASE + '    dates: {Closed: "%d.%m.%Y"}\n',
            "entities.opportunities.dates: unknown column (dates are keyed by the source "
            "column) 'Closed'",
        ),
        (
            "entities: {users: {file: u.csv, columns: {user_id: ID, name: N}}}\n",
            "needs opportunities",
        ),
        (
            # A month column's format needs no day, but a month and a year.
            BASE + QUOTAS + '    dates: {Month: "%Y"}\n',
            "entities.quotas.dates.Month: '%Y' has no month and year (%m, %Y); write e.g. "
            '"%m.%Y", "%Y-%m" or "%b %Y"',
        ),
        (
            # Only a month column: a date column without a day still fails.
            BASE + '    dates: {Created: "%m.%Y"}\n',
            "entities.opportunities.dates.Created: '%m.%Y' has no day, month and year",
        ),
        (
            BASE + "  quotas: {file: t.csv, columns: {owner_id: Owner, month: Month}}\n",
            "entities.quotas: the required column(s) amount are not mapped",
        ),
    ],
)
def test_mapping_file_mistakes_are_named(tmp_path, mapping, expected):
    message = error(tmp_path, mapping)
    assert message.startswith(f"{tmp_path / 'm.yaml'}: ")
    assert expected in message


def test_missing_source_column_names_the_file_and_lists_its_columns(tmp_path):
    message = error(tmp_path, BASE.replace("Stage}", "Stage, amount: Value}"))
    assert message == (
        f"{tmp_path / 'm.yaml'}: entities.opportunities: column 'Value' is not in "
        f"{tmp_path / 'landing/b1/deals.csv'} (batch b1); its columns are: 'Deal ID', "
        f"'Created', 'Stage', 'Status', 'Won on'. Correct the name, or list it under "
        f"optional_columns: if some exports leave it out."
    )


def test_missing_file_names_the_batch(tmp_path):
    message = error(
        tmp_path, BASE, {"b1/deals.csv": DEALS, "b2/Deals_old.csv": DEALS, "b2/notes.txt": ""}
    )
    assert message == (
        f"{tmp_path / 'm.yaml'}: entities.opportunities.file: batch b2 has no file deals.csv "
        f"(it holds: Deals_old.csv, notes.txt). Correct file:, or add optional: true under "
        f"entities.opportunities if some exports leave it out."
    )


def test_optional_file_and_columns_missing_are_notes(tmp_path):
    spec = write(
        tmp_path,
        BASE.replace("Stage}", "Stage, lost_reason: Lost reason}")
        + "    optional_columns: [lost reason]\n"
        + "  users: {file: owners.csv, optional: true, columns: {user_id: ID, name: Name}}\n",
        {"b1/deals.csv": DEALS},
    )
    notes = convert_landing(spec, tmp_path / "out")
    assert notes == [
        "home b1: deals.csv has no column 'Lost reason' (optional_columns of "
        "entities.opportunities): left empty.",
        "home b1: no owners.csv in this batch (entities.users is optional): users from it "
        "not updated.",
    ]
    (opp,) = rows(tmp_path / "out/b1/opportunities.csv")
    assert opp["lost_reason"] == ""


def test_values_that_do_not_parse_pass_unchanged(tmp_path):
    deals = (
        "Deal ID,Created,Stage,Status,Amount,Won on\n"
        "D1,31.02.2026,Won,Won,12.500,soon\n"  # no 31 February; "soon" is not a date
        "D2,05.01.2026,Open,Frozen,1.250,\n"  # Frozen: in none of won/lost/open
        "D3,2026-01-07T10:00:00+01:00,Open,Open,n/a,\n"  # ISO passes through
    )
    spec = write(
        tmp_path,
        BASE.replace("stage: Stage}", "stage: Stage, amount: Amount}")
        + "    status: {column: Status, won: [Won], lost: [Lost], open: [Open]}\n"
        + "    stage_entered: {columns: {Won on: Won}}\n"
        + 'date_format: "%d.%m.%Y"\nnumber_format: {decimal: ",", thousands: "."}\n',
        {"b1/deals.csv": deals},
    )
    convert_landing(spec, tmp_path / "out")
    opps = by_id(tmp_path / "out/b1/opportunities.csv", "opportunity_id")
    assert [opps[f"home:D{i}"]["created_at"] for i in (1, 2, 3)] == [
        "31.02.2026",
        "2026-01-05 00:00:00",
        "2026-01-07T10:00:00+01:00",
    ]
    # 12.500 with thousands "." = 12500; 1.250 = 1250; n/a passes for the gate.
    assert [opps[f"home:D{i}"]["amount"] for i in (1, 2, 3)] == ["12500", "1250", "n/a"]
    assert (opps["home:D2"]["is_won"], opps["home:D2"]["is_closed"]) == ("Frozen", "Frozen")
    (change,) = rows(tmp_path / "out/b1/stage_changes.csv")
    assert (change["stage"], change["changed_at"]) == ("Won", "soon")


def test_the_gate_quarantines_an_unparseable_date_with_the_reason(tmp_path):
    deals = "Deal ID,Created,Stage\nD1,05.01.2026,Signed\nD2,31.02.2026,Signed\n"
    spec = write(tmp_path, BASE + "stage_labels: {Signed: closed_won}\n", {"b1/deals.csv": deals})
    convert_landing(spec, tmp_path / "out")
    con = connect(tmp_path / "w.duckdb")
    create_raw_tables(con)
    stages = stage_map(PipelineConfig(source_list=(spec,)))  # the mapping's labels
    ingest(con, tmp_path / "out", stage_map=stages, source="home", quarantine_max_share=0.5)
    assert con.execute("SELECT opportunity_id FROM raw.opportunities").fetchall() == [("home:D1",)]
    ((raw_row, rules),) = con.execute(
        "SELECT raw_row, failed_rules FROM quality.quarantine"
    ).fetchall()
    assert json.loads(raw_row)["created_at"] == "31.02.2026"
    assert "opportunities.created_at_parses" in rules
    con.close()


def test_quota_months_in_any_format_and_a_mid_month_date_quarantined(tmp_path):
    targets = (
        "Owner,Month,Target\n"
        "U1,Mar 2026,100\n"  # "%b %Y": 2026-03-01
        "U1,2026-04,100\n"  # an ISO year-month, without any format: 2026-04-01
        "U1,2026-05-01,100\n"  # ISO date: as it is
        "U1,15.06.2026,100\n"  # "%d.%m.%Y": 2026-06-15, not moved to the 1st
        "U1,July,100\n"  # no format reads it: passes unchanged
    )
    spec = write(
        tmp_path,
        BASE + QUOTAS + '    dates: {Month: ["%b %Y", "%d.%m.%Y"]}\n',
        {"b1/deals.csv": DEALS, "b1/targets.csv": targets},
    )
    convert_landing(spec, tmp_path / "out")
    months = [r["month"] for r in rows(tmp_path / "out/b1/quotas.csv")]
    assert months == ["2026-03-01", "2026-04-01", "2026-05-01", "2026-06-15", "July"]
    # The gate: the 15th fails quotas.month_first_day, July quotas.month_parses (and, a
    # required month, month_not_null); both are quarantined with the reasons, the three
    # months load (owner U1 unknown: a warning).
    con = connect(tmp_path / "w.duckdb")
    create_raw_tables(con)
    stages = StageMap(labels={"Won": "closed_won"})
    ingest(con, tmp_path / "out", stage_map=stages, source="home", quarantine_max_share=1.0)
    assert con.execute("SELECT month FROM raw.quotas ORDER BY 1").fetchall() == [
        (date(2026, 3, 1),), (date(2026, 4, 1),), (date(2026, 5, 1),)
    ]  # fmt: skip
    assert con.execute(
        "SELECT source_row, raw_row->>'month', failed_rules FROM quality.quarantine "
        "WHERE entity = 'quotas' ORDER BY 1"
    ).fetchall() == [
        (4, "2026-06-15", '["quotas.month_first_day"]'),
        (5, "July", '["quotas.month_not_null", "quotas.month_parses"]'),
    ]
    con.close()


def test_glob_several_files_zone_formats_and_a_semicolon_delimiter(tmp_path):
    spec = write(
        tmp_path,
        BASE
        + "  activities:\n"
        + "    - {file: 'calls_*.csv', columns: {activity_id: ID, occurred_at: At},"
        + " constants: {activity_type: call}, dates: {At: '%d/%m/%Y %H:%M %z'}}\n"
        + "    - {file: mails.CSV, columns: {activity_id: ID, occurred_at: At, activity_type: T},"
        + " values: {activity_type: {Mail: email}}}\n"
        + "delimiter: ';'\n",
        {
            "b1/deals.csv": "Deal ID;Created;Stage\nD1;05.01.2026;won\n",
            "b1/CALLS_jan.csv": "ID;At;Note\nc1;05/01/2026 10:00 +0100;x\n",
            "b1/calls_feb.csv": "ID;At\nc2;05/02/2026 10:00 +0000\n",
            "b1/mails.csv": "ID;At;T\nm1;2026-01-09 08:00;Mail\n",
        },
    )
    convert_landing(spec, tmp_path / "out")
    acts = by_id(tmp_path / "out/b1/activities.csv", "activity_id")
    assert {k: (v["activity_type"], v["occurred_at"]) for k, v in acts.items()} == {
        "home:c1": ("call", "2026-01-05 09:00:00+00:00"),  # 10:00 at +01:00 = 09:00 UTC
        "home:c2": ("call", "2026-02-05 10:00:00+00:00"),
        "home:m1": ("email", "2026-01-09 08:00"),  # ISO without a zone: unchanged
    }
    assert acts["home:c1"]["note"] == "x" and acts["home:c2"]["note"] == ""


def test_full_export_in_the_mapping_marks_missing_records_deleted(tmp_path):
    header = "Deal ID,Created,Stage,Changed\n"
    spec = write(
        tmp_path,
        BASE.replace("Stage}", "Stage, updated_at: Changed}") + "full_export: true\n",
        {
            "b1/deals.csv": header + "D1,05.01.2026,won,05.01.2026\nD2,06.01.2026,won,06.01.2026\n",
            "b2/deals.csv": header + "D1,05.01.2026,won,07.01.2026\n",
        },
    )
    notes = convert_landing(spec, tmp_path / "out")
    assert notes == [
        "home b2: full export: 1 opportunities of batch b1 missing from this one, marked deleted."
    ]
    opps = by_id(tmp_path / "out/b2/opportunities.csv", "opportunity_id")
    # D2 carried over with its own updated_at: the later batch wins the tie.
    assert {k: (v["is_deleted"], v["updated_at"]) for k, v in opps.items()} == {
        "home:D1": ("", "2026-01-07 00:00:00"),
        "home:D2": ("true", "2026-01-06 00:00:00"),
    }
    # With the config's full_export the loader does it instead (against all it loaded).
    shutil.rmtree(tmp_path / "out")
    spec_cfg = spec_for(spec.mapping, spec.landing_dir, full_export=True)
    assert convert_landing(spec_cfg, tmp_path / "out") == []


def test_load_mapping_of_the_fixture():
    mp = load_mapping(FIXTURE / "crm_mapping.yaml")
    assert [e.entity for e in mp.entities] == [
        "opportunities", "users", "accounts", "activities", "quotas"
    ]  # fmt: skip
    assert mp.date_order == "dmy"
