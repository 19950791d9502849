"""The KPI summary printed after a run: hand-written marts in, exact lines out."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.lib.summary import kpi_summary

# as_of falls in 2026-11, the last month of kpi_monthly. The three-month window is
# 2026-09..2026-11; 2026-08 lies outside it, and its 100 won deals must not count.
KPI_MONTHLY = [
    # month, won, lost, won_amount, avg_cycle, velocity, open_end, open_amount_end
    ("2026-08-01", 100, 0, 1e6, 10.0, 1.0, 1, 1.0),
    ("2026-09-01", 2, 2, 20_000.0, 30.0, 100.0, 5, 50_000.0),
    ("2026-10-01", 1, 3, 10_000.0, 60.0, 200.0, 4, 45_000.0),
    ("2026-11-01", 1, 1, 30_000.0, 48.0, 250.0, 3, 40_000.0),
]
# Over 2026-09..11: 4 won, 6 lost → win rate 4 / 10 = 40.0%; deal size 60,000 / 4 = 15,000;
# cycle (30 × 2 + 60 × 1 + 48 × 1) / 4 = 168 / 4 = 42.0 days; the rest from 2026-11.
KPI_LINES = [
    "KPI summary (12 opportunities; closed deals over the 3 months to 2026-11):",
    "  win rate             40.0%  (4 won, 6 lost)",
    "  average deal size    15,000",
    "  sales cycle          42.0 days (average, won deals)",
    "  open pipeline        3 deals, 40,000",
    "  pipeline velocity    250 per day",
    "  bottleneck stage     proposal (median 12.5 days)",
]

DURATIONS = [
    # stage, stage_order, median_days, completed_intervals, is_bottleneck. closed_won is not
    # an open stage: its longer median names no bottleneck.
    ("meeting", 3, 3.0, 40, False),
    ("proposal", 4, 12.5, 25, True),
    ("negotiation", 5, 2.0, 10, False),
    ("closed_won", 6, 90.0, 30, False),
]
# 12 opportunities: 4 won in the window with known amounts, 3 open with amounts, 5 lost.
OPPORTUNITIES = [
    *[(f"W{i}", "won", "2026-10-15 00:00:00", 15_000.0, False) for i in range(4)],
    *[(f"O{i}", "open", None, 10_000.0, False) for i in range(3)],
    *[(f"L{i}", "lost", "2026-10-16 00:00:00", 5_000.0, False) for i in range(5)],
]

FORECAST_MONTHLY = [
    # expected_close_month, open_count, open_amount, expected_amount_configured,
    # expected_amount (learned), won_amount_to_date, forecast_amount
    ("2026-11-01", 2, 20_000.0, 6_000.0, 4_500.0, 10_000.0, 14_500.0),
    # No row for 2026-12: nothing is expected to close then.
    ("2027-01-01", 1, 100_000.0, 25_000.0, 31_250.0, 0.0, 31_250.0),
    # Past the three months shown (2026-11, 2026-12, 2027-01): left out.
    ("2027-02-01", 4, 50_000.0, 9_000.0, 8_000.0, 0.0, 8_000.0),
]
# 2026-11: configured 10,000 won + 6,000 expected = 16,000; learned 14,500.
# 2026-12: no row, so 0 and 0 with 0 open deals (not n/a).
# 2027-01: configured 0 + 25,000 = 25,000; learned 31,250.
FORECAST_LINES = [
    "Won-amount forecast by expected close month (configured vs learned probabilities):",
    "  2026-11   configured 16,000   learned 14,500   (won so far 10,000; 2 open deals)",
    "  2026-12   configured      0   learned      0   (won so far 0; 0 open deals)",
    "  2027-01   configured 25,000   learned 31,250   (won so far 0; 1 open deal)",
]

BACKTEST_HEADER = (
    "Backtest at past month-ends (mean absolute % error of the forecast won amount, "
    "months whose deals are at least 90% decided):"
)
NO_VERDICT = "  Too little history yet to say which probabilities to trust."
BACKTEST = [
    # month, method, abs_pct_error[, open_amount, still_open_amount: settled (100, 0) when
    # left out]; 2026-08 had nothing won (actual 0), hence null
    ("2026-08-01", "configured", None),
    ("2026-08-01", "empirical", None),
    ("2026-09-01", "configured", 0.2),
    ("2026-09-01", "empirical", 0.1),
    ("2026-10-01", "configured", 0.4),
    ("2026-10-01", "empirical", 0.3),
]
# configured (0.2 + 0.4) / 2 = 30.0%, learned (0.1 + 0.3) / 2 = 20.0%, each over the two
# months with a percentage; 2026-08's nulls are left out.
BACKTEST_LINES = [
    BACKTEST_HEADER,
    "  configured   30.0% over 2 months",
    "  learned      20.0% over 2 months",
    "  Trust the learned probabilities: their forecasts erred less than the configured ones.",
]


def build_warehouse(
    path: Path,
    forecast: list[tuple] | None = FORECAST_MONTHLY,
    backtest: list[tuple] | None = BACKTEST,
    kpi_monthly: list[tuple] = KPI_MONTHLY,
    durations: list[tuple] = DURATIONS,
    opportunities: list[tuple] = OPPORTUNITIES,
) -> Path:
    """The marts the summary reads, with only the columns it reads; None leaves a
    forecast table out, as in a warehouse built before the forecast marts existed."""
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        "create table marts.kpi_monthly (month date, won_count bigint, lost_count bigint, "
        "won_amount double, avg_sales_cycle_days double, pipeline_velocity_per_day double, "
        "open_count_end bigint, open_amount_end double)"
    )
    con.executemany("insert into marts.kpi_monthly values (?, ?, ?, ?, ?, ?, ?, ?)", kpi_monthly)
    con.execute(
        "create table marts.kpi_stage_duration (stage varchar, stage_order integer, "
        "median_days double, completed_intervals bigint, is_bottleneck boolean)"
    )
    con.executemany("insert into marts.kpi_stage_duration values (?, ?, ?, ?, ?)", durations)
    con.execute("create table marts.fct_stage_history (stage varchar, stage_category varchar)")
    con.execute(
        "insert into marts.fct_stage_history values ('meeting', 'open'), ('proposal', 'open'), "
        "('negotiation', 'open'), ('closed_won', 'won')"
    )
    con.execute(
        "create table marts.fct_opportunities (opportunity_id varchar, status varchar, "
        "closed_at timestamp, amount_reporting double, is_deleted boolean)"
    )
    con.executemany("insert into marts.fct_opportunities values (?, ?, ?, ?, ?)", opportunities)
    if forecast is not None:
        con.execute(
            "create table marts.kpi_forecast_monthly (expected_close_month date, "
            "open_count bigint, open_amount double, expected_amount_configured double, "
            "expected_amount double, won_amount_to_date double, forecast_amount double)"
        )
        if forecast:
            con.executemany(
                "insert into marts.kpi_forecast_monthly values (?, ?, ?, ?, ?, ?, ?)", forecast
            )
    if backtest is not None:
        con.execute(
            "create table marts.kpi_forecast_backtest (month date, method varchar, "
            "abs_pct_error double, open_amount double, still_open_amount double)"
        )
        if backtest:
            rows = [row if len(row) == 5 else (*row, 100.0, 0.0) for row in backtest]
            con.executemany("insert into marts.kpi_forecast_backtest values (?, ?, ?, ?, ?)", rows)
    con.close()
    return path


def warehouse_line(path: Path) -> str:
    return f"Warehouse: {path}  (query the marts.* tables with any DuckDB client)"


def test_summary_with_forecast_and_backtest(tmp_path):
    warehouse = build_warehouse(tmp_path / "w.duckdb")
    assert kpi_summary(warehouse).splitlines() == [
        *KPI_LINES,
        *FORECAST_LINES,
        *BACKTEST_LINES,
        warehouse_line(warehouse),
    ]


def test_an_older_warehouse_without_the_forecast_marts_still_gets_its_summary(tmp_path):
    warehouse = build_warehouse(tmp_path / "w.duckdb", forecast=None, backtest=None)
    assert kpi_summary(warehouse).splitlines() == [*KPI_LINES, warehouse_line(warehouse)]


def test_each_forecast_mart_is_skipped_on_its_own(tmp_path):
    only_backtest = build_warehouse(tmp_path / "a.duckdb", forecast=None)
    assert kpi_summary(only_backtest).splitlines() == [
        *KPI_LINES,
        *BACKTEST_LINES,
        warehouse_line(only_backtest),
    ]
    only_forecast = build_warehouse(tmp_path / "b.duckdb", backtest=None)
    assert kpi_summary(only_forecast).splitlines() == [
        *KPI_LINES,
        *FORECAST_LINES,
        warehouse_line(only_forecast),
    ]


def test_an_empty_forecast_shows_zero_for_every_month(tmp_path):
    warehouse = build_warehouse(tmp_path / "w.duckdb", forecast=[])
    lines = kpi_summary(warehouse).splitlines()
    assert lines[len(KPI_LINES) + 1 : len(KPI_LINES) + 4] == [
        "  2026-11   configured 0   learned 0   (won so far 0; 0 open deals)",
        "  2026-12   configured 0   learned 0   (won so far 0; 0 open deals)",
        "  2027-01   configured 0   learned 0   (won so far 0; 0 open deals)",
    ]


@pytest.mark.parametrize(
    ("backtest", "expected"),
    [
        pytest.param(
            [],
            ["  n/a (no settled past month-end to test against yet)", NO_VERDICT],
            id="empty",
        ),
        pytest.param(
            [("2026-10-01", "configured", None), ("2026-10-01", "empirical", None)],
            ["  n/a (no deal open at a settled past month-end has been won yet)", NO_VERDICT],
            id="nothing-won-since",
        ),
        pytest.param(
            # 2026-10 still has 11 of its 100 open at as_of (more than 10%): left out, so
            # configured 0.2 and learned 0.1 come from 2026-09 alone. 2026-11 with exactly
            # 10 of 100 still open is settled: configured (0.2 + 0.4) / 2 = 30.0%, learned
            # (0.1 + 0.3) / 2 = 20.0%.
            [
                ("2026-09-01", "configured", 0.2),
                ("2026-09-01", "empirical", 0.1),
                ("2026-10-01", "configured", 0.9, 100.0, 11.0),
                ("2026-10-01", "empirical", 0.9, 100.0, 11.0),
                ("2026-11-01", "configured", 0.4, 100.0, 10.0),
                ("2026-11-01", "empirical", 0.3, 100.0, 10.0),
            ],
            BACKTEST_LINES[1:],
            id="unsettled-month-left-out",
        ),
        pytest.param(
            [("2026-10-01", "configured", 0.9, 100.0, 50.0)],
            ["  n/a (no settled past month-end to test against yet)", NO_VERDICT],
            id="only-unsettled",
        ),
        pytest.param(
            # configured (0.1 + 0.3) / 2 = 20.0% < learned 0.5 = 50.0% (one month).
            [
                ("2026-09-01", "configured", 0.1),
                ("2026-10-01", "configured", 0.3),
                ("2026-10-01", "empirical", 0.5),
            ],
            [
                "  configured   20.0% over 2 months",
                "  learned      50.0% over 1 month",
                "  Trust the configured probabilities: their forecasts erred less than the "
                "learned ones.",
            ],
            id="configured-better",
        ),
        pytest.param(
            # configured (0.2 + 0.4) / 2 = 30.0%, learned (0.1 + 0.5) / 2 = 30.0%: a tie.
            [
                ("2026-09-01", "configured", 0.2),
                ("2026-10-01", "configured", 0.4),
                ("2026-09-01", "empirical", 0.1),
                ("2026-10-01", "empirical", 0.5),
            ],
            [
                "  configured   30.0% over 2 months",
                "  learned      30.0% over 2 months",
                "  A tie at 30.0%: neither set of probabilities forecast better.",
            ],
            id="tie",
        ),
        pytest.param(
            # 0.3001 and 0.2999 both print as 30.0%: no visible reason to prefer one.
            [("2026-10-01", "configured", 0.3001), ("2026-10-01", "empirical", 0.2999)],
            [
                "  configured   30.0% over 1 month",
                "  learned      30.0% over 1 month",
                "  A tie at 30.0%: neither set of probabilities forecast better.",
            ],
            id="tie-as-printed",
        ),
        pytest.param(
            [("2026-10-01", "configured", 0.25)],
            [
                "  configured   25.0% over 1 month",
                "  learned     n/a (not in the backtest)",
                NO_VERDICT,
            ],
            id="one-method-missing",
        ),
    ],
)
def test_backtest_lines(tmp_path, backtest, expected):
    warehouse = build_warehouse(tmp_path / "w.duckdb", backtest=backtest)
    lines = kpi_summary(warehouse).splitlines()
    start = len(KPI_LINES) + len(FORECAST_LINES)
    assert lines[start:-1] == [BACKTEST_HEADER, *expected]


def kpi_lines(warehouse: Path) -> list[str]:
    return kpi_summary(warehouse).splitlines()[: len(KPI_LINES)]


def test_a_historical_export_is_summarised_over_its_last_months_with_closed_deals(tmp_path):
    # Closes stop in 2026-07; as_of is in 2026-11. Window 2026-05..07 (05 has no row):
    # won 2 + 1 = 3, lost 1 + 1 = 2 → 60.0%; deal size 30,000 / 3 = 10,000; cycle
    # (10 × 2 + 20 × 1) / 3 = 13.3 days. Nothing open in 2026-11; its velocity is null.
    kpi_monthly = [
        ("2026-06-01", 2, 1, 20_000.0, 10.0, 5.0, 1, 7_000.0),
        ("2026-07-01", 1, 1, 10_000.0, 20.0, 6.0, 0, 0.0),
        *[(f"2026-{m:02d}-01", 0, 0, 0.0, None, None, 0, 0.0) for m in (8, 9, 10, 11)],
    ]
    opportunities = [
        *[(f"W{i}", "won", "2026-06-10 00:00:00", 10_000.0, False) for i in range(3)],
        *[(f"L{i}", "lost", "2026-07-10 00:00:00", 1_000.0, False) for i in range(2)],
    ]
    warehouse = build_warehouse(
        tmp_path / "w.duckdb", kpi_monthly=kpi_monthly, opportunities=opportunities
    )
    assert kpi_lines(warehouse)[:6] == [
        "KPI summary (5 opportunities; closed deals over the 3 months to 2026-07, "
        "the last with closed deals):",
        "  win rate             60.0%  (3 won, 2 lost)",
        "  average deal size    10,000",
        "  sales cycle          13.3 days (average, won deals)",
        "  open pipeline        0 deals, 0",
        "  pipeline velocity    n/a per day",
    ]


def test_unknown_amounts_print_as_n_a_not_zero(tmp_path):
    # The marts add up missing amounts as nothing (won_amount 0, open_amount_end 0); with no
    # known amount among the won deals of the window or the open deals, the summary says
    # n/a for the deal size, the velocity built on it and the open amount.
    kpi_monthly = [("2026-11-01", 4, 6, 0.0, 42.0, 0.0, 3, 0.0)]
    opportunities = [
        *[(f"W{i}", "won", "2026-11-02 00:00:00", None, False) for i in range(4)],
        *[(f"O{i}", "open", None, None, False) for i in range(3)],
        # A deleted deal's amount is not a known amount of the pipeline.
        ("D", "open", None, 99.0, True),
    ]
    warehouse = build_warehouse(
        tmp_path / "w.duckdb", kpi_monthly=kpi_monthly, opportunities=opportunities
    )
    assert kpi_lines(warehouse)[1:6] == [
        "  win rate             40.0%  (4 won, 6 lost)",
        "  average deal size    n/a",
        "  sales cycle          42.0 days (average, won deals)",
        "  open pipeline        3 deals, n/a",
        "  pipeline velocity    n/a per day",
    ]


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        pytest.param(
            # proposal has the top median but only 9 completed intervals: meeting (40)
            # and negotiation (10) are the candidates; meeting's 3.0 is the top.
            [("meeting", 3, 3.0, 40, False), ("proposal", 4, 12.5, 9, True),
             ("negotiation", 5, 2.0, 10, False)],
            "meeting (median 3.0 days)",
            id="too-few-intervals-skipped",
        ),
        pytest.param(
            [("meeting", 3, 3.0, 9, False), ("proposal", 4, 12.5, 0, True)],
            "n/a (no open stage has 10 completed intervals yet)",
            id="none-enough",
        ),
        pytest.param(
            [("meeting", 3, 7.0, 40, True), ("proposal", 4, 7.0, 25, False),
             ("negotiation", 5, 2.0, 10, False)],
            "a tie between meeting, proposal (median 7.0 days each)",
            id="tie",
        ),
    ],
)  # fmt: skip
def test_bottleneck_needs_enough_intervals_and_names_a_tie(tmp_path, durations, expected):
    warehouse = build_warehouse(tmp_path / "w.duckdb", durations=durations)
    assert kpi_lines(warehouse)[6] == f"  bottleneck stage     {expected}"


def test_the_quality_line_names_the_first_quarantined_rows_by_the_users_files(tmp_path):
    """Seven rows quarantined in run r1: the line names the first five in the order a
    user reads the files (batch, export file or landing file, line), by the export's own
    file and line where the row came from one, and counts the rest."""
    from ingestion.warehouse import connect, create_quality_tables
    from orchestration.lib.summary import quality_summary

    path = tmp_path / "w.duckdb"
    con = connect(path)
    create_quality_tables(con)
    con.execute(
        "insert into quality.ingestion_log (run_id, batch_id, quarantined_rows, status) "
        "values ('r1', 'b1', 6, 'published'), ('r1', 'b2', 1, 'published'), "
        "('r0', 'b0', 1, 'published')"
    )
    quarantined = [
        # batch, source file, row, export file, export line, export column, run
        ("b1", "b1/stage_changes.csv", 1, "deals.csv", "17", "Won on", "r1"),
        ("b1", "b1/opportunities.csv", 4, "deals.csv", "9", None, "r1"),
        ("b1", "b1/opportunities.csv", 2, "deals.csv", "10", None, "r1"),
        ("b1", "b1/stage_changes.csv", 3, "deal_changes.csv", "4", None, "r1"),
        ("b1", "b1/activities.csv", 1, "activity.csv", "record 2 (line 3 ...)", None, "r1"),
        ("b1", "b1/users.csv", 2, "users.csv", "3", None, "r1"),
        ("b2", "b2/opportunities.csv", 5, None, None, None, "r1"),  # a canonical file
        ("b0", "b0/opportunities.csv", 1, None, None, None, "r0"),  # another run's
    ]
    con.executemany(
        "insert into quality.quarantine (batch_id, source_file, source_row, export_file, "
        "export_line, export_column, run_id) values (?, ?, ?, ?, ?, ?, ?)",
        quarantined,
    )
    con.close()
    # b1 by file name: activity.csv, deal_changes.csv, deals.csv (9, 10, 17), users.csv;
    # line 10 after line 9 (numbers, not text); b2's row and users.csv are the 2 more.
    assert quality_summary(path, "r1") == (
        "7 row(s) quarantined with their reasons (activity.csv record 2 (line 3 ...), "
        "deal_changes.csv:4, deals.csv:9, deals.csv:10, deals.csv:17 (column Won on) and 2 "
        "more): select * from quality.quarantine where run_id = 'r1'"
    )
    assert quality_summary(path, "r2") is None  # nothing held back in that run
