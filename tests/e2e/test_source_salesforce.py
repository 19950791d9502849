"""End to end on Salesforce exports: `crm-pipeline run --source salesforce` over the
hand-written fixture tests/fixtures/salesforce, with known answers computed by hand.

Two weekly exports, as_of = 2026-03-15T00:00:00Z, reporting currency USD. Stage labels are
Salesforce's (Needs Analysis = meeting, Value Proposition / Id. Decision Makers /
Perception Analysis / Proposal/Price Quote = proposal, Negotiation/Review = negotiation).
Ids below drop the common part: Opp3 is salesforce:0068d000001Opp3AAA.

| opp | owner | created (UTC) | amount | stage entries (OpportunityHistory) | at as_of |
| --- | --- | --- | --- | --- | --- |
| Opp1 | Ames | 01-05 09:00 | 12000 USD | prospecting 01-05, qualification 01-12, meeting 01-20, proposal 02-02 (02-05 amount-only row dropped), negotiation 02-10, closed_won 02-20 15:00 | won |
| Opp2 | Ames | 01-10 08:00 (+0000) | 10000 EUR | prospecting 01-10, proposal 01-25 and 02-01 (two SF labels, one interval), closed_won 02-25 08:00 | won |
| Opp3 | Byrne | 01-15 14:30 | 8000 → 7500 (batch 2) | prospecting, qualification 01-22, meeting 02-03, qualification 02-10 (regression), meeting 02-20, closed_lost 03-05 12:00 (batch 2) | lost |
| Opp4 | Byrne | 02/02/26 10:00 AM (report style) | 5000 USD | prospecting 02-02 10:00, qualification 02-09, closed_lost 02-16 10:00 | lost |
| Opp5 | Ames | 02-15 09:00 | 3000 USD | prospecting 02-15, qualification 03-02 | open |
| Opp6 | Ames | 02-20 11:00 | 7000 USD | prospecting, closed_won 03-03 16:00; IsDeleted in batch 2 | deleted |
| Opp7 | Byrne | 03-02 09:00 | 20000 USD | prospecting, negotiation 03-09, closed_won 03-12 10:00 | won |
| Opp8 | Ames | 03-10 00:00 | 4000 USD | none; Perception Analysis (proposal) | open |

EUR: DatedConversionRate 0.9 from 01-01, 0.8 from 02-15 (EUR per USD); Opp2's close date
02-25 takes the 02-15 rate: 10000 × (1 / 0.8) = 12500 USD.

Quotas (ForecastingQuota): batch 1 has Ames 20000 / 25000 / 25000 USD for January, February,
March and Byrne 15000 / 15000 EUR for February, March, plus a quantity quota (Quo6) and a
product-family quota (Quo7), both set aside by the adapter. Batch 2 re-exports Ames' March
unchanged and revises Byrne's March to 18000 EUR.
"""  # noqa: E501

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from pipeline_helpers import query, run_pipeline

FIXTURE = Path(__file__).parents[1] / "fixtures" / "salesforce"
AS_OF = "2026-03-15T00:00:00Z"
NS = "salesforce:"

pytestmark = pytest.mark.slow


def opp(n: int) -> str:
    return f"{NS}0068d000001Opp{n}AAA"


def ts(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("salesforce")
    shutil.copytree(FIXTURE, tmp / "landing")
    warehouse = tmp / "warehouse.duckdb"
    code = run_pipeline(tmp / "landing", warehouse, AS_OF, source="salesforce")
    assert code == 0
    return warehouse


def test_raw_rows(built):
    # Batch 2 supersedes Opp3 (later LastModifiedDate) and Opp6 (now deleted).
    assert query(
        built,
        "select opportunity_id, stage, amount, is_deleted, _batch_id, _source "
        "from raw.opportunities where opportunity_id in "
        f"('{opp(3)}', '{opp(6)}') order by 1",
    ) == [
        (opp(3), "Closed Lost", 7500.0, False, "2026-03-14T0600", "salesforce"),
        (opp(6), "Closed Won", 7000.0, True, "2026-03-14T0600", "salesforce"),
    ]
    assert query(built, "select count(*) from raw.opportunities") == [(8,)]
    # Probability 20 % → 0.2 (batch 1's Opp5: Qualification, 10 % → 0.1).
    assert query(
        built, f"select probability from raw.opportunities where opportunity_id = '{opp(5)}'"
    ) == [(0.1,)]
    # Custom field and other unmapped fields kept as attributes; the quoted newline too.
    assert query(
        built,
        "select json_extract_string(_attributes, '$.region__c'), "
        "json_extract_string(_attributes, '$.description') "
        f"from raw.opportunities where opportunity_id = '{opp(3)}'",
    ) == [("AMER", "Lost to competitor, on price\nBudget moved to Q3")]
    # Stage entries: 22 in batch 1 (24 rows less 2 amount/close-date-only rows) + 6 in
    # batch 2 (7 rows less Opp3's amount-only row), of which Opp6's 2 re-exported rows are
    # duplicates: 22 + 6 - 2 = 26.
    assert query(built, "select count(*) from raw.stage_changes") == [(26,)]
    # 6 activities in batch 1 + Tsk4 in batch 2 (Tsk5 deleted) = 7.
    assert query(built, "select count(*) from raw.activities") == [(7,)]
    assert query(
        built,
        "select activity_type, opportunity_id, contact_id from raw.activities "
        "where activity_id = 'salesforce:00U8d000001Evt1AAA'",
    ) == [("demo", opp(2), f"{NS}0038d000001Con2AAA")]
    assert query(
        built,
        "select currency, rate_date, rate_to_reporting from raw.fx_rates "
        "where currency = 'EUR' and rate_date = '2026-02-15'",
    ) == [("EUR", date(2026, 2, 15), 1.25)]
    assert query(
        built,
        f"select name, region, manager_id from raw.users where user_id = '{NS}0058d000001AmesAAA'",
    ) == [("Alice Ames", None, f"{NS}0058d000001DiazAAA")]
    assert query(built, "select count(*) from quality.quarantine") == [(0,)]


def test_raw_quotas(built):
    ames, byrne = f"{NS}0058d000001AmesAAA", f"{NS}0058d000001ByrnAAA"
    assert query(
        built,
        "select owner_id, month, amount, currency, _batch_id, "
        "json_extract_string(_attributes, '$.id') from raw.quotas order by owner_id, month",
    ) == [
        (ames, date(2026, 1, 1), 20000.0, "USD", "2026-03-07T0600", "0J98d000000Quo1AAA"),
        (ames, date(2026, 2, 1), 25000.0, "USD", "2026-03-07T0600", "0J98d000000Quo2AAA"),
        # Re-exported unchanged in batch 2: batch 1's row stays.
        (ames, date(2026, 3, 1), 25000.0, "USD", "2026-03-07T0600", "0J98d000000Quo3AAA"),
        (byrne, date(2026, 2, 1), 15000.0, "EUR", "2026-03-07T0600", "0J98d000000Quo4AAA"),
        # Revised in batch 2: 18000 replaces 15000.
        (byrne, date(2026, 3, 1), 18000.0, "EUR", "2026-03-14T0600", "0J98d000000Quo5AAA"),
    ]
    # Every converted row accounted for: batch 1, 7 exported - 2 set aside = 5 loaded;
    # batch 2, 2 rows = 1 loaded + 1 duplicate.
    assert query(
        built,
        "select batch_id, input_rows, loaded_rows, quarantined_rows, duplicate_rows "
        "from quality.ingestion_log where entity = 'quotas' order by 1",
    ) == [("2026-03-07T0600", 5, 5, 0, 0), ("2026-03-14T0600", 2, 1, 0, 1)]
    # Every owner is a known user: the reference rule passed on both batches.
    assert query(
        built,
        "select bool_and(success) from quality.validation_results "
        "where rule = 'quotas.owner_id_exists'",
    ) == [(True,)]


def history(warehouse: Path, n: int) -> list[tuple]:
    return query(
        warehouse,
        "select stage, entered_at, exited_at, is_regression from marts.fct_stage_history "
        f"where opportunity_id = '{opp(n)}' order by entered_at",
    )


def test_stage_history(built):
    # Opp3: the regression meeting → qualification on 02-10 flags the meeting interval.
    assert history(built, 3) == [
        ("prospecting", ts(1, 15, 14, 30), ts(1, 22, 14, 30), False),
        ("qualification", ts(1, 22, 14, 30), ts(2, 3, 14, 30), False),
        ("meeting", ts(2, 3, 14, 30), ts(2, 10, 14, 30), True),
        ("qualification", ts(2, 10, 14, 30), ts(2, 20, 14, 30), False),
        ("meeting", ts(2, 20, 14, 30), ts(3, 5, 12), False),
        ("closed_lost", ts(3, 5, 12), None, False),
    ]
    # Opp2: Value Proposition and Id. Decision Makers are both proposal: one interval.
    assert history(built, 2) == [
        ("prospecting", ts(1, 10, 8), ts(1, 25, 8), False),
        ("proposal", ts(1, 25, 8), ts(2, 25, 8), False),
        ("closed_won", ts(2, 25, 8), None, False),
    ]
    # Opp1: the amount-only row of 02-05 starts nothing; proposal runs 02-02 → 02-10.
    assert [(s, a, b) for s, a, b, _ in history(built, 1)][3] == (
        "proposal", ts(2, 2, 10), ts(2, 10, 10)
    )  # fmt: skip
    # Opp6 is deleted: no stage history in the marts.
    assert history(built, 6) == []


def test_fct_opportunities(built):
    got = query(
        built,
        "select opportunity_id, status, amount, currency, amount_reporting, closed_at, "
        "sales_cycle_days, current_stage, regressions_count, is_deleted "
        "from marts.fct_opportunities order by opportunity_id",
    )
    # fmt: off
    expected = [
        # 01-05 09:00 → 02-20 15:00: 46 days + 6 h = 46.25.
        (opp(1), "won", 12000.0, "USD", 12000.0, ts(2, 20, 15), 46.25, "closed_won", 0, False),
        # 01-10 08:00 → 02-25 08:00: 31 + 15 = 46 days; 10000 EUR × 1.25 = 12500 USD.
        (opp(2), "won", 10000.0, "EUR", 12500.0, ts(2, 25, 8), 46.0, "closed_won", 0, False),
        # 01-15 14:30 → 03-05 12:00: 49 days less 2.5 h = 49 - 2.5 / 24.
        (opp(3), "lost", 7500.0, "USD", 7500.0, ts(3, 5, 12), 49 - 2.5 / 24, "closed_lost",
         1, False),
        # 02-02 10:00 (report-style) → 02-16 10:00: 14 days.
        (opp(4), "lost", 5000.0, "USD", 5000.0, ts(2, 16, 10), 14.0, "closed_lost", 0, False),
        (opp(5), "open", 3000.0, "USD", 3000.0, None, None, "qualification", 0, False),
        # 02-20 11:00 → 03-03 16:00: 8 + 3 days + 5 h = 11 + 5 / 24; kept, flagged deleted.
        (opp(6), "won", 7000.0, "USD", 7000.0, ts(3, 3, 16), 11 + 5 / 24, "closed_won", 0,
         True),
        # 03-02 09:00 → 03-12 10:00: 10 days + 1 h.
        (opp(7), "won", 20000.0, "USD", 20000.0, ts(3, 12, 10), 10 + 1 / 24, "closed_won", 0,
         False),
        # No history: Perception Analysis (proposal) since created_at.
        (opp(8), "open", 4000.0, "USD", 4000.0, None, None, "proposal", 0, False),
    ]
    # fmt: on
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        # sales_cycle_days (index 6) is a double: compared to 12 significant digits.
        assert (*g[:6], *g[7:]) == (*e[:6], *e[7:]), (g, e)
        assert g[6] == (None if e[6] is None else pytest.approx(e[6], rel=1e-12)), (g, e)


def test_kpi_monthly(built):
    got = query(
        built,
        "select month, won_count, lost_count, win_rate, avg_deal_size, avg_sales_cycle_days, "
        "open_count_end, open_amount_end from marts.kpi_monthly order by month",
    )
    assert [g[0] for g in got] == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    feb, mar = got[1], got[2]
    # February: won Opp1 (12000) and Opp2 (12500 USD), lost Opp4.
    # win rate 2 / (2 + 1) = 0.6667; deal size (12000 + 12500) / 2 = 12250;
    # cycle (46.25 + 46) / 2 = 46.125. Open at 03-01 00:00: Opp3 (7500) and Opp5 (3000);
    # Opp6 (created 02-20, won 03-03) would be open too but is deleted.
    assert feb[1:3] == (2, 1)
    assert feb[3] == pytest.approx(2 / 3)
    assert feb[4:6] == (12250.0, pytest.approx(46.125))
    assert feb[6:] == (2, 10500.0)
    # March: won Opp7 (20000), lost Opp3; Opp6's win is left out (deleted):
    # win rate 1 / (1 + 1) = 0.5, deal size 20000 / 1. Open at as_of: Opp5 + Opp8 = 7000.
    assert mar[1:5] == (1, 1, 0.5, 20000.0)
    assert mar[5] == pytest.approx(10 + 1 / 24, rel=1e-9)
    assert mar[6:] == (2, 7000.0)


def test_a_missing_exchange_rate_blocks_instead_of_a_null(tmp_path, capsys):
    # The same exports without DatedConversionRate: Opp2's 10000 EUR has no rate.
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing, ignore=shutil.ignore_patterns("DatedConversionRate*"))
    code = run_pipeline(landing, tmp_path / "w.duckdb", AS_OF, source="salesforce")
    err = capsys.readouterr().err
    assert code == 1, err
    assert (
        "blocked: check marts/fct_opportunities:assert_amount_reporting_has_fx_rate failed:\n"
        "  dbt's test returned 1 failing row." in err
    )
    assert "no DatedConversionRate or CurrencyType file" in err  # the conversion's note


def test_a_bad_row_is_named_by_its_export_file_and_line(tmp_path, capsys):
    # Opp5's CloseDate, on line 6 of batch 1's Opportunity.csv, does not parse: the gate
    # names that file and line, not the converted file the user never wrote.
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    path = landing / "2026-03-07T0600" / "Opportunity.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert "Opp5" in lines[5]
    lines[5] = lines[5].replace(",2026-04-30,", ",sometime in April,", 1)
    assert "sometime in April" in lines[5]
    path.write_text("".join(lines), encoding="utf-8")
    run_pipeline(landing, tmp_path / "w.duckdb", AS_OF, source="salesforce")
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Rows: Opportunity.csv:6." in output, output
    assert "opportunities.csv:6" not in output  # the converted file's row, never shown
