"""How the loader hands a batch's frame to the hygiene gate (``ingestion.loader._frame_parts``):
one sorted stream cut into parts by a hash of the key, each part in file and row order;
a failure while the stream is open leaves the connection usable and nothing published;
GX's copy-on-write is confined to the validation."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

import ingestion.loader as loader
from ingestion.hygiene.rules import HygieneError
from ingestion.loader import ingest
from ingestion.schema import ENTITIES
from ingestion.warehouse import connect

OPP = "opportunity_id,created_at,stage,amount,updated_at"
# (key, source row), written in an order that is neither the key's nor the row's; o3 has
# two versions (rows 3 and 8), which must be judged in one part.
ROWS = [("o5", 5), ("o1", 1), ("o3", 8), ("o7", 7), ("o2", 2), ("o3", 3), ("o6", 6), ("o4", 4)]


@pytest.fixture
def frame() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("CREATE TEMP TABLE f (opportunity_id VARCHAR, _source_row BIGINT, v VARCHAR)")
    c.executemany("INSERT INTO f VALUES (?, ?, ?)", [(k, r, f"{k}@{r}") for k, r in ROWS])
    yield c
    c.close()


def test_each_part_holds_whole_keys_in_row_order(frame, monkeypatch):
    monkeypatch.setattr(loader, "VALIDATION_PART_ROWS", 3)  # 8 rows: 3 parts
    bucket = dict(
        frame.execute("SELECT opportunity_id, hash(opportunity_id) % 3 FROM f").fetchall()
    )
    parts = list(loader._frame_parts(frame, ENTITIES["opportunities"], "SELECT * FROM f", 8))
    assert {name for name, _ in parts} == {"opportunities"}
    tables = [t.to_pylist() for _, t in parts]
    # The frame's own columns, without the part number.
    assert all(t.column_names == ["opportunity_id", "_source_row", "v"] for _, t in parts)
    # Every row once; within a part in row order; a part is one hash bucket, in bucket
    # order, and a bucket without rows is no part.
    assert sorted(r["_source_row"] for t in tables for r in t) == list(range(1, 9))
    for t in tables:
        assert [r["_source_row"] for r in t] == sorted(r["_source_row"] for r in t)
        assert len({bucket[r["opportunity_id"]] for r in t}) == 1
    buckets = [bucket[t[0]["opportunity_id"]] for t in tables]
    assert buckets == sorted(set(bucket.values()))
    # Both versions of o3 in one part.
    (o3,) = [t for t in tables if any(r["opportunity_id"] == "o3" for r in t)]
    assert [r["v"] for r in o3 if r["opportunity_id"] == "o3"] == ["o3@3", "o3@8"]


def test_a_part_spanning_several_stream_batches_comes_whole(frame, monkeypatch):
    """One part of 50,000 rows arrives from DuckDB in several Arrow batches: one table."""
    frame.execute(
        "INSERT INTO f SELECT 'k' || i, 100 + i, 'x' FROM range(50000) t(i) ORDER BY random()"
    )
    (_, table), *more = loader._frame_parts(frame, ENTITIES["opportunities"], "SELECT * FROM f", 1)
    assert not more
    rows = table.column("_source_row").to_pylist()
    assert len(rows) == 50_008 and rows == sorted(rows)


def test_a_frame_without_rows_is_one_empty_part(frame):
    sql = "SELECT * FROM f WHERE false"
    parts = list(loader._frame_parts(frame, ENTITIES["opportunities"], sql, 0))
    assert [(name, t.num_rows, t.column_names) for name, t in parts] == [
        ("opportunities", 0, ["opportunity_id", "_source_row", "v"])
    ]


def test_closing_the_stream_part_way_frees_the_connection(frame, monkeypatch):
    monkeypatch.setattr(loader, "VALIDATION_PART_ROWS", 3)
    parts = loader._frame_parts(frame, ENTITIES["opportunities"], "SELECT * FROM f", 8)
    next(parts)
    # While open, the stream holds the connection (why the loader closes it on errors).
    with pytest.raises(duckdb.Error, match="Resource In Use"):
        frame.execute("SELECT 1")
    parts.close()
    assert frame.execute("SELECT count(*) FROM f").fetchall() == [(8,)]


@pytest.mark.parametrize("batches", [1, 2], ids=["alone", "grouped"])
def test_a_gate_failure_mid_stream_is_raised_as_itself_and_publishes_nothing(
    tmp_path, landing, batch, monkeypatch, batches
):
    """The gate fails on the second part while the stream of parts is open: the run
    raises the gate's error (not DuckDB's "connection busy" from the rollback), nothing
    is published, and the next run loads the batches."""
    import ingestion.hygiene.pool as pool

    for b in range(1, batches + 1):
        batch(
            f"b{b}",
            "opportunities",
            OPP,
            *[f"o{b}{i},2026-01-0{i},meeting,{i}," for i in range(1, 7)],
        )
    monkeypatch.setattr(loader, "VALIDATION_PART_ROWS", 2)
    # One row per Arrow batch: the stream is still open when the gate fails.
    monkeypatch.setattr(loader, "STREAM_BATCH_ROWS", 1)
    real, calls = pool.validate_batch, []

    def failing_second(entity, frame, **options):
        calls.append(entity)
        if len(calls) == 2:
            raise HygieneError("the gate failed here")
        return real(entity, frame, **options)

    monkeypatch.setattr(pool, "validate_batch", failing_second)
    with connect(tmp_path / "w.duckdb") as con:
        with pytest.raises(HygieneError, match="the gate failed here"):
            ingest(con, landing)
        assert con.execute("SELECT count(*) FROM raw.opportunities").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM quality.ingestion_log").fetchall() == [(0,)]
        monkeypatch.setattr(pool, "validate_batch", real)
        report = ingest(con, landing)
        assert report.rows("opportunities", "loaded_rows") == 6 * batches
        assert con.execute("SELECT count(*) FROM raw.opportunities").fetchall() == [(6 * batches,)]


def test_validation_leaves_pandas_copy_on_write_as_it_was():
    """GX runs under copy-on-write (its per-rule ``df[mask]`` then copies nothing); the
    caller's pandas mode and frame are left as they were, also when a rule fails."""
    from ingestion.hygiene.gx import validate_batch

    frame = pd.DataFrame(
        {
            "_source_row": [1, 2, 3],
            "opportunity_id": ["o1", "o2", None],
            "amount": [10.0, -5.0, None],
            "stage": ["meeting", "meeting", "meeting"],
            "account_id__known": [True, True, True],
            "owner_id__known": [True, True, True],
        }
    )
    before = frame.copy()
    assert pd.get_option("mode.copy_on_write") is False
    outcomes = validate_batch("opportunities", frame, labels={"meeting"})
    assert pd.get_option("mode.copy_on_write") is False
    pd.testing.assert_frame_equal(frame, before)
    failed = {o.rule.name: o.unexpected_rows for o in outcomes if not o.success}
    assert failed == {
        "opportunities.opportunity_id_not_null": ((None, 3),),
        "opportunities.created_at_not_null": ((None, 1), (None, 2), (None, 3)),
        "opportunities.amount_non_negative": ((None, 2),),
    }
