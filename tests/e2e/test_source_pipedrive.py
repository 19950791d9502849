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

Second landing: a change-log-only export
(tests/fixtures/pipedrive_changelog: deal_changes.csv without old_value, stages.csv with
after-sales stages, users.csv, activity.csv; no deals file), known answers computed by
hand. as_of = 2026-04-01T00:00:00Z; every amount in USD (the reporting currency).

Deals rebuilt from the change log (stage names → canonical through the default labels):

| deal | created (UTC) | owner | amount | history | at as_of |
| --- | --- | --- | --- | --- | --- |
| 1 | 01-05 09:00 | 1 | 10000 | Qualified 01-05 09:00, Contact Made 01-12 10:00, Proposal Made 01-20 10:00, won 02-04 09:00 (status), Implementation/Onboarding 02-10 09:00, Follow-up/Customer Success 03-01 09:00 | won, cycle 30 |
| 2 | 01-08 12:00 | 2 | 5000 | Qualified 01-08 12:00, Contact Made 01-15 12:00, lost 01-28 12:00 (status; lost_reason Price too high) | lost, cycle 20 |
| 3 | 02-02 10:00 | 1 → 2 | 8000 | Qualified 02-02 10:00, Proposal Made 02-16 10:00, lost 02-20 10:00, reopened 02-25 10:00 (back into Proposal Made: no old_value, the status before is the previous status row) | open |
| 4 | 01-10 09:00 (kept; 02-01 09:00 set aside) | 2 | 3000 | Qualified 01-10 09:00, Contact Made 01-20 09:00, Qualified 02-01 09:00, Proposal Made 02-10 09:00 | open |
| 5 | no add_time | | | its 3 rows set aside | not loaded |
| 6 | 01-15 11:00 | 1 | 6000 | Contact Made 01-15 11:00, Negotiations Started 02-01 11:00, won 02-20 11:00 (won_time, no status row), Implementation/Onboarding 02-25 11:00, Renewal/Expansion 03-20 11:00 | won, cycle 36 |
| 7 | 01-20 10:00 | 2 | 1500 | Qualified 01-20 10:00, Proposal Made 01-25 10:00, lost 02-05 10:00 (a lost_reason, no status row) | lost, cycle 16 |
| 8 | 02-20 14:00 | 2 | 4000 | Contact Made 02-20 14:00 (its stage row twice: applied once; title ×2 and org_id set aside) | open |

Cycles (days): 1: 01-05 09:00 → 02-04 09:00 = 30; 2: 01-08 12:00 → 01-28 12:00 = 20;
6: 01-15 11:00 → 02-20 11:00 = 16 (rest of Jan) + 20 = 36; 7: 01-20 10:00 → 02-05 10:00 =
11 + 5 = 16. Stage changes: 6 + 3 + 4 + 4 + 5 + 3 + 1 = 26.

Deal 4 keeps its earliest add_time: with the later one, its entries of 01-10 and 01-20
would predate created_at and be quarantined.

After-sales (kpi_post_sale, month of the win = February): deals 1 (02-04 09:00) and 6
(02-20 11:00) won. First activity after the win: deal 1 activity 903 at 02-12 09:00 = 8
days; deal 6 activity 905 at 03-10 11:00 = 18 days; both inside the 30-day window → 2 of 2
followed up, average and median (8 + 18) / 2 = 13. Onboarding reached: 1 and 6; follow-up:
1; renewal: 6.

Activities: 12 rows; ids 906 and 909 each on two different rows (the last in file order is
kept: 906 the meeting on deal 3, 909 the one of 01-23) → 2 set aside, 10 converted; 907
is an exact repeat, stored once by the loader → 9 in raw.activities.
"""  # noqa: E501

from __future__ import annotations

import contextlib
import io
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


# --- a change-log-only export (known answers in the module docstring) ----------------

CHANGELOG_FIXTURE = Path(__file__).parents[1] / "fixtures" / "pipedrive_changelog"
CHANGELOG_AS_OF = "2026-04-01T00:00:00Z"
CHANGELOG_BATCH = "2026-03-31T0600"


@pytest.fixture(scope="module")
def changelog_built(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("pipedrive_changelog_e2e")
    landing = tmp / "landing"
    shutil.copytree(CHANGELOG_FIXTURE, landing)
    warehouse = tmp / "warehouse.duckdb"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_pipeline(landing, warehouse, CHANGELOG_AS_OF, source="pipedrive")
    assert code == 0, err.getvalue()
    return warehouse, err.getvalue()


def test_the_run_names_every_row_set_aside(changelog_built):
    _, err = changelog_built
    prefix = f"pipedrive {CHANGELOG_BATCH}: "
    # Deal 5 has no add_time row: its 3 rows, counted, with the deal named.
    assert f"{prefix}deal_changes.csv: 3 rows set aside, of deals with no add_time row" in err
    assert "1 deal: 5 (3 rows)" in err
    assert f"{prefix}deal_changes.csv: 3 rows set aside, of field keys a deal is not " in err
    assert "org_id ×1, title ×2" in err
    # The duplicated deal id: the rule, the values kept and set aside.
    assert f"{prefix}deal_changes.csv: 1 row set aside, a second, different add_time" in err
    assert "4 (2026-01-10 09:00:00Z kept; 2026-02-01 09:00:00Z set aside)" in err
    # Colliding activity ids: count, ids, which row was kept and why.
    assert (
        f"{prefix}activity.csv: 2 rows set aside, activity id on two or more different rows "
        f"(the last in file order is kept, the file having no update time): 2 ids: 906, 909"
    ) in err
    assert f"{prefix}no deals file: 7 deals rebuilt from the change log" in err


def test_changelog_reconciliation(changelog_built):
    warehouse, _ = changelog_built
    got = query(
        warehouse,
        "select export_file, entity, rows_read, rows_emitted, rows_set_aside, set_aside "
        "from quality.source_reconciliation order by export_file",
    )
    rows = {r[0]: r[1:5] for r in got}
    assert rows == {
        "activity.csv": ("activities", 12, 10, 2),
        # 58 rows: 50 used, 3 of deal 5, 3 unused keys, 1 second add_time, 1 repeat.
        "deal_changes.csv": ("opportunities", 58, 50, 8),
        "stages.csv": (None, 7, 0, 7),
        "users.csv": ("users", 2, 2, 0),
    }
    reasons = json.loads(next(r[5] for r in got if r[0] == "deal_changes.csv"))
    assert sorted(reasons.values()) == [1, 1, 3, 3]


def test_changelog_raw_rows(changelog_built):
    warehouse, _ = changelog_built
    assert query(warehouse, "select count(*) from raw.opportunities") == [(7,)]
    assert query(warehouse, "select count(*) from raw.stage_changes") == [(26,)]
    assert query(warehouse, "select count(*) from raw.activities") == [(9,)]
    # Nothing in quarantine: no stage change of the duplicated deal predates created_at,
    # and deal 5's rows were set aside, not sent to the gate as orphans.
    assert query(warehouse, "select count(*) from quality.quarantine") == [(0,)]
    assert query(
        warehouse,
        "select opportunity_id, created_at, owner_id, stage, lost_reason "
        "from raw.opportunities where opportunity_id in "
        "('pipedrive:3', 'pipedrive:4', 'pipedrive:7') order by opportunity_id",
    ) == [
        ("pipedrive:3", datetime(2026, 2, 2, 10), "pipedrive:2", "Proposal Made", None),
        ("pipedrive:4", datetime(2026, 1, 10, 9), "pipedrive:2", "Proposal Made", None),
        ("pipedrive:7", datetime(2026, 1, 20, 10), "pipedrive:2", "closed_lost", "No budget"),
    ]
    assert query(
        warehouse,
        "select activity_type, occurred_at, opportunity_id from raw.activities "
        "where activity_id in ('pipedrive:906', 'pipedrive:909') order by activity_id",
    ) == [
        ("meeting", datetime(2026, 2, 17, 9), "pipedrive:3"),
        ("call", datetime(2026, 1, 23, 10), "pipedrive:7"),
    ]


def test_changelog_fct_opportunities(changelog_built):
    warehouse, _ = changelog_built
    got = query(
        warehouse,
        "select opportunity_id, status, amount, closed_at, sales_cycle_days, current_stage "
        "from marts.fct_opportunities order by opportunity_id",
    )
    assert got == [
        ("pipedrive:1", "won", 10000.0, datetime(2026, 2, 4, 9), 30.0, "follow_up"),
        ("pipedrive:2", "lost", 5000.0, datetime(2026, 1, 28, 12), 20.0, "closed_lost"),
        ("pipedrive:3", "open", 8000.0, None, None, "proposal"),
        ("pipedrive:4", "open", 3000.0, None, None, "proposal"),
        ("pipedrive:6", "won", 6000.0, datetime(2026, 2, 20, 11), 36.0, "renewal"),
        ("pipedrive:7", "lost", 1500.0, datetime(2026, 2, 5, 10), 16.0, "closed_lost"),
        ("pipedrive:8", "open", 4000.0, None, None, "meeting"),
    ]


def test_changelog_stage_history(changelog_built):
    warehouse, _ = changelog_built
    got = query(
        warehouse,
        "select opportunity_id, stage, entered_at, exited_at from marts.fct_stage_history "
        "where opportunity_id in ('pipedrive:1', 'pipedrive:3', 'pipedrive:4') "
        "order by opportunity_id, entered_at",
    )
    assert got == [
        ("pipedrive:1", "qualification", datetime(2026, 1, 5, 9), datetime(2026, 1, 12, 10)),
        ("pipedrive:1", "meeting", datetime(2026, 1, 12, 10), datetime(2026, 1, 20, 10)),
        ("pipedrive:1", "proposal", datetime(2026, 1, 20, 10), datetime(2026, 2, 4, 9)),
        ("pipedrive:1", "closed_won", datetime(2026, 2, 4, 9), datetime(2026, 2, 10, 9)),
        ("pipedrive:1", "onboarding", datetime(2026, 2, 10, 9), datetime(2026, 3, 1, 9)),
        ("pipedrive:1", "follow_up", datetime(2026, 3, 1, 9), None),
        # Lost, then reopened into the stage it held.
        ("pipedrive:3", "qualification", datetime(2026, 2, 2, 10), datetime(2026, 2, 16, 10)),
        ("pipedrive:3", "proposal", datetime(2026, 2, 16, 10), datetime(2026, 2, 20, 10)),
        ("pipedrive:3", "closed_lost", datetime(2026, 2, 20, 10), datetime(2026, 2, 25, 10)),
        ("pipedrive:3", "proposal", datetime(2026, 2, 25, 10), None),
        # Both deals under id 4, one history from the earliest add_time on.
        ("pipedrive:4", "qualification", datetime(2026, 1, 10, 9), datetime(2026, 1, 20, 9)),
        ("pipedrive:4", "meeting", datetime(2026, 1, 20, 9), datetime(2026, 2, 1, 9)),
        ("pipedrive:4", "qualification", datetime(2026, 2, 1, 9), datetime(2026, 2, 10, 9)),
        ("pipedrive:4", "proposal", datetime(2026, 2, 10, 9), None),
    ]


def test_changelog_kpi_post_sale(changelog_built):
    warehouse, _ = changelog_built
    got = query(
        warehouse,
        "select month, won_count, followed_up_count, avg_days_to_first_activity, "
        "median_days_to_first_activity, onboarding_count, follow_up_count, renewal_count "
        "from marts.kpi_post_sale where won_count > 0 order by month",
    )
    assert got == [(date(2026, 2, 1), 2, 2, 13.0, 13.0, 2, 1, 1)]
