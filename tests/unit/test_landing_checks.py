"""Freshness of the newest batch and volume of each new batch, on a real warehouse."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ingestion.landing_checks import batch_time, freshness, volume
from ingestion.warehouse import connect, create_raw_tables


@pytest.fixture
def con(tmp_path: Path):
    c = connect(tmp_path / "w.duckdb")
    create_raw_tables(c)
    yield c
    c.close()


def log(con, run_id: str, batch_id: str, rows: int, status: str = "published") -> None:
    con.execute(
        "insert into quality.ingestion_log (run_id, batch_id, entity, source_file, "
        "content_sha256, status, input_rows, loaded_rows, quarantined_rows, duplicate_rows, "
        "rejected_rows, reasons, ingested_at) values "
        "(?, ?, 'opportunities', ?, 'sha', ?, ?, ?, 0, 0, 0, '[]', now())",
        [run_id, batch_id, f"{batch_id}/opportunities.csv", status, rows, rows],
    )


def test_batch_time_from_the_folder_name():
    assert batch_time("2026-11-25T0600") == datetime(2026, 11, 25, 6)
    assert batch_time("2026-11-25") == datetime(2026, 11, 25)
    assert batch_time("2026-11-25T06:30:15") == datetime(2026, 11, 25, 6, 30, 15)
    assert batch_time("export-7") is None


def test_freshness(con, tmp_path):
    log(con, "r1", "2026-11-24T0600", 10)
    log(con, "r1", "2026-11-25T0600", 10, status="rejected")  # not published: not newer
    fresh = freshness(con, tmp_path, datetime(2026, 11, 25, 12), max_age_hours=48)
    assert fresh.success
    assert fresh.observed == "newest batch 2026-11-24 06:00 is 30.0 h old at as_of"
    stale = freshness(con, tmp_path, datetime(2026, 11, 27, 12), max_age_hours=48, severity="error")
    assert not stale.success and stale.severity == "error"
    assert "78.0 h old" in stale.message and "freshness_max_age_hours (48 h)" in stale.message


def test_freshness_without_any_batch(con, tmp_path):
    assert not freshness(con, tmp_path, datetime(2026, 11, 25), max_age_hours=48).success


def test_volume_against_the_median_of_earlier_batches(con):
    for n, rows in enumerate([1000, 100, 120]):  # a full export, then increments
        log(con, "earlier", f"2026-11-2{n}T0600", rows)
    log(con, "now", "2026-11-23T0600", 110)
    log(con, "now", "2026-11-24T0600", 5)
    got = {o.observed: o.success for o in volume(con, "now", 0.1, 10.0)}
    # 2026-11-23 against median(1000, 100, 120) = 120: 110 / 120 = 0.92 → fine.
    # 2026-11-24 against median(1000, 100, 120, 110) = 115: 5 / 115 = 0.04 → too few.
    assert got == {
        "110 rows in batch 2026-11-23T0600, 0.92× the median 120": True,
        "5 rows in batch 2026-11-24T0600, 0.04× the median 115": False,
    }


def test_volume_needs_three_earlier_batches(con):
    log(con, "earlier", "2026-11-20T0600", 1000)
    log(con, "earlier", "2026-11-21T0600", 100)
    log(con, "now", "2026-11-22T0600", 1)
    assert volume(con, "now", 0.1, 10.0) == []


def test_volume_ignores_an_entity_a_batch_does_not_carry(con):
    # Four full batches of 100 opportunities, then daily batches that carry none (an
    # adapter writes an empty file): nothing to compare, no warning. The empty batches
    # do not drag the median down either: 100 rows after them is 1.00x the median 100.
    for i, rows in enumerate([100, 100, 100, 0, 0]):
        log(con, "before", f"2026-11-0{i + 1}T0600", rows)
    log(con, "now", "2026-11-06T0600", 0)
    assert volume(con, "now", 0.1, 10.0) == []
    log(con, "now", "2026-11-07T0600", 100)
    (outcome,) = volume(con, "now", 0.1, 10.0)
    assert outcome.success
    assert outcome.observed == "100 rows in batch 2026-11-07T0600, 1.00× the median 100"
