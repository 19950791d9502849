"""End to end: `crm-pipeline run --source pipedrive` on tests/fixtures/pipedrive, known
answers computed by hand. as_of = 2026-03-15T00:00:00Z; all amounts USD.

| deal | owner | created (UTC) | amount | Pipedrive history → canonical | at as_of |
| --- | --- | --- | --- | --- | --- |
| 1 | 1 | 01-05 09:00 | 10000 | Qualified 01-05 09:00 (creation), Contact Made 01-10 10:00, Proposal Made 01-20 10:00, won 02-04 09:00 | won, cycle 30 |
| 2 | 2 | 01-08 12:00 | 5000 | Qualified 01-08 12:00, Contact Made 01-12 12:00, lost 01-28 12:00 | lost, cycle 20 |
| 3 | 1 | 02-02 10:00 | 8000 → 9000 (batch 2) | Demo Scheduled 02-02 10:00, Negotiations Started 03-02 10:00 (batch 2), won 03-10 10:00 (batch 2) | won, cycle 36 |
| 4 | 2 | 02-10 08:00 | 3000 | Qualified, Contact Made 02-15; deleted in batch 2 | open, is_deleted |
| 5 | 1 | 02-12 09:00 | 2000 | Qualified 02-12 09:00, Proposal Made 02-20, lost 02-25 09:00 | lost, cycle 13 |
| 6 | 2 | 02-20 14:00 | 4000 | Contact Made 02-20 14:00 (no move) | open, meeting |
| 7 | 1 | 01-15 11:00 | 6000 | Contact Made 01-15 11:00, Negotiations Started 02-01 11:00, won_time 02-20 11:00 | won, cycle 36 |
| 8 | 2 | 01-20 10:00 | 1500 | Qualified 01-20, Proposal Made 01-25, lost 02-05 10:00, reopened 02-10 10:00 | open, proposal |

Cycles (days): 1: 01-05 09:00 → 02-04 09:00 = 30; 2: 01-08 12:00 → 01-28 12:00 = 20;
3: 02-02 10:00 → 03-10 10:00 = 26 (rest of Feb) + 10 = 36; 5: 02-12 09:00 → 02-25 09:00 = 13;
7: 01-15 11:00 → 02-20 11:00 = 16 (rest of Jan) + 20 = 36.
"""  # noqa: E501

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from pipeline_helpers import query, run_pipeline

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pipedrive"
AS_OF = "2026-03-15T00:00:00Z"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pipedrive_e2e")
    landing = tmp / "landing"
    shutil.copytree(FIXTURE, landing)
    warehouse = tmp / "warehouse.duckdb"
    code = run_pipeline(landing, warehouse, AS_OF, source="pipedrive")
    assert code == 0
    return warehouse


def test_raw_rows(built):
    got = query(
        built,
        "select opportunity_id, stage, amount, is_won, is_deleted, _source, _batch_id, "
        "_attributes from raw.opportunities where opportunity_id in "
        "('pipedrive:1', 'pipedrive:3', 'pipedrive:4') order by opportunity_id",
    )
    assert [r[:7] for r in got] == [
        ("pipedrive:1", "closed_won", 10000.0, True, False, "pipedrive", "2026-02-28T0600"),
        # Batch 2 supersedes (later update_time): won at 9000; deal 4 soft-deleted.
        ("pipedrive:3", "closed_won", 9000.0, True, False, "pipedrive", "2026-03-14T0600"),
        ("pipedrive:4", "Contact Made", 3000.0, False, True, "pipedrive", "2026-03-14T0600"),
    ]
    attributes = json.loads(got[0][7])
    assert attributes["pipedrive_stage"] == "Proposal Made"
    assert attributes["dcf558aac1ae4e8c4f849ba5e668430d8df9be12"] == "Enterprise"
    assert query(built, "select count(*) from raw.opportunities") == [(8,)]
    # 21 entries in batch 1 + 4 in batch 2, of which 2 (deal 3's and deal 4's creation
    # entries) repeat batch 1's → 23.
    assert query(built, "select count(*) from raw.stage_changes") == [(23,)]
    assert query(built, "select count(*) from quality.quarantine") == [(0,)]
    assert query(
        built,
        "select name, country, _attributes like '%Hauptstr. 1,\\n10115 Berlin%' "
        "from raw.accounts where account_id = 'pipedrive:10'",
    ) == [("Acme GmbH", "Germany", True)]
    assert query(
        built,
        "select activity_type, occurred_at, opportunity_id from raw.activities "
        "where activity_id = 'pipedrive:502'",
    ) == [("meeting", datetime(2026, 1, 21, 14, 30), "pipedrive:1")]


def test_stage_history(built):
    got = query(
        built,
        "select opportunity_id, stage, entered_at, exited_at from marts.fct_stage_history "
        "where opportunity_id in ('pipedrive:1', 'pipedrive:3', 'pipedrive:8') "
        "order by opportunity_id, entered_at",
    )
    assert got == [
        # Created in Qualified (the first move's old_value); Demo Scheduled skipped.
        ("pipedrive:1", "qualification", datetime(2026, 1, 5, 9), datetime(2026, 1, 10, 10)),
        ("pipedrive:1", "meeting", datetime(2026, 1, 10, 10), datetime(2026, 1, 20, 10)),
        ("pipedrive:1", "proposal", datetime(2026, 1, 20, 10), datetime(2026, 2, 4, 9)),
        ("pipedrive:1", "closed_won", datetime(2026, 2, 4, 9), None),
        # Batch 1 had no move; batch 2's move 3 → 5 and status won.
        ("pipedrive:3", "meeting", datetime(2026, 2, 2, 10), datetime(2026, 3, 2, 10)),
        ("pipedrive:3", "negotiation", datetime(2026, 3, 2, 10), datetime(2026, 3, 10, 10)),
        ("pipedrive:3", "closed_won", datetime(2026, 3, 10, 10), None),
        # Lost, then reopened into Proposal Made.
        ("pipedrive:8", "qualification", datetime(2026, 1, 20, 10), datetime(2026, 1, 25, 10)),
        ("pipedrive:8", "proposal", datetime(2026, 1, 25, 10), datetime(2026, 2, 5, 10)),
        ("pipedrive:8", "closed_lost", datetime(2026, 2, 5, 10), datetime(2026, 2, 10, 10)),
        ("pipedrive:8", "proposal", datetime(2026, 2, 10, 10), None),
    ]


def test_fct_opportunities(built):
    got = query(
        built,
        "select opportunity_id, status, amount, closed_at, sales_cycle_days, current_stage, "
        "is_deleted from marts.fct_opportunities order by opportunity_id",
    )
    assert got == [
        ("pipedrive:1", "won", 10000.0, datetime(2026, 2, 4, 9), 30.0, "closed_won", False),
        ("pipedrive:2", "lost", 5000.0, datetime(2026, 1, 28, 12), 20.0, "closed_lost", False),
        ("pipedrive:3", "won", 9000.0, datetime(2026, 3, 10, 10), 36.0, "closed_won", False),
        ("pipedrive:4", "open", 3000.0, None, None, "meeting", True),
        ("pipedrive:5", "lost", 2000.0, datetime(2026, 2, 25, 9), 13.0, "closed_lost", False),
        ("pipedrive:6", "open", 4000.0, None, None, "meeting", False),
        ("pipedrive:7", "won", 6000.0, datetime(2026, 2, 20, 11), 36.0, "closed_won", False),
        # The reopened deal is open again: no closed_at.
        ("pipedrive:8", "open", 1500.0, None, None, "proposal", False),
    ]


def test_kpi_monthly(built):
    got = query(
        built,
        "select month, opportunities_created, won_count, lost_count, won_amount, win_rate, "
        "avg_deal_size from marts.kpi_monthly order by month",
    )
    assert got == [
        # Created in Jan: deals 1, 2, 7, 8. Closed in Jan: 2 lost → win rate 0 / 1 = 0.
        (date(2026, 1, 1), 4, 0, 1, 0.0, 0.0, None),
        # Created in Feb: 3, 5, 6 (4 is deleted). Won 1 (10000) and 7 (6000), lost 5 (deal
        # 8's loss was undone): win rate 2 / (2 + 1) = 0.6667, deal size 16000 / 2 = 8000.
        (date(2026, 2, 1), 3, 2, 1, 16000.0, pytest.approx(2 / 3), 8000.0),
        # Won 3 (9000): win rate 1 / 1 = 1, deal size 9000.
        (date(2026, 3, 1), 0, 1, 0, 9000.0, 1.0, 9000.0),
    ]
