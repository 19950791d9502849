"""The pipeline report on a small hand-written warehouse: numbers, explanations, escaping,
files and the `crm-pipeline report` command.

The marts hold only the columns the report reads; the quality tables are the real ones
(ingestion.warehouse.create_quality_tables). Expected values are worked out by hand below.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from report_helpers import block, chart_traces, empty_text, kpi_tile, note_text, table_rows

from ingestion.warehouse import create_quality_tables
from orchestration.cli import main
from orchestration.lib.report import ReportError, build_report, write_report, write_run_reports

EVIL_REP = '<script>alert("rep")</script> & Co'
EVIL_CHANNEL = "<b>bold</b><a href='javascript:alert(1)'>x</a>"

MARTS: dict[str, tuple[str, list[tuple]]] = {
    # kpi_monthly as in the summary's test. Trailing three months: 2026-09 alone 2 won of 4
    # (50%), deal 20,000 / 2 = 10,000; to 2026-10: 3 of 8 (37.5%), 30,000 / 3 = 10,000;
    # to 2026-11: 4 of 10 (40%), 60,000 / 4 = 15,000, cycle (30×2 + 60 + 48) / 4 = 42.0.
    "kpi_monthly": (
        "month date, won_count bigint, lost_count bigint, won_amount double, "
        "avg_sales_cycle_days double, pipeline_velocity_per_day double, "
        "open_count_end bigint, open_amount_end double",
        [
            ("2026-09-01", 2, 2, 20_000.0, 30.0, 100.0, 5, 50_000.0),
            ("2026-10-01", 1, 3, 10_000.0, 60.0, 200.0, 4, 45_000.0),
            ("2026-11-01", 1, 1, 30_000.0, 48.0, 250.0, 3, 40_000.0),
        ],
    ),
    "fct_opportunities": (
        "opportunity_id varchar, status varchar, closed_at timestamp, "
        "amount_reporting double, is_deleted boolean",
        [
            *[(f"W{i}", "won", "2026-10-15 00:00:00", 15_000.0, False) for i in range(4)],
            *[(f"O{i}", "open", None, 10_000.0, False) for i in range(3)],
        ],
    ),
    # Bottleneck: the open stage with the highest median over >= 10 completed intervals:
    # proposal (12.5). closed_won is not open.
    "kpi_stage_duration": (
        "stage varchar, stage_order integer, completed_intervals bigint, avg_days double, "
        "median_days double, p90_days double, current_count bigint, "
        "avg_current_age_days double",
        [
            ("meeting", 3, 40, 4.0, 3.0, 9.0, 2, 1.5),
            ("proposal", 4, 25, 14.0, 12.5, 30.0, 1, 6.0),
            ("negotiation", 5, 10, 2.5, 2.0, 4.0, 0, None),
            ("closed_won", 6, 30, 95.0, 90.0, 120.0, 4, 40.0),
        ],
    ),
    # Two regressions proposal → meeting in the window (from 2025-12-01); the older one
    # (2025-01) is outside it.
    "fct_stage_history": (
        "stage varchar, stage_order integer, stage_category varchar, next_stage varchar, "
        "is_regression boolean, exited_at timestamp",
        [
            ("meeting", 3, "open", "proposal", False, "2026-10-01 00:00:00"),
            ("proposal", 4, "open", "meeting", True, "2026-10-05 00:00:00"),
            ("proposal", 4, "open", "meeting", True, "2026-11-02 00:00:00"),
            ("negotiation", 5, "open", "proposal", True, "2025-01-01 00:00:00"),
            ("closed_won", 6, "won", None, False, None),
        ],
    ),
    # Cohorts 2026-10 and 2026-11 count; 2025-10 is before the window. Summed: prospecting
    # 20, meeting 10, won 4: 50% then 40% to the next step; 100%, 50%, 20% from the first.
    "fct_funnel": (
        "cohort_month date, stage varchar, stage_order integer, reached_count bigint, "
        "next_stage varchar, conversion_rate_to_next double",
        [
            ("2026-10-01", "prospecting", 1, 10, "meeting", 0.6),
            ("2026-10-01", "meeting", 3, 6, "closed_won", 0.5),
            ("2026-10-01", "closed_won", 6, 3, None, None),
            ("2026-11-01", "prospecting", 1, 10, "meeting", 0.4),
            ("2026-11-01", "meeting", 3, 4, "closed_won", 0.25),
            ("2026-11-01", "closed_won", 6, 1, None, None),
            ("2025-10-01", "prospecting", 1, 100, "meeting", 1.0),
            ("2025-10-01", "meeting", 3, 100, "closed_won", 1.0),
            ("2025-10-01", "closed_won", 6, 100, None, None),
        ],
    ),
    "fct_pipeline_daily_snapshot": (
        "snapshot_date date, stage varchar, stage_order integer, open_count bigint, "
        "open_amount double",
        [
            ("2026-11-19", "meeting", 3, 2, 20_000.0),
            ("2026-11-19", "proposal", 4, 1, 10_000.0),
            ("2026-11-20", "meeting", 3, 2, 20_000.0),
            ("2026-11-20", "proposal", 4, 1, 20_000.0),
            # Open that day in a closed stage: a deal lost, revived on 2026-11-20.
            ("2026-11-19", "closed_lost", 7, 1, 5_000.0),
        ],
    ),
    "kpi_forecast_monthly": (
        "expected_close_month date, open_count bigint, open_amount double, "
        "expected_amount_configured double, expected_amount double, "
        "won_amount_to_date double, forecast_amount double",
        [
            # configured = won so far + expected with configured probabilities:
            # 10,000 + 6,000 = 16,000; learned = forecast_amount 14,500.
            ("2026-11-01", 2, 20_000.0, 6_000.0, 4_500.0, 10_000.0, 14_500.0),
            ("2027-01-01", 1, 100_000.0, 25_000.0, 31_250.0, 0.0, 31_250.0),
        ],
    ),
    # Settled months (still open ≤ 10% of open): configured (20% + 40%) / 2 = 30.0%,
    # learned (10% + 30%) / 2 = 20.0%. 2026-08 has no percentage (nothing won).
    "kpi_forecast_backtest": (
        "month date, method varchar, predicted_won_amount double, actual_won_amount double, "
        "abs_pct_error double, open_amount double, still_open_amount double",
        [
            ("2026-08-01", "configured", 10.0, 0.0, None, 100.0, 0.0),
            ("2026-08-01", "empirical", 10.0, 0.0, None, 100.0, 0.0),
            ("2026-09-01", "configured", 120.0, 100.0, 0.2, 100.0, 0.0),
            ("2026-09-01", "empirical", 110.0, 100.0, 0.1, 100.0, 0.0),
            ("2026-10-01", "configured", 140.0, 100.0, 0.4, 100.0, 10.0),
            ("2026-10-01", "empirical", 130.0, 100.0, 0.3, 100.0, 10.0),
        ],
    ),
    # U1 over the window: won 2 + 1 of 4 + 1 closed = "3 / 5", 60.0%; deal 40,000 / 3 =
    # 13,333; cycle (40×2 + 70) / 3 = 50.0; touchpoints (6×2 + 9) / 3 = 7.0. U2: lost 1.
    "kpi_rep_monthly": (
        "owner_id varchar, month date, won_count bigint, lost_count bigint, won_amount double, "
        "avg_sales_cycle_days double, avg_touchpoints_per_won double, open_count_end bigint",
        [
            ("U1", "2026-10-01", 2, 2, 30_000.0, 40.0, 6.0, 1),
            ("U1", "2026-11-01", 1, 0, 10_000.0, 70.0, 9.0, 2),
            ("U2", "2026-11-01", 0, 1, 0.0, None, None, 1),
            ("U3", "2026-11-01", 1, 0, 5_000.0, 20.0, 4.0, 0),
        ],
    ),
    # U1's attainment: (30,000 + 10,000) / (20,000 + 40,000) = 66.7%; coverage in 2026-11.
    "kpi_pipeline_coverage": (
        "owner_id varchar, month date, quota_amount double, won_amount double, "
        "remaining_quota double, coverage_ratio double, weighted_coverage_ratio double",
        [
            ("U1", "2026-10-01", 20_000.0, 30_000.0, 0.0, None, None),
            ("U1", "2026-11-01", 40_000.0, 10_000.0, 30_000.0, 1.5, 0.75),
            # U3 has won this month's quota: no coverage to compute.
            ("U3", "2026-11-01", 5_000.0, 5_000.0, 0.0, None, None),
        ],
    ),
    # Channel totals over the window: email 10 leads (4 qualified, 2 converted, 1 won).
    "kpi_lead_funnel": (
        "cohort_month date, channel varchar, leads_created bigint, qualified_count bigint, "
        "converted_count bigint, won_count bigint, won_amount double",
        [
            ("2026-10-01", "email", 6, 3, 1, 1, 5_000.0),
            ("2026-11-01", "email", 4, 1, 1, 0, 0.0),
            ("2026-11-01", EVIL_CHANNEL, 2, 1, 0, 0, 0.0),
        ],
    ),
    "kpi_post_sale": (
        "month date, won_count bigint, followed_up_count bigint, followed_up_share double, "
        "median_days_to_first_activity double, onboarding_count bigint, "
        "follow_up_count bigint, renewal_count bigint",
        [],
    ),
}

AS_OF = datetime(2026, 11, 20, 8, 0, 0)


def build_warehouse(path: Path, leave_out: tuple[str, ...] = ("kpi_pipeline_waterfall",)) -> Path:
    """The marts above (kpi_pipeline_waterfall missing, kpi_post_sale empty), a user, and
    two runs' quality records; the later run (run-2, as of 2026-11-20 08:00) is the last."""
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    for name, (columns, rows) in MARTS.items():
        if name in leave_out:
            continue
        con.execute(f"create table marts.{name} ({columns})")
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            con.executemany(f"insert into marts.{name} values ({marks})", rows)
    con.execute("create schema raw")
    con.execute("create table raw.users (user_id varchar, name varchar)")
    con.execute("insert into raw.users values ('U1', ?)", [EVIL_REP])
    create_quality_tables(con)
    results = [
        # run_id, validated_at, entity, rule, severity, success, unexpected, observed, message
        ("run-1", "2026-11-19 08:00:00", "landing", "landing.freshness", "warn", True, None,
         "newest batch 2026-11-19 06:00 is 2.0 h old at as_of", "ok"),
        ("run-2", "2026-11-20 08:05:00", "contacts", "contacts.email_format", "warn", False, 3,
         None, "contacts.email_format (warn, row): 3 of 40 rows fail"),
        ("run-2", "2026-11-20 08:05:00", "opportunities", "opportunities.amount_non_negative",
         "error", True, 0, None, "passed on 12 rows"),
        ("run-2", "2026-11-20 08:00:00", "landing", "landing.freshness", "warn", True, None,
         "newest batch 2026-11-20 06:00 is 2.0 h old at as_of", "ok"),
    ]  # fmt: skip
    con.executemany(
        "insert into quality.validation_results (run_id, validated_at, entity, rule, severity, "
        "success, unexpected_count, observed, message) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        results,
    )
    quarantine = [
        ("opportunities", "b1", '["opportunities.amount_non_negative"]', "run-1"),
        ("opportunities", "b2",
         '["opportunities.amount_non_negative", "opportunities.created_at_parses"]', "run-2"),
    ]  # fmt: skip
    con.executemany(
        "insert into quality.quarantine (entity, batch_id, failed_rules, run_id) "
        "values (?, ?, ?, ?)",
        quarantine,
    )
    log = [
        ("run-1", "b1", "opportunities", "published", 6, 5, 1, "2026-11-19 08:00:00"),
        ("run-1", "b1", "users", "published", 2, 2, 0, "2026-11-19 08:00:00"),
        ("run-2", "b2", "opportunities", "published", 5, 4, 1, "2026-11-20 08:05:00"),
        ("run-2", "b2", "users", "rejected", 1, 0, 0, "2026-11-20 08:05:00"),
    ]
    con.executemany(
        "insert into quality.ingestion_log (run_id, batch_id, entity, status, input_rows, "
        "loaded_rows, quarantined_rows, ingested_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
        log,
    )
    con.close()
    return path


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return build_warehouse(tmp_path / "warehouse.duckdb")


@pytest.fixture
def page(warehouse: Path) -> str:
    html, _ = build_report(warehouse, warehouse.parent / "reports")
    return html


def test_headline_kpis_are_the_summary_numbers_with_their_definitions(page):
    assert kpi_tile(page, "Win rate")[1:] == ("40.0%", "4 won, 6 lost")
    assert kpi_tile(page, "Sales cycle")[2] == "won deals, 3 months to 2026-11"
    assert kpi_tile(page, "Average deal size")[1] == "15,000"
    assert kpi_tile(page, "Sales cycle")[1] == "42.0 days"
    assert kpi_tile(page, "Pipeline velocity")[1:] == ("250 / day", "month of 2026-11")
    assert kpi_tile(page, "Open pipeline")[1:] == ("40,000", "3 open deals")
    definition = kpi_tile(page, "Pipeline velocity")[0]
    assert "win rate × average deal size ÷ average sales cycle" in definition
    assert "Deals won ÷ deals closed (won + lost)" in kpi_tile(page, "Win rate")[0]


def test_trends_are_trailing_three_month_values_ending_with_the_headline(page):
    (win_rate,) = chart_traces(page, "kpi-win_rate")
    assert win_rate["x"] == ["2026-09", "2026-10", "2026-11"]
    assert win_rate["y"] == [0.5, 0.375, 0.4]
    (deal,) = chart_traces(page, "kpi-avg_deal_size")
    assert deal["y"] == [10_000.0, 10_000.0, 15_000.0]
    (cycle,) = chart_traces(page, "kpi-avg_cycle_days")
    # 2026-09: 30; to 2026-10: (60 + 60) / 3 = 40; to 2026-11: 168 / 4 = 42.
    assert cycle["y"] == [30.0, 40.0, 42.0]
    (open_amount,) = chart_traces(page, "kpi-open_amount")
    assert open_amount["y"] == [50_000.0, 45_000.0, 40_000.0]


def test_funnel_sums_the_recent_cohorts(page):
    funnel = block(page, "Stage-to-stage conversion, cohorts of the last 12 months")
    assert table_rows(funnel) == [
        ["prospecting", "20", "50.0%", "100.0%"],
        ["meeting", "10", "40.0%", "50.0%"],
        ["closed_won", "4", "", "20.0%"],
    ]
    (heatmap,) = chart_traces(page, "chart-funnel-cohorts")
    assert heatmap["x"] == ["2026-10", "2026-11"]
    assert heatmap["z"] == [[0.6, 0.4], [0.5, 0.25]]


def test_time_in_stage_marks_the_bottleneck_and_regressions_count_the_window(page):
    durations = block(page, "Time in stage")
    assert "The bottleneck, in orange, is proposal" in note_text(durations)
    assert [row[:3] for row in table_rows(durations)] == [
        ["meeting", "40", "3.0"],
        ["proposal (bottleneck)", "25", "12.5"],
        ["negotiation", "10", "2.0"],
    ]
    assert table_rows(block(page, "Regressions in the last 12 months")) == [
        ["proposal", "meeting", "2"]
    ]


def test_forecast_and_backtest(page):
    forecast = block(page, "Forecast by expected close month")
    assert [row[:4] for row in table_rows(forecast)] == [
        ["2026-11", "16,000", "14,500", "10,000"],
        ["2027-01", "25,000", "31,250", "0"],
    ]
    backtest = block(page, "Backtest: error of each method at past month-ends")
    assert table_rows(backtest) == [["configured", "30.0%", "2"], ["learned", "20.0%", "2"]]
    assert "Trust the learned probabilities" in backtest
    # The settled months counted reach back beyond the chart's window: it says so.
    assert note_text(backtest).endswith(
        "The table's mean is over every settled month of the history, as in the run "
        "summary; the chart shows the last 12 months."
    )


def test_reps(page):
    rows = table_rows(block(page, "Rep performance"))
    assert rows == [
        [EVIL_REP, "3 / 5", "60.0%", "13,333", "50.0", "7.0", "66.7%", "1.50×", "0.75×"],
        # No raw.users row: the owner id stands in for the name. U3 won 5,000 of a 5,000
        # quota: nothing left to cover. U2 has no quota at all.
        ["U3", "1 / 1", "100.0%", "5,000", "20.0", "4.0", "100.0%", "quota met", "quota met"],
        ["U2", "0 / 1", "0.0%", "n/a", "n/a", "n/a", "n/a", "no quota", "no quota"],
    ]


def headers(fragment: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", fragment)]


def test_daily_pipeline_names_a_closed_stage_held_by_a_deal_revived_later(page):
    traces = chart_traces(page, "chart-daily-pipeline")
    assert [(t["name"], t["y"], t["line"]["color"]) for t in traces] == [
        ("meeting", [20_000.0, 20_000.0], "#4292c6"),
        ("proposal", [10_000.0, 20_000.0], "#2171b5"),
        ("closed_lost (reopened later)", [5_000.0], "#bdbdbd"),
    ]


def test_leads_by_channel_give_rates_of_the_leads(page):
    leads = block(page, "Leads by channel, cohorts of the last 12 months")
    assert headers(leads) == ["channel", "leads", "qualified (% of leads)",
                              "converted (% of leads)", "won deals", "won amount"]  # fmt: skip
    # email: 4 of 10 qualified, 2 of 10 converted; the other channel 1 of 2, 0 of 2.
    assert table_rows(leads) == [
        ["email", "10", "40.0%", "20.0%", "1", "5,000"],
        [EVIL_CHANNEL, "2", "50.0%", "0.0%", "0", "0"],
    ]


def test_a_missing_mart_and_an_empty_one_are_explained(page):
    for title in ("Pipeline waterfall, last 12 months", "Month by month"):
        assert empty_text(block(page, title)) == (
            "Not available: the warehouse has no marts.kpi_pipeline_waterfall (it was built "
            "by an older version of the pipeline). Run the pipeline again to build it."
        )
    assert 'id="chart-waterfall"' not in page
    assert empty_text(block(page, "After-sales follow-up by month of the win")) == (
        "Nothing to show yet: marts.kpi_post_sale has no rows."
    )
    assert 'id="chart-post-sale"' not in page


def test_values_from_the_data_are_escaped_everywhere(page):
    # Neither the rep's name nor the channel reaches the page as markup: not in a table,
    # not in a chart label (plotly.js would render <b> and <a href> in labels).
    assert EVIL_REP not in page and EVIL_CHANNEL not in page
    assert '<script>alert("rep")' not in page and "<a href='javascript" not in page
    assert "&lt;script&gt;alert(&#34;rep&#34;)&lt;/script&gt; &amp; Co" in page
    (attainment, _) = chart_traces(page, "chart-reps")
    assert attainment["x"][0] == "&lt;script&gt;alert(&quot;rep&quot;)&lt;/script&gt; &amp; Co"
    leads = chart_traces(page, "chart-leads")[0]
    assert "&lt;b&gt;bold&lt;/b&gt;" in leads["x"][1]


def test_data_quality_shows_the_last_runs_checks_quarantine_and_batches(page):
    assert "Marts as of <strong>2026-11-20 08:00:00</strong> UTC · run run-2" in page
    checks = block(page, "Checks of the run")
    assert "2 of 3 rules passed in run run-2" in note_text(checks)
    assert [row[:5] for row in table_rows(checks)] == [
        ["contacts", "contacts.email_format", "warning", "warn", "3"],
        ["landing", "landing.freshness", "passed", "warn", "0"],
        ["opportunities", "opportunities.amount_non_negative", "passed", "error", "0"],
    ]
    assert table_rows(block(page, "Quarantined rows by rule")) == [
        ["opportunities", "opportunities.amount_non_negative", "2", "1"],
        ["opportunities", "opportunities.created_at_parses", "1", "1"],
    ]
    batches = block(page, "Batches included")
    assert [row[:5] for row in table_rows(batches)] == [
        ["b1", "2", "0", "7", "1"],
        ["b2", "1", "1", "4", "1"],
    ]
    assert "Freshness at as_of: newest batch 2026-11-20 06:00 is 2.0 h old at as_of" in batches


def test_a_run_that_found_nothing_new_says_why_it_checked_so_little(warehouse, page):
    # run-2 loaded files: its note carries no such sentence.
    assert "found no new export file" not in note_text(block(page, "Checks of the run"))
    # run-3, an hour later, found no new file: only its freshness check was recorded.
    con = duckdb.connect(str(warehouse))
    con.execute(
        "insert into quality.validation_results (run_id, validated_at, entity, rule, "
        "severity, success, observed, message) values ('run-3', '2026-11-20 09:00:00', "
        "'landing', 'landing.freshness', 'warn', true, 'newest batch 3.0 h old', 'ok')"
    )
    con.close()
    html, _ = build_report(warehouse, warehouse.parent / "reports")
    assert note_text(block(html, "Checks of the run")) == (
        "1 of 1 rules passed in run run-3 (quality.validation_results); failures first. A "
        "failed error rule quarantines its rows, or rejects its batch. This run found no new "
        "export file, so only the landing checks ran; each batch's rules ran in the run that "
        "loaded it (quality.validation_results)."
    )


def test_dbt_tests_of_the_latest_build_are_counted_and_the_failures_listed(warehouse, page):
    title = "dbt tests of the models"
    missing = (
        "No dbt test results beside the warehouse: dbt_target/run_results.json is missing "
        "(no run has reached dbt with this warehouse yet) or unreadable."
    )
    assert empty_text(block(page, title)) == missing
    target = warehouse.parent / "dbt_target"
    target.mkdir()
    for damaged in ("{not json", "[]"):
        (target / "run_results.json").write_text(damaged)
        html, _ = build_report(warehouse, warehouse.parent / "reports")
        assert empty_text(block(html, title)) == missing
    # A build of one model and three tests: one passed, one warned on 2 rows, one failed
    # on 1 row. The model does not count; the failure is listed first, then the warning.
    results = {
        "metadata": {"generated_at": "2026-11-20T08:03:41.5Z"},
        "results": [
            {"unique_id": "model.crm_pipeline.kpi_monthly", "status": "success"},
            {"unique_id": "test.crm_pipeline.not_null_a.1f", "status": "pass", "failures": 0},
            {"unique_id": "test.crm_pipeline.accepted_values_b.2e", "status": "warn",
             "failures": 2, "message": "Got 2 results, configured to warn if != 0"},
            {"unique_id": "test.crm_pipeline.unique_c.3d", "status": "fail", "failures": 1,
             "message": "Got 1 result, configured to fail if != 0\nsee the compiled SQL"},
        ],
    }  # fmt: skip
    (target / "run_results.json").write_text(json.dumps(results))
    html, _ = build_report(warehouse, warehouse.parent / "reports")
    tests = block(html, title)
    assert note_text(tests) == (
        "1 of 3 dbt tests passed (1 warn, 1 fail) in the latest dbt build at 2026-11-20 "
        "08:03 UTC (dbt_target/run_results.json). A failing test stops the marts "
        "downstream of it; a warning (severity warn) does not. Tests that did not pass:"
    )
    assert table_rows(tests) == [
        ["unique_c", "fail", "1", "Got 1 result, configured to fail if != 0"],
        ["accepted_values_b", "warn", "2", "Got 2 results, configured to warn if != 0"],
    ]
    # Every test passed: the count, and no table.
    for r in results["results"][2:]:
        r.update(status="pass", failures=0, message=None)
    (target / "run_results.json").write_text(json.dumps(results))
    html, _ = build_report(warehouse, warehouse.parent / "reports")
    tests = block(html, title)
    assert note_text(tests).startswith("3 of 3 dbt tests passed in the latest dbt build at ")
    assert empty_text(tests) == "Every dbt test passed." and "<table" not in tests
    assert "not rerun" not in note_text(tests)
    # A build that left the staging layer out, as a run with nothing new does: says so.
    results["args"] = {"exclude": ["path:models/staging"], "select": ["fqn:*"]}
    (target / "run_results.json").write_text(json.dumps(results))
    html, _ = build_report(warehouse, warehouse.parent / "reports")
    assert note_text(block(html, title)).endswith(
        "The tests of the staging views were not rerun: no batch was published, and the "
        "stage map and the dbt project are unchanged, since a build passed them."
    )


def test_the_page_is_self_contained_with_plotly_inlined_once(page):
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.S)
    # plotly.js once, in the head, and the print resize; then one short call per chart
    # (5 trends + 10 charts).
    library = [s for s in scripts if len(s) > 1_000_000]
    assert len(library) == 1 and library[0] in page.split("</head>")[0]
    calls = [s for s in scripts if s not in library and "beforeprint" not in s]
    assert len(scripts) == 2 + len(calls)
    assert len(calls) == 15 and all("Plotly.newPlot(" in s for s in calls)
    assert page.count('class="plotly-graph-div"') == 15
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    assert '<a href="../docs/index.html"' in page  # the dbt docs, from data/reports/
    # Every chart carries the plotly_white look (white plot area, light grey grid).
    decoder = json.JSONDecoder()
    for call in calls:
        # Plotly.newPlot("<div id>", [traces], {layout}, {config})
        rest = call[call.index("Plotly.newPlot(") + len("Plotly.newPlot(") :]
        values, at = [], 0
        for _ in range(3):
            at = len(rest) - len(rest[at:].lstrip(" \n,"))
            value, at = decoder.raw_decode(rest, at)
            values.append(value)
        template = values[2]["template"]["layout"]
        assert template["plot_bgcolor"] == "white"
        assert template["xaxis"]["gridcolor"] == "#EBF0F8"


def test_same_warehouse_gives_the_same_page(warehouse):
    first, _ = build_report(warehouse, warehouse.parent)
    second, _ = build_report(warehouse, warehouse.parent)
    assert first == second


def test_marts_older_than_the_last_run_are_flagged(tmp_path):
    warehouse = build_warehouse(tmp_path / "w.duckdb")
    con = duckdb.connect(str(warehouse))
    con.execute("delete from marts.fct_pipeline_daily_snapshot where snapshot_date = '2026-11-20'")
    con.close()
    html, _ = build_report(warehouse, tmp_path)
    assert (
        "The marts end on 2026-11-19, but the latest run is as of 2026-11-20 08:00: that run did "
        "not rebuild them" in html
    )


def test_run_reports_are_written_whole_and_latest_is_replaced(warehouse):
    folder = warehouse.parent / "reports"
    folder.mkdir()
    (folder / "latest.html").write_text("the previous report")
    dated, latest = write_run_reports(warehouse, "run-2", AS_OF)
    assert dated == folder / "pipeline-2026-11-20T080000.html"
    assert latest.read_bytes() == dated.read_bytes()
    assert b"Marts as of <strong>2026-11-20 08:00:00</strong>" in latest.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["latest.html", dated.name]
    # A warehouse that cannot give a report leaves the last one as it was, and no debris.
    before = latest.read_bytes()
    empty = warehouse.parent / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(ReportError):
        write_run_reports(empty, "run-3", AS_OF)
    assert latest.read_bytes() == before


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_report_command_writes_the_file_and_leaves_the_warehouse_untouched(warehouse, capsys):
    before = _digest(warehouse)
    assert main(["report", "--warehouse", str(warehouse)]) == 0
    out = warehouse.parent / "reports" / "latest.html"
    assert capsys.readouterr().out == f"Report: {out.resolve()}\n"
    assert "Pipeline report" in out.read_text()
    assert _digest(warehouse) == before
    custom = warehouse.parent / "elsewhere" / "r.html"
    assert main(["report", "--warehouse", str(warehouse), "--out", str(custom)]) == 0
    assert '<a href="../docs/index.html"' in custom.read_text()
    assert write_report(warehouse, warehouse.parent / "here.html").exists()
    assert '<a href="docs/index.html"' in (warehouse.parent / "here.html").read_text()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda p: p,
            "error: No warehouse at {p}. Run the pipeline first (`crm-pipeline run`, or "
            "`make run`), or point --warehouse at an existing DuckDB file.",
            id="missing",
        ),
        pytest.param(
            lambda p: duckdb.connect(str(p)).execute("create schema raw").close() or p,
            "error: The warehouse {p} holds no marts yet: no run has built them. Run "
            "`crm-pipeline run --warehouse {p}` first; a run blocked by the hygiene gate "
            "builds none.",
            id="no marts",
        ),
        pytest.param(
            lambda p: p.write_text("not a database") and p,
            "error: Cannot open the warehouse {p}:",
            id="not duckdb",
        ),
    ],
)
def test_report_command_errors_exit_2_without_a_traceback(tmp_path, capsys, make, message):
    path = tmp_path / "w.duckdb"
    make(path)
    assert main(["report", "--warehouse", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message.format(p=path.resolve()))
    assert "Traceback" not in captured.err
    assert not (tmp_path / "reports").exists()


def test_the_dated_file_name_sorts_by_as_of_and_has_no_colon(warehouse):
    dated, _ = write_run_reports(warehouse, "run-2", datetime(2026, 1, 2, 3, 4, 5))
    assert dated.name == "pipeline-2026-01-02T030405.html"


def test_the_batch_table_lists_the_latest_batches(warehouse):
    con = duckdb.connect(str(warehouse))
    con.executemany(
        "insert into quality.ingestion_log (run_id, batch_id, entity, status, loaded_rows, "
        "quarantined_rows, ingested_at) values ('run-0', ?, 'users', 'published', 1, 0, "
        "'2026-01-01 00:00:00')",
        [[f"a{n:02d}"] for n in range(40)],
    )
    con.close()
    html, _ = build_report(warehouse, warehouse.parent)
    batches = block(html, "Batches included")
    assert "The latest 30 of 42 are listed." in note_text(batches)
    # Batch ids sort by name (a00 … a39, b1, b2): the last 30 are a12 … a39, b1, b2.
    assert [row[0] for row in table_rows(batches)] == [f"a{n:02d}" for n in range(12, 40)] + [
        "b1",
        "b2",
    ]


def test_the_docs_link_says_when_the_site_is_not_built(warehouse):
    html, _ = build_report(warehouse, warehouse.parent / "reports")
    # Worded so it stays true once `make docs` builds the site after the page was written.
    assert (
        "title=\"dbt's documentation site, built by make docs: run it if this link does not "
        'open (it was not built when this page was written)">Data dictionary</a>'
    ) in html
    (warehouse.parent / "docs").mkdir()
    (warehouse.parent / "docs" / "index.html").write_text("dbt docs")
    html, _ = build_report(warehouse, warehouse.parent / "reports")
    assert 'href="../docs/index.html" title="The dbt documentation site' in html
