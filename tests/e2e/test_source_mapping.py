"""End to end, the generic mapping adapter: `crm-pipeline run --source mapping:FILE` on the
fixture tests/fixtures/mapping (a home-grown CRM's exports and crm_mapping.yaml), with
known answers computed by hand.

Two batches, as_of = 2026-03-15T00:00:00Z. Deals (USD; an empty Currency is the constant
USD); stage history from the wide "Entered ..." columns, "Created" giving the Lead In entry
(times are 00:00 UTC unless written):

| deal | created | amount | history (canonical) | at as_of |
| --- | --- | --- | --- | --- |
| D-101 | 01-05 12:00 | 12000 | prospecting, qualification 01-08, meeting 01-12, proposal 01-20, closed_won 02-04 | won |
| D-102 | 01-07 12:00 | 5000 | prospecting, qualification 01-09, closed_lost 01-27 | lost |
| D-103 | 01-12 06:00 | 20000 → 22000 (batch 2) | prospecting, qualification 01-15, meeting 01-22, proposal 02-02, negotiation 02-10, closed_won 03-06 (batch 2) | won |
| D-104 | 01-20 12:00 | 8000 | prospecting, qualification 01-23, meeting 01-30 | open |
| D-105 | 02-02 12:00 | 3000 | prospecting, meeting 02-05, proposal 02-10; deleted in batch 2 | open, deleted |
| D-106 | 02-03 12:00 | 7000 | prospecting, qualification 02-06, closed_lost 02-13 (status Abandoned) | lost |
| D-107 | 02-09 12:00 | 4000 | prospecting, meeting 02-11, closed_won 02-14 | won |
| D-108 | 02-12 12:00 | 6000 | prospecting | open |
| D-109 | 03-02 12:00 | 9000 | prospecting, qualification 03-05, closed_lost 03-10 (batch 2) | lost |

Quotas (targets.csv, months written 01.2026): batch 1 gives U1 15000 / 15000 / 20000 and U2
25000 each for January to March (an empty Currency is the constant USD); batch 2 revises
U1's March to 18000.
"""  # noqa: E501

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from pipeline_helpers import query, run_pipeline

FIXTURE = Path(__file__).parents[1] / "fixtures" / "mapping"
AS_OF = "2026-03-15T00:00:00Z"

pytestmark = pytest.mark.slow


def ts(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mapping")
    shutil.copytree(FIXTURE, tmp / "crm")
    warehouse = tmp / "warehouse.duckdb"
    mapping = f"mapping:{tmp / 'crm' / 'crm_mapping.yaml'}"
    code = run_pipeline(tmp / "crm" / "exports", warehouse, AS_OF, source=mapping)
    assert code == 0
    return warehouse


def test_raw_rows_namespaced_with_attributes(built):
    assert query(built, "select count(*), count(distinct _source) from raw.opportunities") == [
        (9, 1)
    ]
    # D-103: batch 2 (later Last modified) supersedes batch 1; raw keeps the CRM's label.
    assert query(
        built,
        "select amount, stage, is_won, is_closed, _source, _batch_id from raw.opportunities "
        "where opportunity_id = 'mapping:D-103'",
    ) == [(22000.0, "Won", True, True, "mapping", "2026-03-14")]
    assert query(
        built, "select is_deleted from raw.opportunities where opportunity_id = 'mapping:D-105'"
    ) == [(True,)]
    ((attributes,),) = query(
        built, "select _attributes from raw.opportunities where opportunity_id = 'mapping:D-101'"
    )
    # The export row it came from is kept too (line 2 of deals.csv: the header is line 1).
    assert json.loads(attributes) == {
        "tags": "upsell;web",
        "region": "North",
        "_export_file": "deals.csv",
        "_export_line": "2",
    }
    assert query(
        built,
        "select owner_id, account_id, currency from raw.opportunities "
        "where opportunity_id = 'mapping:D-102'",
    ) == [("mapping:U1", "mapping:C-2", "USD")]  # empty Currency → constant USD
    # 26 stage changes in batch 1, 12 in batch 2 of which 8 repeat → 30 distinct.
    assert query(built, "select count(*) from raw.stage_changes") == [(30,)]
    assert query(
        built,
        "select (select count(*) from raw.users), (select count(*) from raw.accounts), "
        "(select count(*) from raw.activities), (select count(*) from quality.quarantine)",
    ) == [(2, 4, 7, 0)]
    assert query(
        built, "select activity_type, subject from raw.activities where activity_id = 'mapping:A-1'"
    ) == [("call", "Intro call, asked for\na demo next week")]


def test_raw_quotas(built):
    # U1's March from batch 2 replaces batch 1's 20000; the rest stays from batch 1.
    assert query(
        built,
        "select owner_id, month, amount, currency, _batch_id from raw.quotas "
        "order by owner_id, month",
    ) == [
        ("mapping:U1", date(2026, 1, 1), 15000.0, "USD", "2026-02-15"),
        ("mapping:U1", date(2026, 2, 1), 15000.0, "USD", "2026-02-15"),
        ("mapping:U1", date(2026, 3, 1), 18000.0, "USD", "2026-03-14"),
        ("mapping:U2", date(2026, 1, 1), 25000.0, "USD", "2026-02-15"),
        ("mapping:U2", date(2026, 2, 1), 25000.0, "USD", "2026-02-15"),
        ("mapping:U2", date(2026, 3, 1), 25000.0, "USD", "2026-02-15"),
    ]
    # 6 rows in batch 1, 1 in batch 2: all loaded, nothing quarantined or duplicated.
    assert query(
        built,
        "select batch_id, input_rows, loaded_rows, quarantined_rows, duplicate_rows "
        "from quality.ingestion_log where entity = 'quotas' order by 1",
    ) == [("2026-02-15", 6, 6, 0, 0), ("2026-03-14", 1, 1, 0, 0)]


def test_stage_history(built):
    got = query(
        built,
        "select opportunity_id, stage, entered_at, exited_at, is_current "
        "from marts.fct_stage_history where opportunity_id in "
        "('mapping:D-101', 'mapping:D-103', 'mapping:D-107') order by opportunity_id, entered_at",
    )
    assert got == [
        ("mapping:D-101", "prospecting", ts(1, 5, 12), ts(1, 8), False),
        ("mapping:D-101", "qualification", ts(1, 8), ts(1, 12), False),
        ("mapping:D-101", "meeting", ts(1, 12), ts(1, 20), False),
        ("mapping:D-101", "proposal", ts(1, 20), ts(2, 4), False),
        ("mapping:D-101", "closed_won", ts(2, 4), None, True),
        ("mapping:D-103", "prospecting", ts(1, 12, 6), ts(1, 15), False),
        ("mapping:D-103", "qualification", ts(1, 15), ts(1, 22), False),
        ("mapping:D-103", "meeting", ts(1, 22), ts(2, 2), False),
        ("mapping:D-103", "proposal", ts(2, 2), ts(2, 10), False),
        ("mapping:D-103", "negotiation", ts(2, 10), ts(3, 6), False),
        ("mapping:D-103", "closed_won", ts(3, 6), None, True),
        # Qualified skipped: no cell, no interval.
        ("mapping:D-107", "prospecting", ts(2, 9, 12), ts(2, 11), False),
        ("mapping:D-107", "meeting", ts(2, 11), ts(2, 14), False),
        ("mapping:D-107", "closed_won", ts(2, 14), None, True),
    ]


def test_fct_opportunities(built):
    got = query(
        built,
        "select opportunity_id, status, amount, closed_at, sales_cycle_days, is_deleted "
        "from marts.fct_opportunities order by opportunity_id",
    )
    assert got == [
        # cycle = closed_at − created_at in days: 02-04 − 01-05 12:00 = 30 − 0.5
        ("mapping:D-101", "won", 12000.0, ts(2, 4), 29.5, False),
        # 01-27 − 01-07 12:00 = 20 − 0.5
        ("mapping:D-102", "lost", 5000.0, ts(1, 27), 19.5, False),
        # 03-06 − 01-12 06:00 = (19 + 28 + 6) − 0.25 = 52.75; amount from batch 2
        ("mapping:D-103", "won", 22000.0, ts(3, 6), 52.75, False),
        ("mapping:D-104", "open", 8000.0, None, None, False),
        ("mapping:D-105", "open", 3000.0, None, None, True),
        # Status Abandoned, Lost on 02-13: 02-13 − 02-03 12:00 = 10 − 0.5
        ("mapping:D-106", "lost", 7000.0, ts(2, 13), 9.5, False),
        # 02-14 − 02-09 12:00 = 5 − 0.5
        ("mapping:D-107", "won", 4000.0, ts(2, 14), 4.5, False),
        ("mapping:D-108", "open", 6000.0, None, None, False),
        # 03-10 − 03-02 12:00 = 8 − 0.5
        ("mapping:D-109", "lost", 9000.0, ts(3, 10), 7.5, False),
    ]


def test_kpi_monthly_february(built):
    (row,) = query(
        built,
        "select opportunities_created, won_count, lost_count, won_amount, win_rate, "
        "avg_deal_size, avg_sales_cycle_days from marts.kpi_monthly "
        "where month = date '2026-02-01'",
    )
    # Created in February: D-106, D-107, D-108 (D-105 is deleted) = 3. Closed in
    # February: won D-101 (12000) and D-107 (4000), lost D-106.
    assert row[:4] == (3, 2, 1, 16000.0)
    assert row[4] == pytest.approx(2 / 3)  # win rate 2 won / (2 won + 1 lost) = 0.6667
    assert row[5] == pytest.approx(8000.0)  # deal size 16000 / 2 won = 8000
    assert row[6] == pytest.approx(17.0)  # cycle (29.5 + 4.5) / 2 = 17.0
    # March: won D-103 (22000), lost D-109 → 1 / (1 + 1) = 0.5, deal size 22000.
    assert query(
        built,
        "select win_rate, avg_deal_size from marts.kpi_monthly where month = date '2026-03-01'",
    ) == [(0.5, 22000.0)]
    assert query(built, "select max(month) from marts.kpi_monthly") == [(date(2026, 3, 1),)]
