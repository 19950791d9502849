"""The Salesforce adapter alone (``convert_landing``, no loader, no dbt): the export's
quirks, the mapping of each object, and what it notes when files or fields are missing.

Fixture tests/fixtures/salesforce (two weekly exports, hand-written in Data Export format):
2026-03-07T0600 holds every object; 2026-03-14T0600 is incremental (Opportunity,
OpportunityHistory, Task, ForecastingQuota only, file names in lower case for two of them).
Every expected value below is read off the fixture files by hand.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from ingestion.config import SourceSpec
from ingestion.sources import NOTES_FILE, convert_landing, default_stage_labels
from ingestion.sources.salesforce import DEFAULT_STAGE_LABELS

FIXTURE = Path(__file__).parents[1] / "fixtures" / "salesforce"
B1, B2 = "2026-03-07T0600", "2026-03-14T0600"
NS = "salesforce:"


def rows(out: Path, batch: str, entity: str) -> list[dict[str, str]]:
    """A converted canonical CSV as dicts (csv keeps quoted newlines in one value)."""
    with (out / batch / f"{entity}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def by(records: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    return {r[key].removeprefix(NS): r for r in records}


def notes(out: Path, batch: str) -> list[str]:
    return json.loads((out / batch / NOTES_FILE).read_text(encoding="utf-8"))["notes"]


def convert(landing: Path, out: Path, date_order: str = "mdy") -> list[str]:
    spec = SourceSpec("salesforce", "salesforce", landing, date_order=date_order)
    return convert_landing(spec, out)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sf")
    shutil.copytree(FIXTURE, tmp / "landing")
    convert(tmp / "landing", tmp / "converted")
    return tmp / "converted"


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


# --- the fixture's quirks ------------------------------------------------------------


def test_bom_file_is_read_with_its_first_header(out):
    # User.csv starts with a UTF-8 BOM; its first column "Id" still maps to user_id, and
    # the compound name comes from FirstName + LastName (the file has no Name column).
    users = by(rows(out, B1, "users"), "user_id")
    assert set(users) == {"0058d000001DiazAAA", "0058d000001AmesAAA", "0058d000001ByrnAAA"}
    assert users["0058d000001AmesAAA"]["name"] == "Alice Ames"
    assert users["0058d000001AmesAAA"]["team"] == "Sales"
    assert users["0058d000001AmesAAA"]["manager_id"] == NS + "0058d000001DiazAAA"
    assert users["0058d000001ByrnAAA"]["is_active"] == "true"  # exported as 1
    assert users["0058d000001DiazAAA"]["region"] == ""  # no role name in the export


def test_mixed_case_headers_and_quoted_newline(out):
    # Account.csv: "ID", "NAME", "billingcountry", "industry", "lastModifiedDate"; Acme's
    # BillingStreet is quoted and holds a comma and a newline.
    accounts = by(rows(out, B1, "accounts"), "account_id")
    acme = accounts["0018d000001AcmeAAA"]
    assert (acme["name"], acme["country"], acme["industry"]) == (
        "Acme Corp", "United States", "Manufacturing"
    )  # fmt: skip
    assert (acme["employee_count"], acme["updated_at"]) == ("250", "2026-01-04T10:00:00.000Z")
    assert acme["billingstreet"] == "100 Main St,\nSuite 5"
    assert accounts["0018d000001InitAAA"]["annual_revenue"] == ""  # empty stays empty


def test_trailing_empty_column_dropped_and_extras_kept(out):
    # Opportunity.csv (batch 1) ends every line with a comma: the unnamed column goes,
    # the unmapped fields (custom Region__c included) stay as attributes.
    header = list(rows(out, B1, "opportunities")[0])
    assert not [h for h in header if h.startswith("column")]
    assert {"region__c", "type", "forecastcategory", "expectedrevenue", "fiscalquarter"} <= set(
        header
    )
    opps = by(rows(out, B1, "opportunities"), "opportunity_id")
    assert opps["0068d000001Opp2AAA"]["region__c"] == "EMEA"


def test_rows_carry_their_export_file_and_line(out):
    # Every canonical row names the export row it came from: Opp5 is line 6 of
    # Opportunity.csv (the header is line 1). Account.csv has a value spanning two lines,
    # so its rows give the record number and say the line assumes no multi-line values.
    opps = by(rows(out, B1, "opportunities"), "opportunity_id")
    opp5 = opps["0068d000001Opp5AAA"]
    assert (opp5["_export_file"], opp5["_export_line"]) == ("Opportunity.csv", "6")
    assert "_export_record" not in opp5
    accounts = rows(out, B1, "accounts")
    assert {a["_export_file"] for a in accounts} == {"Account.csv"}
    lines = sorted(a["_export_line"] for a in accounts)
    assert lines[0] == "record 1 (line 2 without multi-line values)"


def test_opportunity_fields(out):
    opps = by(rows(out, B1, "opportunities"), "opportunity_id")
    o3 = opps["0068d000001Opp3AAA"]
    # Probability 20 (percent) → 20 / 100 = 0.2.
    assert o3["probability"] == "0.2"
    assert (o3["stage"], o3["amount"], o3["currency"], o3["close_date"]) == (
        "Needs Analysis", "8000.00", "USD", "2026-03-31"
    )  # fmt: skip
    assert (o3["is_closed"], o3["is_won"], o3["is_deleted"]) == ("false", "false", "false")
    assert o3["owner_id"] == NS + "0058d000001ByrnAAA"
    assert o3["account_id"] == NS + "0018d000001AcmeAAA"
    assert o3["lead_source"] == "Phone Inquiry"
    # Report-style CreatedDate "02/02/26 10:00 AM" (mdy) → 2026-02-02 10:00.
    assert opps["0068d000001Opp4AAA"]["created_at"] == "2026-02-02 10:00:00"
    # "+0000" gets its colon: 2026-01-10T08:00:00.000+00:00.
    assert opps["0068d000001Opp2AAA"]["created_at"] == "2026-01-10T08:00:00.000+00:00"
    assert opps["0068d000001Opp2AAA"]["currency"] == "EUR"


def test_incremental_batch_modifies_and_deletes(out):
    opps = by(rows(out, B2, "opportunities"), "opportunity_id")
    assert set(opps) == {f"0068d000001Opp{i}AAA" for i in (3, 6, 7, 8)}
    o3 = opps["0068d000001Opp3AAA"]
    assert (o3["stage"], o3["amount"], o3["updated_at"]) == (
        "Closed Lost", "7500.00", "2026-03-05T12:00:00.000Z"
    )  # fmt: skip
    assert o3["description"] == "Lost to competitor, on price\nBudget moved to Q3"
    assert opps["0068d000001Opp6AAA"]["is_deleted"] == "true"


def test_stage_entries_only(out):
    changes = rows(out, B1, "stage_changes")
    # 24 history rows; O1's H0005 (02-05, amount 10000 → 12000, still Proposal/Price
    # Quote) and O5's H0021 (close date moved, still Prospecting) are not stage entries:
    # 24 - 2 = 22. H0005 sits before H0004 in the file: order is by CreatedDate.
    assert len(changes) == 22
    ids = {r["change_id"].removeprefix(NS) for r in changes}
    assert "0088d00000H0005AAA" not in ids and "0088d00000H0021AAA" not in ids
    h4 = by(changes, "change_id")["0088d00000H0004AAA"]
    assert (h4["stage"], h4["changed_at"], h4["amount"]) == (
        "Proposal/Price Quote", "2026-02-02T10:00:00.000Z", "10000.00"
    )  # fmt: skip
    assert h4["opportunity_id"] == NS + "0068d000001Opp1AAA"
    # O2's Id. Decision Makers follows Value Proposition: both map to proposal, but they
    # are different Salesforce stages, so both rows stay (the marts collapse them).
    h10 = by(changes, "change_id")["0088d00000H0010AAA"]
    assert h10["changed_by"] == NS + "0058d000001DiazAAA"
    assert h10["changed_at"] == "2026-02-01T08:00:00.000+00:00"
    # YYYY-MM-DD HH:MM:SS passes as it is.
    assert by(changes, "change_id")["0088d00000H0017AAA"]["changed_at"] == "2026-02-02 10:00:00"


def test_incremental_history_uses_earlier_batch_for_context(out):
    changes = by(rows(out, B2, "stage_changes"), "change_id")
    # Batch 2 has 7 rows. H0025 (O3, Needs Analysis, amount 8000 → 7500) is O3's first row
    # in this batch, but its previous row (H0016, batch 1) is Needs Analysis too: not an
    # entry. H0023/H0024 (O6, re-exported as deleted) are O6's first entries: kept (the
    # loader deduplicates them). 7 - 1 = 6.
    assert set(changes) == {
        "0088d00000H0026AAA", "0088d00000H0027AAA", "0088d00000H0028AAA",
        "0088d00000H0029AAA", "0088d00000H0023AAA", "0088d00000H0024AAA",
    }  # fmt: skip
    assert changes["0088d00000H0023AAA"]["isdeleted"] == "true"


def test_activities(out):
    acts = by(rows(out, B1, "activities"), "activity_id")
    t1, t2, t3 = (acts[f"00T8d000001Tsk{i}AAA"] for i in (1, 2, 3))
    # TaskSubtype Call / Email; T3 is a generic Task whose Type "Send Quote" → proposal.
    assert [t["activity_type"] for t in (t1, t2, t3)] == ["call", "email", "proposal"]
    # Tasks: ActivityDate, else CreatedDate (T2 has no ActivityDate).
    assert (t1["occurred_at"], t2["occurred_at"]) == ("2026-01-20", "2026-01-12T11:00:00.000Z")
    assert (t1["is_completed"], t3["is_completed"]) == ("true", "false")
    # WhatId 006… → opportunity, WhoId 003… → contact, 00Q… → lead.
    assert t1["opportunity_id"] == NS + "0068d000001Opp1AAA"
    assert t1["contact_id"] == NS + "0038d000001Con1AAA"
    assert (t3["lead_id"], t3["opportunity_id"], t3["contact_id"]) == (
        NS + "00Q8d000001Led1AAA", "", ""
    )  # fmt: skip
    e1, e2, e3 = (acts[f"00U8d000001Evt{i}AAA"] for i in (1, 2, 3))
    # Events: Type Demo → demo, Meeting → meeting, no Type → meeting.
    assert [e["activity_type"] for e in (e1, e2, e3)] == ["demo", "meeting", "meeting"]
    assert e1["occurred_at"] == "2026-01-26T15:00:00.000Z"
    assert e1["account_id"] == NS + "0018d000001GlbxAAA"  # from AccountId
    # Batch 2: T5 is deleted (IsDeleted true) and left out.
    assert set(by(rows(out, B2, "activities"), "activity_id")) == {"00T8d000001Tsk4AAA"}


def test_leads(out):
    leads = by(rows(out, B1, "leads"), "lead_id")
    got = {k: (v["channel"], v["status"]) for k, v in leads.items()}
    assert got == {
        "00Q8d000001Led1AAA": ("website", "new"),  # Web, Open - Not Contacted
        "00Q8d000001Led2AAA": ("partner", "converted"),  # Partner Referral, Closed - Converted
        "00Q8d000001Led3AAA": ("paid", "disqualified"),  # Purchased List, Closed - Not Conv.
        "00Q8d000001Led4AAA": ("other", "working"),  # Phone Inquiry, Working - Contacted
        "00Q8d000001Led5AAA": ("email", "converted"),  # Email (canonical name)
        "00Q8d000001Led6AAA": ("other", "working"),  # LinkedIn Ads: not a known source
    }
    assert leads["00Q8d000001Led6AAA"]["leadsource"] == "LinkedIn Ads"
    # Converted 3 days after creation: the ConvertedDate as it is.
    l2 = leads["00Q8d000001Led2AAA"]
    assert (l2["converted_at"], l2["converted_opportunity_id"]) == (
        "2026-02-15", NS + "0068d000001Opp5AAA"
    )  # fmt: skip
    # Converted the day it was created (2026-03-01T13:20Z): midnight would be before
    # creation, so the creation time stands for it.
    assert leads["00Q8d000001Led5AAA"]["converted_at"] == "2026-03-01T13:20:00.000Z"


def test_dated_conversion_rates_inverted(out):
    rates = {
        (r["currency"], r["rate_date"]): r["rate_to_reporting"] for r in rows(out, B1, "fx_rates")
    }
    # ConversionRate = currency units per USD; rate_to_reporting = 1 / rate:
    # 1 / 0.8 = 1.25, 1 / 0.9 = 1.111…, 1 / 0.75 = 1.333…
    assert float(rates[("EUR", "2026-02-15")]) == 1.25
    assert float(rates[("EUR", "2026-01-01")]) == pytest.approx(1.1111111111, rel=1e-9)
    assert float(rates[("GBP", "2026-01-01")]) == pytest.approx(1.3333333333, rel=1e-9)


def test_notes_name_what_is_missing(out):
    assert notes(out, B1) == [
        "User.csv has no UserRole.Name or UserRoleName or UserRole column: left empty",
        "Lead.csv: LeadSource LinkedIn Ads taken as channel other",
        "ForecastingQuota.csv: 1 quantity quota(s) (IsQuantity: units, not money) set aside",
        "ForecastingQuota.csv: 1 product-family quota(s) (ProductFamily set: a share of the "
        "owner's quota) set aside",
    ]
    n2 = notes(out, B2)
    for missing in ("Account", "User", "Contact", "Lead", "Event"):
        assert any(n.startswith(f"no {missing} file") for n in n2), missing
    assert any(n.startswith("no DatedConversionRate or CurrencyType file") for n in n2)
    assert not any("Task" in n or "Opportunity" in n for n in n2)


def test_quotas(out):
    def quotas(batch: str) -> dict[tuple[str, str], tuple[str, str, str]]:
        return {
            (r["owner_id"].removeprefix(NS), r["month"]): (r["amount"], r["currency"], r["id"])
            for r in rows(out, batch, "quotas")
        }

    ames, byrne = "0058d000001AmesAAA", "0058d000001ByrnAAA"
    # Batch 1: 7 rows. Quo6 is a quantity quota (IsQuantity true, 12 units) and Quo7 a
    # product-family quota (Services): set aside, each noted (test_notes_name_what_is_missing).
    # 7 - 2 = 5 money quotas; the owner namespaced like every user id.
    assert quotas(B1) == {
        (ames, "2026-01-01"): ("20000.00", "USD", "0J98d000000Quo1AAA"),
        (ames, "2026-02-01"): ("25000.00", "USD", "0J98d000000Quo2AAA"),
        (ames, "2026-03-01"): ("25000.00", "USD", "0J98d000000Quo3AAA"),
        (byrne, "2026-02-01"): ("15000.00", "EUR", "0J98d000000Quo4AAA"),
        (byrne, "2026-03-01"): ("15000.00", "EUR", "0J98d000000Quo5AAA"),
    }
    assert {r["owner_id"][: len(NS)] for r in rows(out, B1, "quotas")} == {NS}
    # Batch 2: Ames' March again (unchanged: the loader counts it a duplicate) and Byrne's
    # March revised to 18000 (it replaces batch 1's 15000 in the loader).
    assert quotas(B2) == {
        (ames, "2026-03-01"): ("25000.00", "USD", "0J98d000000Quo3AAA"),
        (byrne, "2026-03-01"): ("18000.00", "EUR", "0J98d000000Quo5AAA"),
    }


def test_quota_months_periods_and_forecast_types(tmp_path):
    landing = tmp_path / "landing"
    header = "Id,QuotaOwnerId,StartDate,QuotaAmount,QuotaQuantity,ForecastingTypeId,PeriodId\n"
    write(
        landing / "b1",
        "ForecastingQuota.csv",
        header
        # A custom fiscal month starting 01-26: taken as January, noted.
        + "0J91,005A,2026-01-26,100,,0DbR,026M\n"
        # Report style (mdy) 02/01/2026: 2026-02-01.
        + "0J92,005A,02/01/2026,200,,0DbR,026M\n"
        # No IsQuantity column: a QuotaQuantity without a QuotaAmount is a quantity quota.
        + "0J93,005A,2026-03-01,,7,0DbQ,026M\n"
        # A quarterly period (Period.Type Quarter): set aside.
        + "0J94,005B,2026-01-01,900,,0DbR,026Q\n"
        # Another forecast type (0DbS) for 005B's March: kept, noted.
        + "0J95,005B,2026-03-01,300,,0DbS,026M\n"
        # Not a date: passes unchanged for the gate to name.
        + "0J96,005B,soon,300,,0DbR,026M\n",
    )
    write(
        landing / "b1",
        "Period.csv",
        "Id,Type,StartDate,EndDate\n026M,Month,2026-01-01,2026-01-31\n"
        "026Q,Quarter,2026-01-01,2026-03-31\n",
    )
    convert(landing, tmp_path / "out")
    got = [
        (r["id"], r["month"], r["amount"], r["startdate"])
        for r in rows(tmp_path / "out", "b1", "quotas")
    ]
    assert got == [
        ("0J91", "2026-01-01", "100", "2026-01-26"),
        ("0J92", "2026-02-01", "200", "02/01/2026"),
        ("0J95", "2026-03-01", "300", "2026-03-01"),
        ("0J96", "soon", "300", "soon"),
    ]
    assert notes(tmp_path / "out", "b1")[-5:] == [
        "ForecastingQuota.csv: no CurrencyIsoCode, quotas taken as reporting currency",
        "ForecastingQuota.csv: 1 quantity quota(s) (IsQuantity: units, not money) set aside",
        "ForecastingQuota.csv: 1 quota(s) of a period other than a month (Period.Type) set aside",
        "ForecastingQuota.csv: 1 quota(s) with a StartDate after the 1st (a custom fiscal "
        "period?) taken as the quota of the month the period starts in",
        "ForecastingQuota.csv: quotas of 2 forecast types (ForecastingTypeId): an owner with "
        "different amounts for one month under two types has both quarantined "
        "(quotas.key_not_conflicting); export one forecast type's quotas",
    ]


def test_quota_file_without_owner_is_set_aside_not_the_batch(tmp_path):
    write(
        tmp_path / "landing" / "b1",
        "ForecastingQuota.csv",
        "Id,StartDate,QuotaAmount,CurrencyIsoCode\n0J91,2026-01-01,100,USD\n",
    )
    convert(tmp_path / "landing", tmp_path / "out")
    # Quotas are optional: not written (the loader would reject the whole batch for the
    # missing owner_id), the row set aside in the reconciliation, both said in notes.
    assert not (tmp_path / "out" / "b1" / "quotas.csv").exists()
    got = notes(tmp_path / "out", "b1")
    assert (
        "ForecastingQuota.csv has no QuotaOwnerId (for owner_id) column, which the quotas "
        "contract requires: its rows are set aside"
    ) in got
    assert got[-1].startswith("ForecastingQuota.csv: no quotas from this batch")


def test_default_stage_labels_cover_the_standard_picklist():
    spec = SourceSpec("salesforce", "salesforce", Path("."))
    assert default_stage_labels(spec) == DEFAULT_STAGE_LABELS
    assert DEFAULT_STAGE_LABELS["Id. Decision Makers"] == "proposal"
    assert DEFAULT_STAGE_LABELS["Needs Analysis"] == "meeting"
    assert len(DEFAULT_STAGE_LABELS) == 10


# --- missing files and fields; other export variants ---------------------------------


def test_missing_optional_fields_are_noted(tmp_path):
    # A single-currency org's Data Loader export without Probability and LeadSource.
    write(
        tmp_path / "landing" / "b1",
        "Opportunity.csv",
        "Id,Name,StageName,Amount,CloseDate,CreatedDate,LastModifiedDate,IsDeleted\n"
        "006A,Deal A,Prospecting,100,2026-03-01,2026-01-01T00:00:00.000Z,"
        "2026-01-02T00:00:00.000Z,0\n",
    )
    convert(tmp_path / "landing", tmp_path / "out")
    got = notes(tmp_path / "out", "b1")
    assert "Opportunity.csv: no CurrencyIsoCode, amounts taken as reporting currency" in got
    assert (
        "Opportunity.csv has no OwnerId, AccountId, Probability, LeadSource, IsClosed, IsWon "
        "column: left empty"
    ) in got
    assert any(n.startswith("no OpportunityHistory file") for n in got)
    assert any(n.startswith("no Task file") for n in got)
    assert (
        "no ForecastingQuota file: no quotas in this batch (quota attainment needs quotas "
        "from some batch)"
    ) in got
    (opp,) = rows(tmp_path / "out", "b1", "opportunities")
    assert "currency" not in opp
    assert (opp["probability"], opp["owner_id"], opp["is_deleted"]) == ("", "", "false")
    assert sorted(p.name for p in (tmp_path / "out" / "b1").glob("*.csv")) == ["opportunities.csv"]


def test_missing_required_field_is_left_out_for_the_loader_to_name(tmp_path):
    write(
        tmp_path / "landing" / "b1",
        "Opportunity.csv",
        "Id,Name,CreatedDate\n006A,Deal A,2026-01-01T00:00:00.000Z\n",
    )
    convert(tmp_path / "landing", tmp_path / "out")
    (opp,) = rows(tmp_path / "out", "b1", "opportunities")
    assert "stage" not in opp  # the loader rejects the file: required column stage missing
    assert (
        "Opportunity.csv has no StageName (for stage) column, which the opportunities "
        "contract requires: the file cannot be loaded; export it with that field"
    ) in notes(tmp_path / "out", "b1")


def test_currency_type_without_dated_rates(tmp_path):
    write(
        tmp_path / "landing" / "b1",
        "CurrencyType.csv",
        "Id,IsoCode,ConversionRate,DecimalPlaces,IsActive,IsCorporate\n"
        "02B1,USD,1,2,true,true\n02B2,GBP,0.8,2,true,false\n02B3,JPY,0,0,true,false\n",
    )
    convert(tmp_path / "landing", tmp_path / "out")
    got = {r["currency"]: (r["rate_date"], r["rate_to_reporting"]) for r in rows(
        tmp_path / "out", "b1", "fx_rates"
    )}  # fmt: skip
    # One rate per currency since 1900-01-01: 1 / 1 = 1, 1 / 0.8 = 1.25; a zero rate
    # passes as 0 for the gate to reject (never a silent null or infinity).
    assert got == {
        "USD": ("1900-01-01", "1.0"),
        "GBP": ("1900-01-01", "1.25"),
        "JPY": ("1900-01-01", "0"),
    }


def test_day_first_dates_and_unparseable_values(tmp_path):
    write(
        tmp_path / "landing" / "b1",
        "Opportunity.csv",
        "Id,StageName,CreatedDate,CloseDate,Probability\n"
        "006A,Prospecting,03/02/26 14:05,28/02/2026,abc\n"
        "006B,Prospecting,31/13/26 10:00,not a date,\n",
    )
    convert(tmp_path / "landing", tmp_path / "out", date_order="dmy")
    a, b = rows(tmp_path / "out", "b1", "opportunities")
    # dmy: 03/02/26 is 3 February 2026; 28/02/2026 is 28 February.
    assert (a["created_at"], a["close_date"]) == ("2026-02-03 14:05:00", "2026-02-28")
    # Values that fit no format reach the gate exactly as exported.
    assert a["probability"] == "abc"
    assert (b["created_at"], b["close_date"]) == ("31/13/26 10:00", "not a date")


def test_user_name_and_role(tmp_path):
    write(
        tmp_path / "landing" / "b1",
        "User.csv",
        "Id,Name,FirstName,LastName,UserRole.Name,IsActive\n"
        "005A,Ana Diaz,Ana,Diaz,EMEA Sales,true\n005B,,Bo,Lee,,false\n",
    )
    convert(tmp_path / "landing", tmp_path / "out")
    a, b = rows(tmp_path / "out", "b1", "users")
    assert (a["name"], a["region"]) == ("Ana Diaz", "EMEA Sales")
    assert (b["name"], b["region"], b["is_active"]) == ("Bo Lee", "", "false")


def test_unknown_activity_types_and_history_without_context(tmp_path):
    landing = tmp_path / "landing"
    write(
        landing / "b1",
        "Task.csv",
        "Id,WhatId,WhoId,Subject,Type,TaskSubtype,Status,CreatedDate\n"
        "00T1,001X,,Kickoff,Kickoff,Task,In Progress,2026-01-05T10:00:00.000Z\n"
        "00T2,,,Lunch,Lunch,Task,Completed,2026-01-06T10:00:00.000Z\n",
    )
    write(
        landing / "b1",
        "Event.csv",
        "Id,WhatId,Subject,Type,ActivityDate,IsAllDayEvent,CreatedDate\n"
        "00U1,006A,Offsite,Follow-up,2026-01-09,true,2026-01-02T10:00:00.000Z\n",
    )
    # Two history rows at the same second: the Id orders them.
    write(
        landing / "b1",
        "OpportunityHistory.csv",
        "Id,OpportunityId,StageName,CreatedDate\n"
        "008B,006A,Qualification,2026-01-01T00:00:00.000Z\n"
        "008A,006A,Prospecting,2026-01-01T00:00:00.000Z\n"
        "008C,006A,qualification ,2026-01-03T00:00:00.000Z\n",
    )
    convert(landing, tmp_path / "out")
    acts = by(rows(tmp_path / "out", "b1", "activities"), "activity_id")
    # Kickoff → onboarding; Lunch is unknown → other; WhatId 001… → account.
    assert (acts["00T1"]["activity_type"], acts["00T1"]["account_id"]) == (
        "onboarding", NS + "001X"
    )  # fmt: skip
    assert acts["00T2"]["activity_type"] == "other"
    # Tasks without IsClosed: Status Completed decides.
    assert (acts["00T1"]["is_completed"], acts["00T2"]["is_completed"]) == ("false", "true")
    # An all-day event has only ActivityDate; its Type Follow-up → follow_up.
    assert (acts["00U1"]["activity_type"], acts["00U1"]["occurred_at"]) == (
        "follow_up", "2026-01-09"
    )  # fmt: skip
    assert "Task.csv: Type Lunch taken as other" in notes(tmp_path / "out", "b1")
    # 008A Prospecting, 008B Qualification; 008C is Qualification again (case and spaces
    # aside): not an entry.
    changes = rows(tmp_path / "out", "b1", "stage_changes")
    assert sorted(r["change_id"] for r in changes) == [NS + "008A", NS + "008B"]
