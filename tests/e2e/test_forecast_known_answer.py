"""Known-answer test for the pipeline-dynamics and forecast marts: every expected value
below was computed by hand from the definitions in docs/kpis.md (shared definitions "closed_at",
"Open at a moment t", "Stage held at t", "Reached", and the forecast section), not from
the SQL.

Fixture tests/fixtures/forecast_known_answer: one canonical `crm` batch
(landing/2026-06-15T1200) and config.yaml (forecast: lookback_days 60, min_closed_deals 3).
as_of = 2026-06-15T12:00:00Z. All timestamps 2026, UTC, 00:00 unless a time is given.
All amounts USD (amount_reporting = amount). Default stage map: prospecting .05 (1),
qualification .10 (2), meeting .20 (3), proposal .50 (4), negotiation .80 (5), closed_won
1.0 (6), closed_lost 0.0 (7), onboarding (8, post-sale) 1.0.

| opp | owner | created | amount | stage changes (canonical) | closed_at, status | reached | case |
| --- | --- | --- | --- | --- | --- | --- | --- |
| O1 | u1 | 01-05 | 1000 | prospecting 01-05, qualification 01-12, proposal 01-20, closed_won 01-28 | 01-28 won | all | first day of the snapshot |
| O2 | u1 | 01-10 | 2000 | prospecting 01-10, meeting 01-25, closed_lost 02-20, proposal 03-10, negotiation 05-01 00:00 | null, open | 5 | lost, revived, open at as_of; holds closed_lost 02-20..03-09; negotiation at a month-boundary midnight |
| O3 | u2 | 01-15 | 3000 | prospecting 01-15, qualification 02-01 00:00, closed_lost 03-05, qualification 03-20, negotiation 04-10, closed_won 05-20, onboarding 06-01 | 05-20 won | all | lost, revived, won: closes at the win (not at the loss, not at onboarding) |
| O4 | u1 | 02-02 | 1500 | prospecting 02-02, proposal 02-15, closed_lost 03-10, closed_won 04-02 00:00 | 04-02 won | all | closed_lost → closed_won directly: closes at closed_won; exactly at t5 − 60 d |
| O5 | u2 | 02-10 | 2500 | prospecting 02-10, meeting 02-25, closed_won 03-15, closed_lost 04-20 | 04-20 lost | 3 | won then lost: closes at the loss; holds closed_won (weight 1) at 04-01 |
| O6 | u2 | 03-20 | 800 | meeting 04-10, proposal 05-10 | null, open | 4 | first change after created_at: holds meeting from 03-20; close_date 06-05 overdue |
| O7 | u1 | 03-12 | 700 | closed_lost 03-12 (= created_at) | 03-12 lost | none | closed_at ≤ created_at: never open, excluded_count |
| O8 | u2 | 02-05 | 9000 | prospecting 02-05; is_deleted | - | - | soft-deleted: in no mart here but fct_opportunities |
| O9 | u1 | 04-05 | 600 | prospecting 04-05, qualification 04-25, proposal 06-20 (after as_of: ignored) | null, open | 2 | no close_date |
| O10 | u2 | 05-05 | 1200 | prospecting 05-05, proposal 06-15 12:00 (= as_of) | null, open | 4 | stage change at as_of: holds proposal at as_of, prospecting at 06-15 00:00 |
| O11 | u1 | 04-20 | 4000 | prospecting 04-20, negotiation 05-15, closed_won 06-15 12:00 (= as_of) | 06-15 12:00 won | all | won at as_of: not open at as_of, open at 06-15 00:00, inside the as_of window |
| O12 | u2 | 06-15 12:00 | 500 | prospecting 06-15 12:00 | null, open | 1 | created at as_of: open at as_of; close_date = as_of's date (not overdue) |
| O13 | u1 | 03-25 | 900 | prospecting 03-25, closed_lost 04-16 12:00 | 04-16 12:00 lost | 1 | closed exactly at as_of − 60 d: inside the as_of window |
| O14 | u2 | 03-03 | 1100 | prospecting 03-03, meeting 03-20, closed_won 04-16 06:00 | 04-16 06:00 won | all | closed just before as_of − 60 d: outside the as_of window |
| O15 | u1 | 03-01 00:00 | 1300 | prospecting 03-01, qualification 03-15, closed_lost 04-01 12:00 | 04-01 12:00 lost | 2 | created at a month boundary; closed just before t5 − 60 d |
| O16 | u2 | 05-10 12:00 | 1000 | none; opportunity row says meeting | null, open | 3 | no stage change: meeting from created_at |
| O17 | u1 | 04-08 | 1400 | prospecting 04-08, meeting 04-18, proposal 05-05, closed_lost 05-25 | 05-25 lost | 4 | |

"reached" = highest open stage_order ever entered (won = all five). Month ends (t = first
instant of the next month): t1 02-01, t2 03-01, t3 04-01, t4 05-01, t5 06-01; the month of
as_of ends at as_of (open at as_of = created by as_of and status open; an event at as_of
has happened). Open at t = created_at < t and (closed_at null or closed_at >= t); stage
held at t = latest interval entered before t, else the first interval's stage.

Open deals and the stage each holds (configured weight × amount):

| t | O2 | O3 | O4 | O5 | O6 | O9 | O10 | O11 | O12 | O13 | O14 | O15 | O16 | O17 | count, amount, weighted |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| t1 02-01 | meet 400 | prosp 150 (qual at t not yet) | | | | | | | | | | | | | 2, 5000, 550 |
| t2 03-01 | c_lost 0 | qual 300 | prop 750 | meet 500 | | | | | | | | (created at t: no) | | | 4, 9000, 1550 |
| t3 04-01 | prop 1000 | qual 300 | c_lost 0 | c_won 2500 | meet 160 | | | | | prosp 45 | meet 220 | qual 130 | | | 8, 13100, 4355 |
| t4 05-01 | prop 1000 (neg at t not yet) | neg 2400 | | | meet 160 | qual 60 | | prosp 200 | | | | | | meet 280 | 6, 11800, 4100 |
| t5 06-01 | neg 1600 | | | | prop 400 | qual 60 | prosp 60 | neg 3200 | | | | | meet 200 | | 6, 9600, 5520 |
| as_of | neg 1600 | | | | prop 400 | qual 60 | prop 600 | (won) | prosp 25 | | | | meet 200 | | 6, 6100, 2885 |

Learning windows (closed_at in [t − 60 d, t); at as_of [as_of − 60 d, as_of]):

| t | window | final closures in it (status, reached) | reached counts 1..5 (won) |
| --- | --- | --- | --- |
| t1 | [2025-12-03, 02-01) | O1 W all | 1 (1) each: configured |
| t2 | [2025-12-31, 03-01) | O1 W all | 1 (1) each: configured |
| t3 | [01-31, 04-01) | O7 L none | 0 each: configured |
| t4 | [03-02, 05-01) | O4 W all, O5 L 3, O7 L -, O13 L 1, O14 W all, O15 L 2 | 5 (2) .4, 4 (2) .5, 3 (2) 2/3, 2 → .5 conf, 2 → .8 conf |
| t5 | [04-02, 06-01) | O4 W (exactly at the start), O5 L 3, O13 L 1, O14 W, O3 W, O17 L 4; not O15 (04-01 12:00) | 6 (3) .5, 5 (3) .6, 5 (3) .6, 4 (3) .75, 3 (3) 1.0 |
| as_of | [04-16 12:00, 06-15 12:00] | O13 L 1 (exactly at the start), O5 L 3, O3 W, O17 L 4, O11 W (at as_of); not O14 (04-16 06:00) | 5 (2) .4, 4 (2) .5, 4 (2) .5, 3 (2) 2/3, 2 → .8 conf |

The windows of t2 and t3 stay below min_closed_deals even if the deals that were closed at
t and later reopened (O2 at t2; O4, O5 at t3) were counted, so the backtest does not
depend on that reading; docs/kpis.md's closed_at is the final one, which is what is used here.

Actual outcome at as_of of the deals open at each month end: t1 O3 won (3000), O2 open
(2000); t2 O3 + O4 won (4500), O2 open; t3 O3 + O4 + O14 won (5600), O2 + O6 open (2800);
t4 O3 + O11 won (7000), O2 + O6 + O9 open (3400); t5 O11 won (4000), O2 + O6 + O9 + O10 +
O16 open (5600).
"""  # noqa: E501

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pipeline_helpers as helpers
import pytest
from pipeline_helpers import build_known_answer, query

FIXTURE = Path(__file__).parents[1] / "fixtures" / "forecast_known_answer"
AS_OF = "2026-06-15T12:00:00Z"

pytestmark = pytest.mark.slow

JAN, FEB, MAR, APR, MAY, JUN, JUL, AUG = (date(2026, m, 1) for m in range(1, 9))
OPEN_STAGES = [
    ("prospecting", 1),
    ("qualification", 2),
    ("meeting", 3),
    ("proposal", 4),
    ("negotiation", 5),
]


def ts(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour)


def d(month: int, day: int) -> date:
    return date(2026, month, day)


# Money is summed as decimal(38, 9) so reruns are byte-identical: each amount x probability
# is rounded to 1e-9 first (800 x 2/3 = 533.333333333), hence money compared to 1e-8.
MONEY_TOL = 1e-8


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_known_answer(
        tmp_path_factory.mktemp("forecast_known_answer"), FIXTURE / "landing", AS_OF,
        "--config", str(FIXTURE / "config.yaml"),
    )  # fmt: skip


def check_rows(*args, **kwargs) -> None:
    helpers.check_rows(*args, abs_tol=MONEY_TOL, **kwargs)


def test_fct_opportunities_closed_at_and_status(built):
    # closed_at = entry of the first interval of the last unbroken run of the final
    # outcome (won = won or post-sale stage, lost = lost stage).
    # fmt: off
    expected = [
        ("O1", ts(1, 28), "won", "closed_won"),
        ("O2", None, "open", "negotiation"),       # lost 02-20, revived 03-10
        ("O3", ts(5, 20), "won", "onboarding"),    # won run closed_won 05-20 → onboarding
        ("O4", ts(4, 2), "won", "closed_won"),     # closed_lost 03-10 → closed_won 04-02
        ("O5", ts(4, 20), "lost", "closed_lost"),  # closed_won 03-15 → closed_lost 04-20
        ("O6", None, "open", "proposal"),
        ("O7", ts(3, 12), "lost", "closed_lost"),  # closed at its created_at
        ("O8", None, "open", "prospecting"),       # soft-deleted (flagged only)
        ("O9", None, "open", "qualification"),     # proposal 06-20 is after as_of
        ("O10", None, "open", "proposal"),         # proposal at as_of has happened
        ("O11", ts(6, 15, 12), "won", "closed_won"),  # won at as_of
        ("O12", None, "open", "prospecting"),      # created at as_of
        ("O13", ts(4, 16, 12), "lost", "closed_lost"),
        ("O14", ts(4, 16, 6), "won", "closed_won"),
        ("O15", ts(4, 1, 12), "lost", "closed_lost"),
        ("O16", None, "open", "meeting"),          # no stage change
        ("O17", ts(5, 25), "lost", "closed_lost"),
    ]
    # fmt: on
    check_rows(
        built,
        "fct_opportunities",
        ["opportunity_id", "closed_at", "status", "current_stage"],
        1,
        expected,
        all_columns=False,
    )


def test_kpi_monthly_pipeline_end(built):
    # Open at the month end (table in the module docstring); June at as_of.
    expected = [
        (JAN, 2, 5000.0, 550.0),  # O2 meeting 400, O3 prospecting 150
        (FEB, 4, 9000.0, 1550.0),  # O2 closed_lost 0, O3 300, O4 750, O5 500
        # O2 1000, O3 300, O4 closed_lost 0, O5 closed_won 2500, O6 160, O13 45, O14 220,
        # O15 130
        (MAR, 8, 13100.0, 4355.0),
        (APR, 6, 11800.0, 4100.0),  # O2 1000, O3 2400, O6 160, O9 60, O11 200, O17 280
        (MAY, 6, 9600.0, 5520.0),  # O2 1600, O6 400, O9 60, O10 60, O11 3200, O16 200
        (JUN, 6, 6100.0, 2885.0),  # O2 1600, O6 400, O9 60, O10 600, O12 25, O16 200
    ]
    check_rows(
        built,
        "kpi_monthly",
        ["month", "open_count_end", "open_amount_end", "weighted_pipeline_end"],
        1,
        expected,
        all_columns=False,
    )


KPI_PIPELINE_WATERFALL_COLUMNS = [
    "month",
    "opening_count",
    "opening_amount",
    "created_count",
    "created_amount",
    "won_count",
    "won_amount",
    "lost_count",
    "lost_amount",
    "closing_count",
    "closing_amount",
    "excluded_count",
]


def test_kpi_pipeline_waterfall(built):
    # Only deals open at some moment count (O7 is never open: excluded_count in March;
    # O8 is deleted). opening + created - won - lost = closing in every row.
    # fmt: off
    expected = [
        # created O1 1000, O2 2000, O3 3000; won O1 (01-28).
        (JAN, 0, 0.0, 3, 6000.0, 1, 1000.0, 0, 0.0, 2, 5000.0, 0),
        # created O4 1500, O5 2500; O2's loss 02-20 is not a close (revived: closed_at null).
        (FEB, 2, 5000.0, 2, 4000.0, 0, 0.0, 0, 0.0, 4, 9000.0, 0),
        # created O15 1300 (03-01 00:00), O14 1100, O6 800, O13 900; O7 excluded.
        (MAR, 4, 9000.0, 4, 4100.0, 0, 0.0, 0, 0.0, 8, 13100.0, 1),
        # created O9 600, O17 1400, O11 4000; won O4 1500 (04-02), O14 1100 (04-16 06:00);
        # lost O15 1300 (04-01 12:00), O13 900 (04-16 12:00), O5 2500 (04-20).
        (APR, 8, 13100.0, 3, 6000.0, 2, 2600.0, 3, 4700.0, 6, 11800.0, 0),
        # created O10 1200, O16 1000; won O3 3000; lost O17 1400.
        (MAY, 6, 11800.0, 2, 2200.0, 1, 3000.0, 1, 1400.0, 6, 9600.0, 0),
        # created O12 500 (at as_of); won O11 4000 (at as_of); closing = open at as_of.
        (JUN, 6, 9600.0, 1, 500.0, 1, 4000.0, 0, 0.0, 6, 6100.0, 0),
    ]
    # fmt: on
    check_rows(built, "kpi_pipeline_waterfall", KPI_PIPELINE_WATERFALL_COLUMNS, 1, expected)


KPI_STAGE_WIN_PROBABILITY_COLUMNS = [
    "stage",
    "stage_order",
    "closed_reached_count",
    "won_count",
    "empirical_probability",
    "configured_probability",
    "probability_used",
    "probability_source",
]


def test_kpi_stage_win_probability(built):
    # Window [04-16 12:00, 06-15 12:00] (includes as_of): O13 L (reached 1, exactly at
    # the start), O5 L (3), O3 W, O17 L (4), O11 W (at as_of). O14 (04-16 06:00) and O4
    # (04-02) are before the window.
    # fmt: off
    expected = [
        ("prospecting", 1, 5, 2, 2 / 5, 0.05, 2 / 5, "empirical"),    # O13 O5 O3 O17 O11
        ("qualification", 2, 4, 2, 2 / 4, 0.10, 2 / 4, "empirical"),  # O5 O3 O17 O11
        ("meeting", 3, 4, 2, 2 / 4, 0.20, 2 / 4, "empirical"),        # O5 O3 O17 O11
        ("proposal", 4, 3, 2, 2 / 3, 0.50, 2 / 3, "empirical"),       # O3 O17 O11
        ("negotiation", 5, 2, 2, None, 0.80, 0.80, "configured"),     # O3 O11: 2 < 3
    ]
    # fmt: on
    check_rows(built, "kpi_stage_win_probability", KPI_STAGE_WIN_PROBABILITY_COLUMNS, 1, expected)


FCT_FORECAST_COLUMNS = [
    "opportunity_id",
    "owner_id",
    "stage",
    "stage_order",
    "amount_reporting",
    "close_date",
    "expected_close_month",
    "is_overdue",
    "probability_configured",
    "probability_used",
    "probability_source",
    "expected_amount_configured",
    "expected_amount",
]


def test_fct_forecast(built):
    # Open at as_of: created by as_of and status open (O12 created at as_of is; O11 won at
    # as_of is not). Probabilities used: kpi_stage_win_probability above.
    # fmt: off
    expected = [
        # close date in a later month; negotiation → configured .8
        ("O2", "u1", "negotiation", 5, 2000.0, d(7, 15), JUL, False,
         0.80, 0.80, "configured", 1600.0, 1600.0),
        # overdue (06-05 < 06-15) → month of as_of
        ("O6", "u2", "proposal", 4, 800.0, d(6, 5), JUN, True,
         0.50, 2 / 3, "empirical", 400.0, 800 * (2 / 3)),
        # no close_date → month of as_of; is_overdue = null < date → null
        ("O9", "u1", "qualification", 2, 600.0, None, JUN, None,
         0.10, 0.5, "empirical", 60.0, 300.0),
        # proposal entered exactly at as_of: held at as_of
        ("O10", "u2", "proposal", 4, 1200.0, d(8, 20), AUG, False,
         0.50, 2 / 3, "empirical", 600.0, 1200 * (2 / 3)),
        # created at as_of; close_date = as_of's date: not overdue (strictly before)
        ("O12", "u2", "prospecting", 1, 500.0, d(6, 15), JUN, False,
         0.05, 0.4, "empirical", 25.0, 200.0),
        # no stage change: meeting from created_at
        ("O16", "u2", "meeting", 3, 1000.0, d(7, 31), JUL, False,
         0.20, 0.5, "empirical", 200.0, 500.0),
    ]
    # fmt: on
    check_rows(built, "fct_forecast", FCT_FORECAST_COLUMNS, 1, expected)


KPI_FORECAST_MONTHLY_COLUMNS = [
    "expected_close_month",
    "open_count",
    "open_amount",
    "expected_amount_configured",
    "expected_amount",
    "won_amount_to_date",
    "forecast_amount",
]


def test_kpi_forecast_monthly(built):
    # fmt: off
    expected = [
        # O6, O9, O12; won in June up to as_of: O11 4000 (closed at as_of).
        (JUN, 3, 1900.0, 485.0, 800 * (2 / 3) + 300 + 200, 4000.0,
         4000 + 800 * (2 / 3) + 300 + 200),
        # O2, O16; no won amount outside the month of as_of.
        (JUL, 2, 3000.0, 1800.0, 2100.0, 0.0, 2100.0),
        # O10
        (AUG, 1, 1200.0, 600.0, 1200 * (2 / 3), 0.0, 1200 * (2 / 3)),
    ]
    # fmt: on
    check_rows(built, "kpi_forecast_monthly", KPI_FORECAST_MONTHLY_COLUMNS, 1, expected)


KPI_FORECAST_BACKTEST_COLUMNS = [
    "month",
    "method",
    "open_count",
    "open_amount",
    "predicted_won_amount",
    "actual_won_amount",
    "still_open_amount",
    "error_amount",
    "abs_pct_error",
]


def test_kpi_forecast_backtest(built):
    # Months Jan–May (June is the month of as_of), t = month end. configured = the
    # weighted pipeline at t; empirical = probabilities learned before t (docstring),
    # configured fallback, configured weight for a held closed stage.
    t4_empirical = (
        1000  # O2 proposal: only 2 closed deals reached it → configured .5
        + 2400  # O3 negotiation: configured .8
        + 800 * (2 / 3)  # O6 meeting: 2/3
        + 600 * 0.5  # O9 qualification: .5
        + 4000 * 0.4  # O11 prospecting: .4
        + 1400 * (2 / 3)  # O17 meeting: 2/3
    )  # = 5300 + 4400/3 = 20300/3; error = -700/3, abs_pct_error = 1/30
    t5_empirical = (
        2000 * 1.0  # O2 negotiation 3/3
        + 800 * 0.75  # O6 proposal 3/4
        + 600 * 0.6  # O9 qualification 3/5
        + 1200 * 0.5  # O10 prospecting 3/6
        + 4000 * 1.0  # O11 negotiation 3/3
        + 1000 * 0.6  # O16 meeting 3/5
    )  # = 8160
    # fmt: off
    expected = [
        # t1: O2 (open at as_of), O3 (won 3000). Nothing learned (1 closed deal).
        (JAN, "configured", 2, 5000.0, 550.0, 3000.0, 2000.0, -2450.0, 2450 / 3000),
        (JAN, "empirical", 2, 5000.0, 550.0, 3000.0, 2000.0, -2450.0, 2450 / 3000),
        # t2: O2 holds closed_lost (0); O3, O4 won later; O5 lost later.
        (FEB, "configured", 4, 9000.0, 1550.0, 4500.0, 2000.0, -2950.0, 2950 / 4500),
        (FEB, "empirical", 4, 9000.0, 1550.0, 4500.0, 2000.0, -2950.0, 2950 / 4500),
        # t3: O5 holds closed_won (1.0 in both methods) but is lost at as_of; O4 holds
        # closed_lost (0) but is won; won O3 3000, O4 1500, O14 1100; open O2, O6.
        (MAR, "configured", 8, 13100.0, 4355.0, 5600.0, 2800.0, -1245.0, 1245 / 5600),
        (MAR, "empirical", 8, 13100.0, 4355.0, 5600.0, 2800.0, -1245.0, 1245 / 5600),
        # t4: O2's negotiation at 05-01 00:00 is not seen; O3 (won 05-20) and O11 (won at
        # as_of) are open at t.
        (APR, "configured", 6, 11800.0, 4100.0, 7000.0, 3400.0, -2900.0, 2900 / 7000),
        (APR, "empirical", 6, 11800.0, t4_empirical, 7000.0, 3400.0,
         t4_empirical - 7000, (7000 - t4_empirical) / 7000),  # -700/3, 1/30
        # t5: won O11 4000; open O2, O6, O9, O10, O16.
        (MAY, "configured", 6, 9600.0, 5520.0, 4000.0, 5600.0, 1520.0, 1520 / 4000),
        (MAY, "empirical", 6, 9600.0, t5_empirical, 4000.0, 5600.0,
         t5_empirical - 4000, (t5_empirical - 4000) / 4000),  # 4160, 1.04
    ]
    # fmt: on
    check_rows(built, "kpi_forecast_backtest", KPI_FORECAST_BACKTEST_COLUMNS, 2, expected)


FCT_PIPELINE_DAILY_SNAPSHOT_COLUMNS = [
    "snapshot_date",
    "stage",
    "stage_order",
    "open_count",
    "open_amount",
    "weighted_amount",
]

# Day → {stage: (open_count, open_amount, weighted_amount)}; open stages not listed are
# zero rows. Day d is taken at t = d + 1 day 00:00, the day of as_of at as_of.
SNAPSHOT_DAYS: dict[date, dict[str, tuple[int, float, float]]] = {
    # first day (first created_at O1 01-05): O1 prospecting
    d(1, 5): {"prospecting": (1, 1000.0, 50.0)},
    # = kpi_monthly Jan: O3's qualification at 02-01 00:00 not yet in effect
    d(1, 31): {"prospecting": (1, 3000.0, 150.0), "meeting": (1, 2000.0, 400.0)},
    # O3 now qualification; O4 (created 02-02 00:00) not yet open
    d(2, 1): {"qualification": (1, 3000.0, 300.0), "meeting": (1, 2000.0, 400.0)},
    # O2's closed_lost at 02-20 00:00 not yet in effect: no closed_lost row
    d(2, 19): {
        "prospecting": (1, 2500.0, 125.0),  # O5
        "qualification": (1, 3000.0, 300.0),  # O3
        "meeting": (1, 2000.0, 400.0),  # O2
        "proposal": (1, 1500.0, 750.0),  # O4
    },
    # the revived O2 holds closed_lost (weight 0)
    d(2, 20): {
        "prospecting": (1, 2500.0, 125.0),
        "qualification": (1, 3000.0, 300.0),
        "proposal": (1, 1500.0, 750.0),
        "closed_lost": (1, 2000.0, 0.0),
    },
    # = kpi_monthly Feb; O15 (created 03-01 00:00) not open
    d(2, 28): {
        "qualification": (1, 3000.0, 300.0),
        "meeting": (1, 2500.0, 500.0),  # O5
        "proposal": (1, 1500.0, 750.0),
        "closed_lost": (1, 2000.0, 0.0),
    },
    # O2 revived (proposal); O3, O4 hold closed_lost; O7 (closed at creation) never open
    d(3, 12): {
        "prospecting": (2, 2400.0, 120.0),  # O14 1100, O15 1300
        "meeting": (1, 2500.0, 500.0),  # O5
        "proposal": (1, 2000.0, 1000.0),  # O2
        "closed_lost": (2, 4500.0, 0.0),  # O3 3000, O4 1500
    },
    # = kpi_monthly Mar
    d(3, 31): {
        "prospecting": (1, 900.0, 45.0),  # O13
        "qualification": (2, 4300.0, 430.0),  # O3 3000, O15 1300
        "meeting": (2, 1900.0, 380.0),  # O6 800 (before its first change), O14 1100
        "proposal": (1, 2000.0, 1000.0),  # O2
        "closed_won": (1, 2500.0, 2500.0),  # O5 (lost later)
        "closed_lost": (1, 1500.0, 0.0),  # O4 (won later)
    },
    # O15 closed 04-01 12:00; O4 (closed_won at 04-02 00:00) still open on closed_lost
    d(4, 1): {
        "prospecting": (1, 900.0, 45.0),
        "qualification": (1, 3000.0, 300.0),
        "meeting": (2, 1900.0, 380.0),
        "proposal": (1, 2000.0, 1000.0),
        "closed_won": (1, 2500.0, 2500.0),
        "closed_lost": (1, 1500.0, 0.0),
    },
    # = kpi_monthly Apr: O2 still proposal (negotiation at 05-01 00:00)
    d(4, 30): {
        "prospecting": (1, 4000.0, 200.0),  # O11
        "qualification": (1, 600.0, 60.0),  # O9
        "meeting": (2, 2200.0, 440.0),  # O6 800, O17 1400
        "proposal": (1, 2000.0, 1000.0),  # O2
        "negotiation": (1, 3000.0, 2400.0),  # O3
    },
    d(5, 1): {
        "prospecting": (1, 4000.0, 200.0),
        "qualification": (1, 600.0, 60.0),
        "meeting": (2, 2200.0, 440.0),
        "negotiation": (2, 5000.0, 4000.0),  # O2, O3
    },
    # = kpi_monthly May
    d(5, 31): {
        "prospecting": (1, 1200.0, 60.0),  # O10
        "qualification": (1, 600.0, 60.0),  # O9
        "meeting": (1, 1000.0, 200.0),  # O16
        "proposal": (1, 800.0, 400.0),  # O6
        "negotiation": (2, 6000.0, 4800.0),  # O2 2000, O11 4000
    },
    # t = 06-15 00:00: the events at as_of (12:00) have not happened yet
    d(6, 14): {
        "prospecting": (1, 1200.0, 60.0),
        "qualification": (1, 600.0, 60.0),
        "meeting": (1, 1000.0, 200.0),
        "proposal": (1, 800.0, 400.0),
        "negotiation": (2, 6000.0, 4800.0),
    },
    # as_of = kpi_monthly Jun: O10 proposal, O11 won, O12 created
    d(6, 15): {
        "prospecting": (1, 500.0, 25.0),  # O12
        "qualification": (1, 600.0, 60.0),  # O9
        "meeting": (1, 1000.0, 200.0),  # O16
        "proposal": (2, 2000.0, 1000.0),  # O6 800, O10 1200
        "negotiation": (1, 2000.0, 1600.0),  # O2
    },
}
STAGE_ORDER = dict(OPEN_STAGES) | {"closed_won": 6, "closed_lost": 7}


def test_fct_pipeline_daily_snapshot_chosen_days(built):
    expected = []
    for day, stages in SNAPSHOT_DAYS.items():
        # every open stage (zeros included), plus the closed stages held that day
        names = [s for s, _ in OPEN_STAGES] + [s for s in stages if s not in dict(OPEN_STAGES)]
        for stage in names:
            count, amount, weighted = stages.get(stage, (0, 0.0, 0.0))
            expected.append((day, stage, STAGE_ORDER[stage], count, amount, weighted))
    days = ", ".join(f"date '{day.isoformat()}'" for day in SNAPSHOT_DAYS)
    check_rows(
        built,
        "fct_pipeline_daily_snapshot",
        FCT_PIPELINE_DAILY_SNAPSHOT_COLUMNS,
        2,
        expected,
        where=f"snapshot_date in ({days})",
    )


def test_fct_pipeline_daily_snapshot_shape(built):
    # Days 01-05 .. 06-15: 27 + 28 + 31 + 30 + 31 + 15 = 162; every open stage every day.
    # closed_lost is held by O2 02-20..03-09 (18 days), O3 03-05..03-19 (15), O4
    # 03-10..04-01 (23): rows 02-20..04-01 (41 days), Σ count 56, Σ amount 18 × 2000 +
    # 15 × 3000 + 23 × 1500 = 115500. closed_won by O5 03-15..04-19 (36 days, 2500 each).
    # No post-sale stage is ever held by an open deal.
    rows = query(
        built,
        "select stage, count(*), count(distinct snapshot_date), min(snapshot_date), "
        "max(snapshot_date), sum(open_count), sum(open_amount), sum(weighted_amount) "
        "from marts.fct_pipeline_daily_snapshot "
        "where stage in ('closed_won', 'closed_lost', 'onboarding', 'follow_up', 'renewal') "
        "group by stage order by stage",
    )
    assert rows == [
        ("closed_lost", 41, 41, d(2, 20), d(4, 1), 56, 115500.0, 0.0),
        ("closed_won", 36, 36, d(3, 15), d(4, 19), 36, 90000.0, 90000.0),
    ]
    rows = query(
        built,
        "select stage, count(*), count(distinct snapshot_date), min(snapshot_date), "
        "max(snapshot_date) from marts.fct_pipeline_daily_snapshot "
        "where stage in ('prospecting', 'qualification', 'meeting', 'proposal', "
        "'negotiation') group by stage order by min(stage_order)",
    )
    assert rows == [(stage, 162, 162, d(1, 5), d(6, 15)) for stage, _ in OPEN_STAGES]
    # Every row has a positive count unless it is an open stage's zero row.
    assert query(
        built,
        "select count(*) from marts.fct_pipeline_daily_snapshot "
        "where open_count = 0 and stage in ('closed_won', 'closed_lost')",
    ) == [(0,)]
