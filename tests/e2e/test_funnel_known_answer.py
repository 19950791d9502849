"""Known-answer test for the whole-funnel marts (kpi_lead_funnel, kpi_post_sale,
kpi_pipeline_coverage) and the quota columns of kpi_rep_monthly: every expected value below
was computed by hand from the definitions in docs/kpis.md (shared definitions "closed_at",
"status", "Open at a moment t", "Expected close month", "Empirical win probability", and
the section "The whole funnel: leads, after-sales, quotas") and the column docs of
dbt_project/models/marts/_marts__models.yml, not from the SQL.

Fixture tests/fixtures/funnel_known_answer: one canonical `crm` batch
(landing/2026-05-20T1200) and config.yaml (reporting_currency USD; forecast: lookback_days
365, min_closed_deals 10, follow_up_days 10). as_of = 2026-05-20T12:00:00Z. All
timestamps 2026, UTC, 00:00 unless a time is given. Default stage map: prospecting .05 (1),
qualification .10 (2), meeting .20 (3), proposal .50 (4), negotiation .80 (5), closed_won
(6), closed_lost (7), onboarding (8), follow_up (9), renewal (10); the last three post-sale.

Opportunities (all USD but O8; amount_reporting = amount):

| opp | owner | created | amount | stage changes | closed_at, status at as_of | case |
| --- | --- | --- | --- | --- | --- | --- |
| O1 | u1 | 01-05 | 1000 | prospecting 01-05, proposal 01-20, closed_won 02-10, onboarding 02-15, follow_up 03-01 | 02-10 won | onboarding + follow_up |
| O2 | u1 | 01-10 | 2000 | prospecting 01-10, meeting 01-20, closed_won 02-25 12:00, renewal 05-25 (after as_of: ignored) | 02-25 12:00 won | renewal not entered by as_of |
| O3 | u2 | 01-15 | 3000 | prospecting 01-15, negotiation 02-01, closed_won 03-10, onboarding 03-12, renewal 05-01 | 03-10 won | onboarding + renewal |
| O4 | u2 | 02-01 | 1500 | prospecting 02-01, closed_lost 03-05 | 03-05 lost | reached 1 |
| O5 | u1 | 02-10 | 2500 | prospecting 02-10, meeting 02-20, closed_lost 03-20 | 03-20 lost | reached 3 |
| O6 | u1 | 03-01 | 4000 | prospecting 03-01, proposal 03-15, onboarding 04-10 (no closed_won) | 04-10 won | won run starts at onboarding |
| O7 | u2 | 03-05 | 1200 | prospecting 03-05, negotiation 04-01, closed_won 05-20 12:00 (= as_of) | as_of, won | won at as_of |
| O8 | u2 | 04-05 | 800 EUR | prospecting 04-05, proposal 04-20, closed_won 05-10 12:00, onboarding 05-20 12:00 (= as_of), follow_up 05-21 (after as_of) | 05-10 12:00 won | EUR: 800 × 0.8 (rate of close_date 05-10) = 640 |
| O9 | u1 | 04-15 | 3000 | prospecting 04-15, proposal 05-01 | open, proposal | close_date 05-31 → May |
| O10 | u1 | 04-20 | 2000 | prospecting 04-20, negotiation 05-05 | open, negotiation | close_date 06-15 → June |
| O11 | u2 | 05-01 | 1000 | meeting 05-01 | open, meeting | close_date 05-15 overdue → May |
| O12 | u1 | 05-02 | 6000 | prospecting 05-02 | open, prospecting | close_date 07-10 → July (no quota) |
| O13 | u2 | 02-15 | 1800 | prospecting 02-15, closed_lost 03-25, qualification 04-20 | open (revived), qualification | close_date 06-30 → June |
| O14 | u1 | 03-10 | 9000 | prospecting 03-10, closed_won 04-15; is_deleted | - | left out everywhere |
| O15 | u1 | 05-25 | 700 | prospecting 05-25 | - | created after as_of: does not exist (close_date 05-30) |
| O16 | u2 | 03-20 | 1500 | prospecting 03-20, meeting 04-01, closed_won 04-25 | 04-25 won | |
| O17 | u1 | 03-25 | 700 | prospecting 03-25, closed_won 04-28 06:00 | 04-28 06:00 won | |
| O18 | u2 | 01-20 | 500 | prospecting 01-20, closed_won 02-14 | 02-14 won | |

kpi_monthly's months: January (first data: O1 created 01-05, activity a15 01-15) to May
(month of as_of).

EUR rates (rate_to_reporting): 03-01 1.25, 04-03 1.5, 05-10 0.8, 06-01 2.0 (after as_of:
unknown).

Activities on won deals (follow-up window (closed_at, closed_at + 10 d], up to as_of;
first activity = the first strictly after closed_at, up to as_of):

| deal | closed_at | activities | followed up | days to first activity |
| --- | --- | --- | --- | --- |
| O1 | 02-10 | a1 02-10 (at closed_at: no), a2 02-20 (closed_at + 10 d exactly: yes) | yes | 10 |
| O18 | 02-14 | a4 02-15 | yes | 1 |
| O2 | 02-25 12:00 | a3 03-07 12:00:01 (10 d + 1 s: no) | no | 10 + 1/86400 |
| O3 | 03-10 | a5 03-10 (at closed_at: no), a6 03-15 06:00 | yes | 5.25 |
| O6 | 04-10 | a8 04-20 10:00 (10 d 10 h: no) | no | 250/24 |
| O16 | 04-25 | a9 04-27, a10 04-30 | yes | 2 |
| O17 | 04-28 06:00 | a11 04-28 05:00 (before closed_at) | no | none |
| O8 | 05-10 12:00 | a14 05-20 12:00 (= closed_at + 10 d = as_of: yes) | yes | 10 |
| O7 | 05-20 12:00 | a12 05-20 12:00 (at closed_at: no), a13 05-28 (after as_of) | no | none |

Empirical win probabilities at as_of (window [as_of − 365 d, as_of], as_of included;
min_closed_deals 10). Closed: won O1 O2 O3 O6 O7 (at as_of) O8 O16 O17 O18 (9, reach
every open stage); lost O4 (reached 1), O5 (reached 3); O13 is open (revived), O14
deleted. prospecting 11 closed, 9 won → 9/11 empirical; qualification and meeting 10, 9
→ 0.9 empirical; proposal and negotiation 9 < 10 → configured 0.5 and 0.8.

Open at as_of (created by as_of, status open), under the stage held at as_of:

| opp | owner | stage | probability_used | expected close month | amount | expected_amount |
| --- | --- | --- | --- | --- | --- | --- |
| O9 | u1 | proposal | 0.5 configured | May | 3000 | 1500 |
| O10 | u1 | negotiation | 0.8 configured | June | 2000 | 1600 |
| O11 | u2 | meeting | 0.9 empirical | May (overdue) | 1000 | 900 |
| O12 | u1 | prospecting | 9/11 empirical | July | 6000 | 54000/11 |
| O13 | u2 | qualification | 0.9 empirical | June | 1800 | 1620 |

Quotas (converted at the rate of the month's first day, else the latest earlier rate;
rates after as_of unknown):

| owner | month | quota | rate | quota_amount |
| --- | --- | --- | --- | --- |
| u1 | 2025-12 | 1000 USD | - | 1000 |
| u1 | 2026-02 | 5000 USD | - | 5000 |
| u1 | 2026-04 | 10000 EUR | 03-01 1.25 (04-03's 1.5 is after 04-01) | 12500 |
| u1 | 2026-05 | 8000 USD | - | 8000 |
| u1 | 2026-06 | 4000 EUR | 05-10 0.8: the latest at as_of (06-01's 2.0 is after as_of) | 3200 |
| u2 | 2026-03 | 3000 (empty currency = reporting) | - | 3000 |
| u2 | 2026-05 | 1000 EUR | 04-03 1.5 (05-10's 0.8 is after 05-01) | 1500 |
| u2 | 2026-06 | 0 USD | - | 0 |
| u3 | 2026-05 | 1000 USD | - | 1000 (u3 owns no deal and no activity) |

Leads (deleted L5 and L13, created after as_of, do not count):

| lead | created | channel → | qualified_at | converted_at → opp | days to qualify / convert | won |
| --- | --- | --- | --- | --- | --- | --- |
| L1 | 01-03 10:00 | Email → email | 01-08 10:00 | - | 5 / - | |
| L2 | 01-05 | email | 01-07 | 01-10 → O2 | 2 / 5 | O2 won 2000 |
| L3 | 01-12 | (empty) → unknown | - | 01-15 → O3 | 3 (at conversion) / 3 | O3 won 3000 |
| L4 | 01-20 | EMAIL → email | - | - | - | |
| L5 | 01-25 | email, deleted | 01-26 | 01-30 → O1 | left out | |
| L6 | 02-01 | referral | 02-05 | 02-10 → O5 | 4 / 9 | O5 lost |
| L7 | 02-03 | referral | 05-25 (after as_of) | - | not qualified (status says Qualified) | |
| L8 | 03-01T00:00+01:00 = 02-28 23:00 | Referral → referral | - | - | - | |
| L9 | 03-01 | (empty) → unknown | - | - | - | |
| L10 | 03-02 | partner | 03-04 12:00 | - | 2.5 / - | |
| L17 | 04-01 | website | 04-02 | 04-05 → O8 | 1 / 4 | O8 won 640 |
| L15 | 04-02 | " Paid" → paid | 04-03 | - | 1 / - | |
| L18 | 04-08 | paid | - | - | - | |
| L14 | 04-10 | social | 04-11 | 05-21 (after as_of) → O16 | 1 / not converted | not counted |
| L11 | 05-01 | email | 05-01 12:00 | 05-02 → O12 | 0.5 / 1 | O12 open |
| L16 | 05-10 12:00 | partner | 05-20 12:00 (= as_of) | - | 10 / - | |
| L19 | 05-19 12:00 | website | - | 05-20 12:00 (= as_of) → O7 | 1 (at conversion) / 1 | O7 won 1200 |
| L12 | 05-20 12:00 (= as_of) | email | - | - | - | |
| L13 | 05-21 | email | - | - | created after as_of | |
"""  # noqa: E501

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pipeline_helpers as helpers
import pytest
from pipeline_helpers import build_known_answer

FIXTURE = Path(__file__).parents[1] / "fixtures" / "funnel_known_answer"
AS_OF = "2026-05-20T12:00:00Z"

pytestmark = pytest.mark.slow

DEC25 = date(2025, 12, 1)
JAN, FEB, MAR, APR, MAY, JUN, JUL = (date(2026, m, 1) for m in range(1, 8))


def ts(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour)


# Money sums are rounded to 1e-9 per row (so reruns are byte-identical): compared to 1e-8.
MONEY_TOL = 1e-8


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_known_answer(
        tmp_path_factory.mktemp("funnel_known_answer"), FIXTURE / "landing", AS_OF,
        "--config", str(FIXTURE / "config.yaml"),
    )  # fmt: skip


def check_rows(*args, **kwargs) -> None:
    helpers.check_rows(*args, abs_tol=MONEY_TOL, **kwargs)


# --- Inputs of the new marts (diagnostics: a mismatch here explains one further down) ---


def test_fct_opportunities_inputs(built):
    # fmt: off
    expected = [
        ("O1", "won", ts(2, 10), 1000.0),
        ("O2", "won", ts(2, 25, 12), 2000.0),        # renewal 05-25 is after as_of
        ("O3", "won", ts(3, 10), 3000.0),
        ("O4", "lost", ts(3, 5), 1500.0),
        ("O5", "lost", ts(3, 20), 2500.0),
        ("O6", "won", ts(4, 10), 4000.0),            # won run starts at onboarding
        ("O7", "won", ts(5, 20, 12), 1200.0),        # won at as_of
        ("O8", "won", ts(5, 10, 12), 640.0),         # 800 EUR × 0.8 (rate of 05-10)
        ("O9", "open", None, 3000.0),
        ("O10", "open", None, 2000.0),
        ("O11", "open", None, 1000.0),
        ("O12", "open", None, 6000.0),
        ("O13", "open", None, 1800.0),               # lost 03-25, revived 04-20
        ("O14", "won", ts(4, 15), 9000.0),           # soft-deleted (flagged only)
        ("O16", "won", ts(4, 25), 1500.0),
        ("O17", "won", ts(4, 28, 6), 700.0),
        ("O18", "won", ts(2, 14), 500.0),
    ]  # O15, created after as_of, does not exist
    # fmt: on
    check_rows(
        built,
        "fct_opportunities",
        ["opportunity_id", "status", "closed_at", "amount_reporting"],
        1,
        expected,
        all_columns=False,
    )


FCT_FORECAST_CHECKED = [
    "opportunity_id",
    "owner_id",
    "stage",
    "expected_close_month",
    "probability_used",
    "probability_source",
    "expected_amount",
]


def test_fct_forecast_inputs(built):
    # Probabilities learned at as_of: see the module docstring.
    # fmt: off
    expected = [
        ("O9", "u1", "proposal", MAY, 0.5, "configured", 1500.0),
        ("O10", "u1", "negotiation", JUN, 0.8, "configured", 1600.0),
        ("O11", "u2", "meeting", MAY, 0.9, "empirical", 900.0),          # overdue 05-15
        ("O12", "u1", "prospecting", JUL, 9 / 11, "empirical", 54000 / 11),
        ("O13", "u2", "qualification", JUN, 0.9, "empirical", 1620.0),
    ]
    # fmt: on
    check_rows(
        built,
        "fct_forecast",
        FCT_FORECAST_CHECKED,
        1,
        expected,
        all_columns=False,
    )


# --- The marts under test ---

KPI_LEAD_FUNNEL_COLUMNS = [
    "cohort_month",
    "channel",
    "leads_created",
    "qualified_count",
    "converted_count",
    "qualification_rate",
    "conversion_rate",
    "avg_days_to_qualify",
    "avg_days_to_convert",
    "won_count",
    "won_amount",
]


def test_kpi_lead_funnel(built):
    # Rows only for cohort × channel combinations with (non-deleted, created by as_of)
    # leads. Columns: leads, qualified, converted, rates, avg days to qualify / convert,
    # won count / amount.
    # fmt: off
    expected = [
        # L1, L2, L4 (L5 deleted). Qualified L1 (5 d), L2 (2 d); converted L2 (5 d) → O2
        # won 2000.
        (JAN, "email", 3, 2, 1, 2 / 3, 1 / 3, (5 + 2) / 2, 5.0, 1, 2000.0),
        # L3: converted 01-15 without qualified_at → qualified at conversion (3 d); O3 won.
        (JAN, "unknown", 1, 1, 1, 1.0, 1.0, 3.0, 3.0, 1, 3000.0),
        # L6 (qualified 4 d, converted 9 d → O5 lost), L7 (qualified after as_of), L8
        # (02-28 23:00 UTC).
        (FEB, "referral", 3, 1, 1, 1 / 3, 1 / 3, 4.0, 9.0, 0, 0.0),
        # L9: nothing.
        (MAR, "unknown", 1, 0, 0, 0.0, 0.0, None, None, 0, 0.0),
        # L10 qualified 2.5 d.
        (MAR, "partner", 1, 1, 0, 1.0, 0.0, 2.5, None, 0, 0.0),
        # L15 (" Paid", qualified 1 d), L18.
        (APR, "paid", 2, 1, 0, 0.5, 0.0, 1.0, None, 0, 0.0),
        # L14: qualified 1 d; converted 05-21 after as_of → not converted, not won.
        (APR, "social", 1, 1, 0, 1.0, 0.0, 1.0, None, 0, 0.0),
        # L17: qualified 1 d, converted 4 d → O8 won, amount_reporting 640.
        (APR, "website", 1, 1, 1, 1.0, 1.0, 1.0, 4.0, 1, 640.0),
        # L11 (qualified 0.5 d, converted 1 d → O12 open), L12 (created at as_of); L13
        # created after as_of.
        (MAY, "email", 2, 1, 1, 0.5, 0.5, 0.5, 1.0, 0, 0.0),
        # L16 qualified at as_of: 10 d.
        (MAY, "partner", 1, 1, 0, 1.0, 0.0, 10.0, None, 0, 0.0),
        # L19 converted at as_of (no qualified_at: qualified then), 1 d → O7 won at as_of.
        (MAY, "website", 1, 1, 1, 1.0, 1.0, 1.0, 1.0, 1, 1200.0),
    ]
    # fmt: on
    check_rows(built, "kpi_lead_funnel", KPI_LEAD_FUNNEL_COLUMNS, 2, expected)


KPI_POST_SALE_COLUMNS = [
    "month",
    "won_count",
    "followed_up_count",
    "followed_up_share",
    "avg_days_to_first_activity",
    "median_days_to_first_activity",
    "onboarding_count",
    "follow_up_count",
    "renewal_count",
]


def test_kpi_post_sale(built):
    # Months of kpi_monthly (Jan–May); deals by the month of closed_at. Per-deal facts in
    # the module docstring. The pipeline rounds each deal's duration to 1e-9 d before
    # averaging (Feb avg 7.000003858 against the exact 7 + 1/259200; Apr avg
    # 6.2083333335 against 149/24, while its median is the exact 149/24), which the
    # abs 1e-8 tolerance of same() absorbs.
    # fmt: off
    expected = [
        # Nothing won in January.
        (JAN, 0, 0, None, None, None, 0, 0, 0),
        # O1 (followed up, 10 d, onboarding 02-15, follow_up 03-01), O18 (followed up,
        # 1 d), O2 (not followed up, 10 d + 1 s; renewal 05-25 after as_of).
        # avg (10 + 1 + 10 + 1/86400) / 3; median of 1, 10, 10 + 1/86400 = 10.
        (FEB, 3, 2, 2 / 3, (21 + 1 / 86400) / 3, 10.0, 1, 1, 0),
        # O3: followed up, 5.25 d; onboarding 03-12, renewal 05-01.
        (MAR, 1, 1, 1.0, 5.25, 5.25, 1, 0, 1),
        # O6 (not followed up, 250/24 d; onboarding 04-10), O16 (followed up, 2 d), O17
        # (no activity after its win). avg = median of 2 and 250/24 = 149/24.
        (APR, 3, 1, 1 / 3, (2 + 250 / 24) / 2, (2 + 250 / 24) / 2, 1, 0, 0),
        # O8 (followed up at closed_at + 10 d = as_of, 10 d; onboarding at as_of,
        # follow_up 05-21 after as_of), O7 (won at as_of: no activity after it by as_of).
        (MAY, 2, 1, 0.5, 10.0, 10.0, 1, 0, 0),
    ]
    # fmt: on
    check_rows(built, "kpi_post_sale", KPI_POST_SALE_COLUMNS, 1, expected)


KPI_PIPELINE_COVERAGE_COLUMNS = [
    "owner_id",
    "month",
    "quota_amount",
    "won_amount",
    "attainment",
    "remaining_quota",
    "open_amount",
    "expected_amount",
    "coverage_ratio",
    "weighted_coverage_ratio",
]


def test_kpi_pipeline_coverage(built):
    # One row per quota. Won by owner and closed_at month (up to as_of): u1 Feb O1 1000 +
    # O2 2000; u1 Apr O6 4000 + O17 700 (O14 deleted); u2 Feb O18 500; u2 Mar O3 3000;
    # u2 Apr O16 1500; u2 May O8 640 + O7 1200 (at as_of). Open pipeline by expected close
    # month (fct_forecast): u1 May O9, u1 Jun O10, u1 Jul O12; u2 May O11, u2 Jun O13.
    # fmt: off
    expected = [
        # Months before the month of as_of: open, expected and the ratios are null.
        ("u1", DEC25, 1000.0, 0.0, 0.0, 1000.0, None, None, None, None),
        ("u1", FEB, 5000.0, 3000.0, 0.6, 2000.0, None, None, None, None),
        # 10000 EUR × 1.25 (03-01; 04-03's rate is after the month's first day).
        ("u1", APR, 12500.0, 4700.0, 4700 / 12500, 7800.0, None, None, None, None),
        # O9 3000 (proposal, .5 configured → 1500); O15 (created after as_of) not there.
        ("u1", MAY, 8000.0, 0.0, 0.0, 8000.0, 3000.0, 1500.0, 3000 / 8000, 1500 / 8000),
        # 4000 EUR × 0.8 (the latest rate at as_of). O10 2000 (negotiation .8 → 1600).
        ("u1", JUN, 3200.0, 0.0, 0.0, 3200.0, 2000.0, 1600.0, 2000 / 3200, 1600 / 3200),
        # Empty currency = reporting currency. Won O3 3000: nothing remains.
        ("u2", MAR, 3000.0, 3000.0, 1.0, 0.0, None, None, None, None),
        # 1000 EUR × 1.5 (04-03: the latest rate before 05-01). Won 1840 > quota:
        # remaining 0 → ratios null; O11 1000 (overdue, meeting .9 → 900).
        ("u2", MAY, 1500.0, 1840.0, 1840 / 1500, 0.0, 1000.0, 900.0, None, None),
        # Quota 0: attainment null, remaining 0 → ratios null; O13 1800 (qualification .9).
        ("u2", JUN, 0.0, 0.0, None, 0.0, 1800.0, 1620.0, None, None),
        # u3 has no deal at all: amounts 0 (nothing happened), ratios 0 ÷ 1000 = 0.
        ("u3", MAY, 1000.0, 0.0, 0.0, 1000.0, 0.0, 0.0, 0.0, 0.0),
    ]
    # fmt: on
    check_rows(built, "kpi_pipeline_coverage", KPI_PIPELINE_COVERAGE_COLUMNS, 2, expected)


def test_kpi_rep_monthly_quota(built):
    # Owners of a non-deleted opportunity or an activity: u1, u2 (not u3, who only has a
    # quota); months Jan–May (the quotas of 2025-12 and 2026-06 fall outside).
    # fmt: off
    expected = [
        ("u1", JAN, 0.0, None, None),
        ("u1", FEB, 3000.0, 5000.0, 0.6),          # O1 + O2
        ("u1", MAR, 0.0, None, None),
        ("u1", APR, 4700.0, 12500.0, 0.376),       # O6 + O17 (not the deleted O14)
        ("u1", MAY, 0.0, 8000.0, 0.0),
        ("u2", JAN, 0.0, None, None),
        ("u2", FEB, 500.0, None, None),            # O18, no quota
        ("u2", MAR, 3000.0, 3000.0, 1.0),          # O3
        ("u2", APR, 1500.0, None, None),           # O16, no quota
        ("u2", MAY, 1840.0, 1500.0, 1840 / 1500),  # O8 640 + O7 1200
    ]
    # fmt: on
    check_rows(
        built,
        "kpi_rep_monthly",
        ["owner_id", "month", "won_amount", "quota_amount", "attainment"],
        2,
        expected,
        all_columns=False,
    )
