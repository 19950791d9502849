"""End to end on HubSpot exports: `crm-pipeline run --source hubspot` over
tests/fixtures/hubspot, known answers computed by hand from the fixture files.

as_of = 2026-03-15T00:00:00Z. Batches 2026-02-01T0600 and 2026-03-14T0600 (incremental).
Stage ids map through DEFAULT_STAGE_LABELS: appointmentscheduled → meeting (3),
qualifiedtobuy → qualification (2), presentationscheduled → proposal (4), contractsent →
negotiation (5), closedwon → closed_won, closedlost → closed_lost. Day numbers: Jan d =
d-1, Feb d = 30+d, Mar d = 58+d.

| deal | owner | created | amount | stage history (canonical) | at as_of |
| --- | --- | --- | --- | --- | --- |
| 1001 | u1 | 01-05 09:00 | 10000 → 12000 (b2) | meeting 01-05, qualification 01-12 (regression), proposal 01-20, closed_won 02-04 (b2), all 09:00 | won, cycle 35-5 = 30 |
| 1002 | u1 | 01-08 (epoch ms) | 5000 | meeting 01-08, closed_lost 01-28 | lost, cycle 27-7 = 20 |
| 1003 | u2 | 01-15 | 8000 | qualification 01-15 | open |
| 1004 | u2 | 01-10 | 4000 | meeting 01-10, negotiation 01-25, closed_won 01-30 (v2 column; legacy 00:00:05 ignored) | won, cycle 29-9 = 20 |
| 1005 | u1 | 02-03 (b2) | 6000 | meeting 02-03, proposal 02-13, meeting 02-18, proposal 02-23 (the last two from deal_property_history), closed_won 03-05 | won, cycle 63-33 = 30 |
| 1006 | u2 | 02-10 (b2) | 2000 | qualification 02-10, closed_lost 03-02 | lost, cycle 60-40 = 20 |
| 1007 | u1 | 01-25 | 1500 | meeting 01-25; archived in b2 | soft-deleted |
| 1008 | u2 | 01-12 | 4000 | meeting 01-12; merged into 1004 | soft-deleted |
"""  # noqa: E501

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from pipeline_helpers import query, run_pipeline

FIXTURE = Path(__file__).parents[1] / "fixtures" / "hubspot"
AS_OF = "2026-03-15T00:00:00Z"

pytestmark = pytest.mark.slow


def ts(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hubspot")
    landing = tmp / "landing"
    shutil.copytree(FIXTURE, landing)
    warehouse = tmp / "warehouse.duckdb"
    code = run_pipeline(landing, warehouse, AS_OF, source="hubspot")
    assert code == 0
    return warehouse


def test_raw_rows_namespaced_with_attributes(built):
    got = query(
        built,
        "select opportunity_id, stage, amount, _batch_id, _source, is_deleted, "
        "json_extract_string(_attributes, '$.partner_tier') "
        "from raw.opportunities order by opportunity_id",
    )
    B1, B2 = "2026-02-01T0600", "2026-03-14T0600"
    assert got == [
        # the later modification (batch 2) wins: closedwon, 10000 → 12000, tier platinum
        ("hubspot:1001", "closedwon", 12000.0, B2, "hubspot", False, "platinum"),
        ("hubspot:1002", "closedlost", 5000.0, B1, "hubspot", None, None),
        ("hubspot:1003", "qualifiedtobuy", 8000.0, B1, "hubspot", None, "silver"),
        ("hubspot:1004", "closedwon", 4000.0, B1, "hubspot", None, "gold"),
        ("hubspot:1005", "closedwon", 6000.0, B2, "hubspot", False, None),
        ("hubspot:1006", "closedlost", 2000.0, B2, "hubspot", False, None),
        # archived in batch 2 (the deleted record)
        ("hubspot:1007", "appointmentscheduled", 1500.0, B2, "hubspot", True, None),
        # merged into 1004 (1004's hs_merged_object_ids)
        ("hubspot:1008", "appointmentscheduled", 4000.0, B1, "hubspot", True, None),
    ]
    assert query(
        built,
        "select json_extract_string(_attributes, '$.hs_merged_object_ids') "
        "from raw.opportunities where opportunity_id = 'hubspot:1004'",
    ) == [("1008",)]
    assert query(
        built,
        "select created_at, close_date, lost_reason, owner_id, account_id "
        "from raw.opportunities where opportunity_id = 'hubspot:1002'",
    ) == [(ts(1, 8), date(2026, 1, 28), "Budget frozen, revisit\nnext fiscal year",
           "hubspot:51000001", "hubspot:7002")]  # fmt: skip
    assert query(built, "select user_id, name, is_active from raw.users order by 1") == [
        ("hubspot:51000001", "Ana Souza", True),
        ("hubspot:51000002", "Ben Carter", True),
        ("hubspot:51000003", "chris.old@example.com", False),
    ]
    assert query(built, "select count(*), count(distinct _source) from raw.accounts") == [(3, 1)]
    # stage changes: batch 1 11 rows; batch 2 10 wide + 7 history = 17, of which 4 re-export
    # batch-1 rows (1001 ×3, 1007) and 5 history rows repeat wide rows → 28 in, 19 distinct.
    assert query(
        built,
        "select sum(input_rows), sum(loaded_rows), sum(quarantined_rows), "
        "sum(duplicate_rows) from quality.ingestion_log where entity = 'stage_changes'",
    ) == [(28, 19, 0, 9)]
    assert query(built, "select count(*) from quality.quarantine") == [(0,)]


def test_stage_history(built):
    F, T = False, True
    got = query(
        built,
        "select opportunity_id, entered_at, stage, exited_at, is_regression "
        "from marts.fct_stage_history "
        "where opportunity_id in ('hubspot:1001', 'hubspot:1004', 'hubspot:1005') "
        "order by opportunity_id, entered_at",
    )
    assert got == [
        # HubSpot's own order appointmentscheduled → qualifiedtobuy is meeting (3) →
        # qualification (2): a regression under the canonical order (module docstring).
        ("hubspot:1001", ts(1, 5, 9), "meeting", ts(1, 12, 9), T),
        ("hubspot:1001", ts(1, 12, 9), "qualification", ts(1, 20, 9), F),
        ("hubspot:1001", ts(1, 20, 9), "proposal", ts(2, 4, 9), F),
        ("hubspot:1001", ts(2, 4, 9), "closed_won", None, F),
        ("hubspot:1004", ts(1, 10), "meeting", ts(1, 25), F),
        ("hubspot:1004", ts(1, 25), "negotiation", ts(1, 30), F),
        ("hubspot:1004", ts(1, 30), "closed_won", None, F),
        ("hubspot:1005", ts(2, 3), "meeting", ts(2, 13), F),
        # back to meeting 02-18: only deal_property_history knows it
        ("hubspot:1005", ts(2, 13), "proposal", ts(2, 18), T),
        ("hubspot:1005", ts(2, 18), "meeting", ts(2, 23), F),
        ("hubspot:1005", ts(2, 23), "proposal", ts(3, 5), F),
        ("hubspot:1005", ts(3, 5), "closed_won", None, F),
    ]


def test_fct_opportunities(built):
    got = query(
        built,
        "select opportunity_id, status, amount, closed_at, sales_cycle_days, "
        "stage_changes_count, regressions_count, is_deleted "
        "from marts.fct_opportunities order by opportunity_id",
    )
    assert got == [
        # 4 intervals → 3 moves, 1 regression; cycle 35 - 5 = 30 (both 09:00)
        ("hubspot:1001", "won", 12000.0, ts(2, 4, 9), 30.0, 3, 1, False),
        # cycle 27 - 7 = 20
        ("hubspot:1002", "lost", 5000.0, ts(1, 28), 20.0, 1, 0, False),
        ("hubspot:1003", "open", 8000.0, None, None, 0, 0, False),
        # cycle 29 - 9 = 20
        ("hubspot:1004", "won", 4000.0, ts(1, 30), 20.0, 2, 0, False),
        # 5 intervals → 4 moves, 1 regression; cycle 63 - 33 = 30
        ("hubspot:1005", "won", 6000.0, ts(3, 5), 30.0, 4, 1, False),
        # cycle 60 - 40 = 20
        ("hubspot:1006", "lost", 2000.0, ts(3, 2), 20.0, 1, 0, False),
        # soft-deleted: kept, flagged, no intervals
        ("hubspot:1007", "open", 1500.0, None, None, 0, 0, True),
        ("hubspot:1008", "open", 4000.0, None, None, 0, 0, True),
    ]


def test_kpi_monthly(built):
    got = query(
        built,
        "select month, opportunities_created, won_count, lost_count, win_rate, "
        "avg_deal_size, avg_sales_cycle_days from marts.kpi_monthly order by month",
    )
    assert got == [
        # created 1001, 1002, 1003, 1004 (1007, 1008 deleted); won 1004 (4000, 20 d),
        # lost 1002: win rate 1 / (1 + 1) = 0.5, deal size 4000 / 1
        (date(2026, 1, 1), 4, 1, 1, 0.5, 4000.0, 20.0),
        # created 1005, 1006; won 1001 (12000, 30 d): 1 / (1 + 0) = 1.0
        (date(2026, 2, 1), 2, 1, 0, 1.0, 12000.0, 30.0),
        # won 1005 (6000, 30 d), lost 1006: 1 / (1 + 1) = 0.5
        (date(2026, 3, 1), 0, 1, 1, 0.5, 6000.0, 30.0),
    ]
