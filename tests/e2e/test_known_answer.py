"""Known-answer test: every column of every row of the six core marts, computed by hand
from docs/kpis.md (and the interpretation choices documented in dbt_project/README.md and
models/marts/_marts__models.yml), independently of the SQL.

Fixture tests/fixtures/known_answer, two batches (2026-03-01T0600, 2026-04-15T0000),
as_of = 2026-04-15T00:00:00Z. All timestamps are 2026, midnight UTC unless noted; all
amounts USD (amount_reporting = amount). Day numbers for the arithmetic below: Jan d = d-1,
Feb d = 30+d, Mar d = 58+d, Apr d = 89+d (as_of = 104).

| opp | owner | created | amount | stage changes (canonical) | at as_of |
| --- | --- | --- | --- | --- | --- |
| O1 | u1 | 01-05 | 1000 | prospecting 01-05, qualification 01-10, proposal 01-20 (meeting skipped), closed_won 02-04, onboarding 02-14 | won (post-sale), cycle 30 |
| O2 | u1 | 01-08 | 500 | prospecting 01-08, meeting 01-13 (qualification skipped), closed_lost 01-28 | lost, cycle 20 |
| O3 | u2 | 01-15 | 2000 → 3000 (batch 2) | prospecting 01-15, qualification 01-25, proposal 02-10, proposal 02-20 (repeat: no new interval), negotiation 03-02 | open, negotiation |
| O4 | u2 | 02-01 | 400 | none; opportunity row says meeting | open, meeting from created_at |
| O5 | u1 | 02-03 | 1500 | prospecting 02-03, meeting 02-13, proposal 02-23, meeting 03-05 (regression), proposal 03-10, closed_won 03-25 | won, cycle 50 |
| O6 | u2 | 02-10 | 500 | prospecting 02-10, qualification 02-15, closed_lost 03-12 | lost, cycle 30 |
| O7 | u2 | 03-01 | 1200 | prospecting 03-01, negotiation 03-11 (3 skipped), closed_won 04-10 (row twice) | won, cycle 40 |
| O8 | u1 | 03-15 | 600 | prospecting 03-15, proposal 03-25, negotiation 04-20 (after as_of: ignored) | open, proposal |
| O9 | u1 | 04-02 | 700 | prospecting 04-02; is_deleted = true | only in fct_opportunities |
| O10 | u1 | 03-20 | 800 | prospecting 03-20, closed_won 04-09 (all open stages skipped) | won, cycle 20 |

Batch 2 updates O3 (amount 2000 → 3000, stage proposal → negotiation), closes O5 and O6,
re-exports O3's proposal 02-20 and O5's proposal 02-23 (overlap), and holds O7's closed_won
row twice (exact duplicate). 34 stage-change rows land, 31 distinct, 30 on or before as_of.

Activities (owner, linked deal, occurred_at; touchpoint = created_at <= t <= closed_at, or
<= as_of while open):

| act | owner | deal | occurred_at | note |
| --- | --- | --- | --- | --- |
| act1 | u1 | O1 | 01-05 00:00 | exactly at O1's created_at: touchpoint |
| act2 | u1 | O1 | 01-21 10:00 | touchpoint; re-exported in batch 2 (deduplicated) |
| act3 | u1 | O1 | 02-20 10:00 | after O1's closed_at: not a touchpoint |
| act4 | u1 | O2 | 01-10 10:00 | touchpoint |
| act5 | u1 | O2 | 01-28 00:00 | exactly at O2's closed_at: touchpoint |
| act6 | u2 | O3 | 02-12 10:00 | touchpoint |
| act7 | u2 | O3 | 03-20 10:00 | touchpoint |
| act8 | u2 | -  | 02-05 10:00 | no deal: counts only in activities_count |
| act9 | u1 | O5 | 03-20 10:00 | touchpoint |
| act10 | u2 | O7 | 04-05 10:00 | touchpoint |
| act11 | u1 | O8 | 04-20 10:00 | after as_of: ignored everywhere |
| act12 | u2 | O6 | 02-20 10:00 | touchpoint |
| act13 | u1 | O10 | 03-25 10:00 | touchpoint |

Interpretation used where docs/kpis.md is terse (documented in the mart YAML): pipeline
velocity's win rate, deal size and cycle length are kpi_monthly's win_rate, avg_deal_size
and avg_sales_cycle_days (won deals) computed over the deals closed in the trailing three
months. The closed_won funnel row has no next step: next_stage, converted_to_next_count and
conversion_rate_to_next are taken to be null there.
"""  # noqa: E501

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from pipeline_helpers import build_known_answer, check_rows, query

FIXTURE = Path(__file__).parents[1] / "fixtures" / "known_answer"
AS_OF = "2026-04-15T00:00:00Z"

pytestmark = pytest.mark.slow

JAN, FEB, MAR, APR = (date(2026, m, 1) for m in (1, 2, 3, 4))


def ts(month: int, day: int) -> datetime:
    return datetime(2026, month, day)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_known_answer(tmp_path_factory.mktemp("known_answer"), FIXTURE, AS_OF)


def check_mart(warehouse: Path, table: str, columns: list[str], key: int, expected) -> None:
    """Every column of every row; `key` = number of leading key columns."""
    check_rows(warehouse, table, columns, key, expected)


def test_raw_layer_supersedes_and_deduplicates(built):
    # O3: batch 2 supersedes batch 1 (later updated_at).
    assert query(
        built,
        "select amount, stage, _batch_id from raw.opportunities where opportunity_id = 'O3'",
    ) == [(3000.0, "negotiation", "2026-04-15T0000")]
    assert query(built, "select count(*) from raw.opportunities") == [(10,)]
    # 17 + 17 rows land; 2 overlap re-exports and 1 exact duplicate collapse → 31 distinct,
    # of which O8's negotiation 04-20 is after as_of.
    assert query(
        built, "select count(*) from raw.stage_changes where changed_at <= '2026-04-15'"
    ) == [(30,)]
    # 8 + 6 rows, act2 re-exported → 13 distinct, act11 after as_of → 12.
    assert query(
        built, "select count(*) from raw.activities where occurred_at <= '2026-04-15'"
    ) == [(12,)]
    # Reconciliation per entity: input = loaded + quarantined + duplicates + rejected, with
    # the counts above (stage changes 34 in, 3 duplicates; activities 14 in, 1 duplicate).
    assert query(
        built,
        "select entity, sum(input_rows), sum(loaded_rows), sum(quarantined_rows), "
        "sum(duplicate_rows), sum(rejected_rows) from quality.ingestion_log "
        "where entity in ('stage_changes', 'activities') group by entity order by entity",
    ) == [("activities", 14, 13, 0, 1, 0), ("stage_changes", 34, 31, 0, 3, 0)]


FCT_OPPORTUNITIES_COLUMNS = [
    "opportunity_id",
    "account_id",
    "owner_id",
    "lead_source",
    "amount",
    "currency",
    "amount_reporting",
    "created_at",
    "closed_at",
    "status",
    "current_stage",
    "highest_open_stage",
    "highest_open_stage_order",
    "sales_cycle_days",
    "stage_changes_count",
    "regressions_count",
    "touchpoints_count",
    "is_deleted",
]


def test_fct_opportunities(built):
    # fmt: off
    expected = [
        # closed_at = first won/lost/post-sale entry (closed_won 02-04, not onboarding
        # 02-14); won → highest open stage is the last open stage (negotiation, 5).
        # cycle 34 - 4 = 30; 5 intervals → 4 moves; touchpoints act1 (= created_at), act2
        # (act3 after closed_at is not).
        ("O1", "a1", "u1", "referral", 1000.0, "USD", 1000.0, ts(1, 5), ts(2, 4),
         "won", "onboarding", "negotiation", 5, 30.0, 4, 0, 2, False),
        # lost: highest open stage meeting (3); cycle 27 - 7 = 20; 3 intervals → 2 moves;
        # touchpoints act4 and act5 (= closed_at, inclusive).
        ("O2", "a2", "u1", "website", 500.0, "USD", 500.0, ts(1, 8), ts(1, 28),
         "lost", "closed_lost", "meeting", 3, 20.0, 2, 0, 2, False),
        # amount from batch 2; repeated proposal is not a move: 4 intervals → 3 moves;
        # touchpoints act6, act7.
        ("O3", "a1", "u2", "outbound", 3000.0, "USD", 3000.0, ts(1, 15), None,
         "open", "negotiation", "negotiation", 5, None, 3, 0, 2, False),
        # no stage changes: one synthesized interval, 0 moves.
        ("O4", "a2", "u2", "event", 400.0, "USD", 400.0, ts(2, 1), None,
         "open", "meeting", "meeting", 3, None, 0, 0, 0, False),
        # 6 intervals → 5 moves; proposal → meeting is 1 regression; cycle 83 - 33 = 50;
        # touchpoint act9.
        ("O5", "a1", "u1", "referral", 1500.0, "USD", 1500.0, ts(2, 3), ts(3, 25),
         "won", "closed_won", "negotiation", 5, 50.0, 5, 1, 1, False),
        # cycle 70 - 40 = 30; touchpoint act12.
        ("O6", "a2", "u2", "website", 500.0, "USD", 500.0, ts(2, 10), ts(3, 12),
         "lost", "closed_lost", "qualification", 2, 30.0, 2, 0, 1, False),
        # duplicate closed_won row collapses: 3 intervals → 2 moves; cycle 99 - 59 = 40.
        ("O7", "a1", "u2", "outbound", 1200.0, "USD", 1200.0, ts(3, 1), ts(4, 10),
         "won", "closed_won", "negotiation", 5, 40.0, 2, 0, 1, False),
        # negotiation 04-20 is after as_of: current and highest stage stay proposal (4);
        # act11 (04-20) is after as_of: 0 touchpoints.
        ("O8", "a2", "u1", "event", 600.0, "USD", 600.0, ts(3, 15), None,
         "open", "proposal", "proposal", 4, None, 1, 0, 0, False),
        # soft-deleted: present here only, flagged.
        ("O9", "a1", "u1", "website", 700.0, "USD", 700.0, ts(4, 2), None,
         "open", "prospecting", "prospecting", 1, None, 0, 0, 0, True),
        # won straight from prospecting: reached every open stage; cycle 98 - 78 = 20.
        ("O10", "a2", "u1", "referral", 800.0, "USD", 800.0, ts(3, 20), ts(4, 9),
         "won", "closed_won", "negotiation", 5, 20.0, 1, 0, 1, False),
    ]
    # fmt: on
    check_mart(built, "fct_opportunities", FCT_OPPORTUNITIES_COLUMNS, 1, expected)


FCT_STAGE_HISTORY_COLUMNS = [
    "opportunity_id",
    "entered_at",
    "owner_id",
    "stage",
    "stage_order",
    "stage_category",
    "exited_at",
    "next_stage",
    "duration_days",
    "is_current",
    "is_regression",
]


def test_fct_stage_history(built):
    F, T = False, True
    # Key (opportunity_id, entered_at). Current intervals run to as_of (day 104).
    # fmt: off
    expected = [
        ("O1", ts(1, 5), "u1", "prospecting", 1, "open", ts(1, 10), "qualification", 5.0, F, F),
        ("O1", ts(1, 10), "u1", "qualification", 2, "open", ts(1, 20), "proposal", 10.0, F, F),
        ("O1", ts(1, 20), "u1", "proposal", 4, "open", ts(2, 4), "closed_won", 15.0, F, F),
        ("O1", ts(2, 4), "u1", "closed_won", 6, "won", ts(2, 14), "onboarding", 10.0, F, F),
        ("O1", ts(2, 14), "u1", "onboarding", 8, "post_sale", None, None, 104 - 44.0, T, F),
        ("O2", ts(1, 8), "u1", "prospecting", 1, "open", ts(1, 13), "meeting", 5.0, F, F),
        ("O2", ts(1, 13), "u1", "meeting", 3, "open", ts(1, 28), "closed_lost", 15.0, F, F),
        ("O2", ts(1, 28), "u1", "closed_lost", 7, "lost", None, None, 104 - 27.0, T, F),
        ("O3", ts(1, 15), "u2", "prospecting", 1, "open", ts(1, 25), "qualification", 10.0, F, F),
        ("O3", ts(1, 25), "u2", "qualification", 2, "open", ts(2, 10), "proposal", 16.0, F, F),
        # proposal 02-10 → 03-02 (the repeat at 02-20 does not split it): 60 - 40 = 20
        ("O3", ts(2, 10), "u2", "proposal", 4, "open", ts(3, 2), "negotiation", 20.0, F, F),
        ("O3", ts(3, 2), "u2", "negotiation", 5, "open", None, None, 104 - 60.0, T, F),
        # no stage changes: current stage entered at created_at (day 31)
        ("O4", ts(2, 1), "u2", "meeting", 3, "open", None, None, 104 - 31.0, T, F),
        ("O5", ts(2, 3), "u1", "prospecting", 1, "open", ts(2, 13), "meeting", 10.0, F, F),
        ("O5", ts(2, 13), "u1", "meeting", 3, "open", ts(2, 23), "proposal", 10.0, F, F),
        # the next stage (meeting, 3) is an open stage of lower order: a regression
        ("O5", ts(2, 23), "u1", "proposal", 4, "open", ts(3, 5), "meeting", 10.0, F, T),
        ("O5", ts(3, 5), "u1", "meeting", 3, "open", ts(3, 10), "proposal", 5.0, F, F),
        ("O5", ts(3, 10), "u1", "proposal", 4, "open", ts(3, 25), "closed_won", 15.0, F, F),
        ("O5", ts(3, 25), "u1", "closed_won", 6, "won", None, None, 104 - 83.0, T, F),
        ("O6", ts(2, 10), "u2", "prospecting", 1, "open", ts(2, 15), "qualification", 5.0, F, F),
        ("O6", ts(2, 15), "u2", "qualification", 2, "open", ts(3, 12), "closed_lost", 25.0, F, F),
        ("O6", ts(3, 12), "u2", "closed_lost", 7, "lost", None, None, 104 - 70.0, T, F),
        ("O7", ts(3, 1), "u2", "prospecting", 1, "open", ts(3, 11), "negotiation", 10.0, F, F),
        ("O7", ts(3, 11), "u2", "negotiation", 5, "open", ts(4, 10), "closed_won", 30.0, F, F),
        ("O7", ts(4, 10), "u2", "closed_won", 6, "won", None, None, 104 - 99.0, T, F),
        ("O8", ts(3, 15), "u1", "prospecting", 1, "open", ts(3, 25), "proposal", 10.0, F, F),
        # negotiation 04-20 is after as_of: proposal is still current
        ("O8", ts(3, 25), "u1", "proposal", 4, "open", None, None, 104 - 83.0, T, F),
        # O9 is soft-deleted: no intervals.
        ("O10", ts(3, 20), "u1", "prospecting", 1, "open", ts(4, 9), "closed_won", 20.0, F, F),
        ("O10", ts(4, 9), "u1", "closed_won", 6, "won", None, None, 104 - 98.0, T, F),
    ]
    # fmt: on
    check_mart(built, "fct_stage_history", FCT_STAGE_HISTORY_COLUMNS, 2, expected)


FCT_FUNNEL_COLUMNS = [
    "cohort_month",
    "stage",
    "stage_order",
    "reached_count",
    "next_stage",
    "converted_to_next_count",
    "conversion_rate_to_next",
    "conversion_rate_from_first",
]


def test_fct_funnel(built):
    # Highest open stage_order per deal (won = all five): Jan cohort O1 won, O2 3, O3 5;
    # Feb cohort O4 3, O5 won, O6 2; Mar cohort O7 won, O8 4 (negotiation after as_of is
    # ignored), O10 won; Apr cohort only O9, which is deleted → no cohort.
    # fmt: off
    expected = [
        # Jan: reached 3, 3, 3, 2, 2; closed_won 1 (O1).
        (JAN, "prospecting", 1, 3, "qualification", 3, 3 / 3, 3 / 3),
        (JAN, "qualification", 2, 3, "meeting", 3, 3 / 3, 3 / 3),
        (JAN, "meeting", 3, 3, "proposal", 2, 2 / 3, 3 / 3),
        (JAN, "proposal", 4, 2, "negotiation", 2, 2 / 2, 2 / 3),
        (JAN, "negotiation", 5, 2, "closed_won", 1, 1 / 2, 2 / 3),
        (JAN, "closed_won", 6, 1, None, None, None, 1 / 3),
        # Feb: reached 3, 3, 2, 1, 1; closed_won 1 (O5).
        (FEB, "prospecting", 1, 3, "qualification", 3, 3 / 3, 3 / 3),
        (FEB, "qualification", 2, 3, "meeting", 2, 2 / 3, 3 / 3),
        (FEB, "meeting", 3, 2, "proposal", 1, 1 / 2, 2 / 3),
        (FEB, "proposal", 4, 1, "negotiation", 1, 1 / 1, 1 / 3),
        (FEB, "negotiation", 5, 1, "closed_won", 1, 1 / 1, 1 / 3),
        (FEB, "closed_won", 6, 1, None, None, None, 1 / 3),
        # Mar: reached 3, 3, 3, 3, 2 (O7, O10); closed_won 2.
        (MAR, "prospecting", 1, 3, "qualification", 3, 3 / 3, 3 / 3),
        (MAR, "qualification", 2, 3, "meeting", 3, 3 / 3, 3 / 3),
        (MAR, "meeting", 3, 3, "proposal", 3, 3 / 3, 3 / 3),
        (MAR, "proposal", 4, 3, "negotiation", 2, 2 / 3, 3 / 3),
        (MAR, "negotiation", 5, 2, "closed_won", 2, 2 / 2, 2 / 3),
        (MAR, "closed_won", 6, 2, None, None, None, 2 / 3),
        # Apr: a spine month without (non-deleted) opportunities has no cohort, no rows.
    ]
    # fmt: on
    check_mart(built, "fct_funnel", FCT_FUNNEL_COLUMNS, 2, expected)


KPI_MONTHLY_COLUMNS = [
    "month",
    "opportunities_created",
    "won_count",
    "lost_count",
    "won_amount",
    "lost_amount",
    "win_rate",
    "win_rate_by_value",
    "avg_deal_size",
    "avg_sales_cycle_days",
    "median_sales_cycle_days",
    "open_count_end",
    "open_amount_end",
    "weighted_pipeline_end",
    "pipeline_velocity_per_day",
]


def test_kpi_monthly(built):
    # fmt: off
    expected = [
        # Jan: created O1, O2, O3; O2 lost (500). Open at 02-01 00:00: O1 (proposal .5),
        # O3 (qualification .1; amount 3000 from batch 2); O4 is created at that instant →
        # not open. Amount 1000 + 3000; weighted 500 + 300.
        # Velocity: Nov–Jan has no won deal → deal size null → null.
        (JAN, 3, 0, 1, 0.0, 500.0, 0 / 1, 0 / 500, None, None, None,
         2, 4000.0, 800.0, None),
        # Feb: created O4, O5, O6; O1 won (1000, cycle 30). Open at 03-01: O3 (proposal
        # .5 → 1500), O4 (meeting .2 → 80), O5 (proposal .5 → 750), O6 (qualification .1
        # → 50): 3000 + 400 + 1500 + 500 = 5400, weighted 2380.
        # Velocity Dec–Feb: closed O2 lost, O1 won → 4 × (1/2) × 1000 / 30.
        (FEB, 3, 1, 0, 1000.0, 0.0, 1 / 1, 1000 / 1000, 1000.0, 30.0, 30.0,
         4, 5400.0, 2380.0, 4 * (1 / 2) * 1000 / 30),
        # Mar: created O7, O8, O10; O5 won (1500, cycle 50), O6 lost (500).
        # Open at 04-01: O3 (negotiation .8 → 2400), O4 (80), O7 (negotiation .8 → 960),
        # O8 (proposal .5 → 300), O10 (prospecting .05 → 40): 3000 + 400 + 1200 + 600
        # + 800 = 6000, weighted 3780.
        # Velocity Jan–Mar: won O1, O5; lost O2, O6 → 5 × (2/4) × 1250 / ((30 + 50) / 2)
        # = 78.125.
        (MAR, 3, 1, 1, 1500.0, 500.0, 1 / 2, 1500 / 2000, 1500.0, 50.0, 50.0,
         5, 6000.0, 3780.0, 5 * (2 / 4) * ((1000 + 1500) / 2) / ((30 + 50) / 2)),
        # Apr (to as_of): no creation (O9 deleted); O7 (1200, 40) and O10 (800, 20) won:
        # avg deal 1000, avg cycle 30, median (20 + 40) / 2 = 30.
        # Open at as_of: O3 (2400), O4 (80), O8 (proposal .5 → 300; its 04-20 change is
        # ignored): 4000, weighted 2780.
        # Velocity Feb–Apr (O2 of Jan drops out): won O1, O5, O7, O10, lost O6 →
        # 3 × (4/5) × (4500/4) / ((30 + 50 + 40 + 20)/4) = 2700 / 35.
        (APR, 0, 2, 0, 2000.0, 0.0, 2 / 2, 2000 / 2000, 1000.0, 30.0, 30.0,
         3, 4000.0, 2780.0, 3 * (4 / 5) * (4500 / 4) / ((30 + 50 + 40 + 20) / 4)),
    ]
    # fmt: on
    check_mart(built, "kpi_monthly", KPI_MONTHLY_COLUMNS, 1, expected)


KPI_REP_MONTHLY_COLUMNS = [
    "owner_id",
    "month",
    *KPI_MONTHLY_COLUMNS[1:],
    "activities_count",
    "avg_touchpoints_per_won",
    "quota_amount",
    "attainment",
]


def test_kpi_rep_monthly(built):
    # u1: O1 (won Feb), O2 (lost Jan), O5 (won Mar), O8 (open), O10 (won Apr), O9 deleted.
    # u2: O3 (open), O4 (open), O6 (lost Mar), O7 (won Apr).
    # The fixture has no quotas: quota_amount and attainment are null everywhere.
    # fmt: off
    expected = [
        # u1 Jan: created O1, O2; O2 lost. Open at 02-01: O1 (proposal .5).
        # Velocity: no won deal in Nov–Jan → null. Activities act1, act2, act4, act5.
        ("u1", JAN, 2, 0, 1, 0.0, 500.0, 0.0, 0.0, None, None, None,
         1, 1000.0, 500.0, None, 4, None, None, None),
        # u1 Feb: created O5; O1 won (1000, 30). Open at 03-01: O5 (proposal .5 → 750).
        # Velocity Dec–Feb: O2 lost, O1 won → 1 × (1/2) × 1000 / 30. Activity act3.
        # Touchpoints of O1 = 2.
        ("u1", FEB, 1, 1, 0, 1000.0, 0.0, 1.0, 1.0, 1000.0, 30.0, 30.0,
         1, 1500.0, 750.0, 1 * (1 / 2) * 1000 / 30, 1, 2.0, None, None),
        # u1 Mar: created O8, O10; O5 won (1500, 50). Open at 04-01: O8 (proposal .5 →
        # 300), O10 (prospecting .05 → 40). Velocity Jan–Mar: O2 lost, O1 and O5 won →
        # 2 × (2/3) × 1250 / 40. Activities act9, act13. Touchpoints of O5 = 1.
        ("u1", MAR, 2, 1, 0, 1500.0, 0.0, 1.0, 1.0, 1500.0, 50.0, 50.0,
         2, 1400.0, 340.0, 2 * (2 / 3) * 1250 / 40, 2, 1.0, None, None),
        # u1 Apr: O9 deleted → 0 created; O10 won (800, 20). Open at as_of: O8 (300).
        # Velocity Feb–Apr: O1, O5, O10 won → 1 × 1 × (3300/3) / (100/3) = 33.
        # act11 is after as_of → 0 activities. Touchpoints of O10 = 1.
        ("u1", APR, 0, 1, 0, 800.0, 0.0, 1.0, 1.0, 800.0, 20.0, 20.0,
         1, 600.0, 300.0, 1 * 1.0 * (3300 / 3) / (100 / 3), 0, 1.0, None, None),
        # u2 Jan: created O3; nothing closed → rates null, sums 0. Open at 02-01: O3
        # (qualification .1 × 3000).
        ("u2", JAN, 1, 0, 0, 0.0, 0.0, None, None, None, None, None,
         1, 3000.0, 300.0, None, 0, None, None, None),
        # u2 Feb: created O4, O6. Open at 03-01: O3 (1500), O4 (80), O6 (50).
        # Activities act6, act8 (no deal), act12.
        ("u2", FEB, 2, 0, 0, 0.0, 0.0, None, None, None, None, None,
         3, 3900.0, 1630.0, None, 3, None, None, None),
        # u2 Mar: created O7; O6 lost (500). Open at 04-01: O3 (2400), O4 (80), O7
        # (negotiation .8 → 960). Velocity Jan–Mar: only O6 lost → null. Activity act7.
        ("u2", MAR, 1, 0, 1, 0.0, 500.0, 0.0, 0.0, None, None, None,
         3, 4600.0, 3440.0, None, 1, None, None, None),
        # u2 Apr: O7 won (1200, 40). Open at as_of: O3 (2400), O4 (80).
        # Velocity Feb–Apr: O6 lost, O7 won → 2 × (1/2) × 1200 / 40 = 30. Activity act10.
        ("u2", APR, 0, 1, 0, 1200.0, 0.0, 1.0, 1.0, 1200.0, 40.0, 40.0,
         2, 3400.0, 2480.0, 2 * (1 / 2) * 1200 / 40, 1, 1.0, None, None),
    ]
    # fmt: on
    check_mart(built, "kpi_rep_monthly", KPI_REP_MONTHLY_COLUMNS, 2, expected)


KPI_STAGE_DURATION_COLUMNS = [
    "stage",
    "stage_order",
    "completed_intervals",
    "avg_days",
    "median_days",
    "p90_days",
    "current_count",
    "avg_current_age_days",
    "is_bottleneck",
]


def test_kpi_stage_duration(built):
    # Completed intervals (non-deleted; O9's current prospecting does not count):
    #   prospecting   O1 5, O2 5, O3 10, O5 10, O6 5, O7 10, O8 10, O10 20
    #                 sorted 5 5 5 10 10 10 10 20: median pos 3.5 → 10;
    #                 p90 pos 0.9 × 7 = 6.3 → 10 + 0.3 × (20 - 10) = 13
    #   qualification O1 10, O3 16, O6 25: p90 pos 1.8 → 16 + 0.8 × 9 = 23.2
    #   meeting       O2 15, O5 10, O5 5: p90 pos 1.8 → 10 + 0.8 × 5 = 14
    #   proposal      O1 15, O3 20, O5 10, O5 15: sorted 10 15 15 20, median 15,
    #                 p90 pos 2.7 → 15 + 0.7 × 5 = 18.5
    #   negotiation   O7 30
    #   closed_won    O1 10 (exited into onboarding)
    # Current at as_of: meeting O4 73; proposal O8 21; negotiation O3 44; closed_won O5 21,
    # O7 5, O10 6; closed_lost O2 77, O6 34; onboarding O1 60.
    # Bottleneck: highest open median is negotiation (30).
    F, T = False, True
    # fmt: off
    expected = [
        ("prospecting", 1, 8, 75 / 8, 10.0, 13.0, 0, None, F),
        ("qualification", 2, 3, (10 + 16 + 25) / 3, 16.0, 23.2, 0, None, F),
        ("meeting", 3, 3, (15 + 10 + 5) / 3, 10.0, 14.0, 1, 73.0, F),
        ("proposal", 4, 4, (15 + 20 + 10 + 15) / 4, 15.0, 18.5, 1, 21.0, F),
        ("negotiation", 5, 1, 30.0, 30.0, 30.0, 1, 44.0, T),
        ("closed_won", 6, 1, 10.0, 10.0, 10.0, 3, (21 + 5 + 6) / 3, F),
        ("closed_lost", 7, 0, None, None, None, 2, (77 + 34) / 2, F),
        ("onboarding", 8, 0, None, None, None, 1, 60.0, F),
        ("follow_up", 9, 0, None, None, None, 0, None, F),
        ("renewal", 10, 0, None, None, None, 0, None, F),
    ]
    # fmt: on
    check_mart(built, "kpi_stage_duration", KPI_STAGE_DURATION_COLUMNS, 1, expected)
