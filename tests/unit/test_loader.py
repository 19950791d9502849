"""Ingestion of canonical batches: typing, supersede, dedup, idempotency, clear errors."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from ingestion.errors import DataQualityError, LandingError
from ingestion.loader import ingest
from ingestion.warehouse import connect

OPP = "opportunity_id,created_at,stage,amount,updated_at"
SC = "opportunity_id,stage,changed_at"


@pytest.fixture
def con(tmp_path: Path):
    c = connect(tmp_path / "w.duckdb")
    yield c
    c.close()


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_types_and_lineage(con, landing, batch):
    batch(
        "2026-01-01T0600",
        "opportunities",
        "Opportunity_ID,created_at,stage,amount,is_won,close_date,extra_col",
        "o1,2026-01-01T10:00:00+02:00,prospecting,100.5,yes,2026-02-01,x",
        "o2,2026-01-02 08:30:00,Meeting,,0,,",
    )
    ingest(con, landing)
    got = rows(
        con,
        "select opportunity_id, created_at, amount, is_won, close_date, _batch_id, "
        "_source_file, _source_row, _attributes from raw.opportunities order by 1",
    )
    assert got == [
        (
            "o1",
            datetime(2026, 1, 1, 8, 0),  # +02:00 converted to UTC
            100.5,
            True,
            date(2026, 2, 1),
            "2026-01-01T0600",
            "2026-01-01T0600/opportunities.csv",
            1,
            '{"extra_col":"x"}',
        ),
        (
            "o2",
            datetime(2026, 1, 2, 8, 30),
            None,
            False,
            None,
            "2026-01-01T0600",
            "2026-01-01T0600/opportunities.csv",
            2,
            '{"extra_col":null}',
        ),
    ]


def test_source_timezone_applies_to_naive_timestamps(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-07-01 10:00:00,prospecting,1,")
    ingest(con, landing, source_timezone="Europe/Berlin")
    # Berlin is UTC+2 in July.
    assert rows(con, "select created_at from raw.opportunities") == [(datetime(2026, 7, 1, 8),)]


def test_later_update_supersedes_and_ties_go_to_later_batch(con, landing, batch):
    batch(
        "b1",
        "opportunities",
        OPP,
        "o1,2026-01-01,prospecting,100,2026-01-02T00:00:00Z",
        "o2,2026-01-01,prospecting,200,2026-01-05T00:00:00Z",
        "o3,2026-01-01,prospecting,300,2026-01-03T00:00:00Z",
    )
    batch(
        "b2",
        "opportunities",
        OPP,
        "o1,2026-01-01,meeting,110,2026-01-03T00:00:00Z",  # newer: wins
        "o2,2026-01-01,meeting,210,2026-01-04T00:00:00Z",  # older re-export: loses
        "o3,2026-01-01,meeting,310,2026-01-03T00:00:00Z",  # tie: later batch wins
    )
    ingest(con, landing)
    assert rows(
        con, "select opportunity_id, stage, amount, _batch_id from raw.opportunities order by 1"
    ) == [
        ("o1", "meeting", 110.0, "b2"),
        ("o2", "prospecting", 200.0, "b1"),
        ("o3", "meeting", 310.0, "b2"),
    ]


def test_supersede_holds_when_batches_arrive_in_separate_runs(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,100,2026-01-02T00:00:00Z")
    ingest(con, landing)
    batch("b2", "opportunities", OPP, "o1,2026-01-01,proposal,150,2026-01-09T00:00:00Z")
    report = ingest(con, landing)
    assert report.loaded_files == ["b2/opportunities.csv"]
    assert report.skipped_files == ["b1/opportunities.csv"]
    assert rows(con, "select stage, amount from raw.opportunities") == [("proposal", 150.0)]
    # A later batch re-exporting an older version does not roll the row back.
    batch("b3", "opportunities", OPP, "o1,2026-01-01,meeting,120,2026-01-05T00:00:00Z")
    ingest(con, landing)
    assert rows(con, "select stage, amount, _batch_id from raw.opportunities") == [
        ("proposal", 150.0, "b2")
    ]


def test_stage_changes_accumulate_and_overlapping_reexports_dedupe(con, landing, batch):
    batch(
        "b1",
        "stage_changes",
        SC,
        "o1,prospecting,2026-01-01T00:00:00Z",
        "o1,meeting,2026-01-03T00:00:00Z",
        "o1,meeting,2026-01-03T00:00:00Z",  # exact duplicate inside a file
    )
    batch(
        "b2",
        "stage_changes",
        SC,
        "o1,meeting,2026-01-03T00:00:00Z",  # overlap with b1
        "o1,proposal,2026-01-05T00:00:00Z",
    )
    ingest(con, landing)
    assert rows(con, "select stage, changed_at from raw.stage_changes order by changed_at") == [
        ("prospecting", datetime(2026, 1, 1)),
        ("meeting", datetime(2026, 1, 3)),
        ("proposal", datetime(2026, 1, 5)),
    ]
    manifest = rows(
        con, "select source_file, input_rows, loaded_rows from raw._manifest order by 1"
    )
    # b2's copy of the overlapping change is the one kept (later batch), b1 keeps two rows.
    assert manifest == [("b1/stage_changes.csv", 3, 1), ("b2/stage_changes.csv", 2, 2)]


def test_reingesting_is_a_no_op(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,100,")
    batch("b1", "stage_changes", SC, "o1,prospecting,2026-01-01T00:00:00Z")
    ingest(con, landing)
    before = rows(con, "select * from raw.opportunities") + rows(
        con, "select * from raw.stage_changes"
    )
    report = ingest(con, landing)
    after = rows(con, "select * from raw.opportunities") + rows(
        con, "select * from raw.stage_changes"
    )
    assert report.loaded_files == []
    assert sorted(report.skipped_files) == ["b1/opportunities.csv", "b1/stage_changes.csv"]
    assert before == after
    assert rows(con, "select count(*) from raw._manifest") == [(2,)]


def test_rows_without_an_id_are_kept_for_the_hygiene_suite(con, landing, batch):
    batch("b1", "opportunities", OPP, ",2026-01-01,prospecting,1,", ",2026-01-02,meeting,2,")
    ingest(con, landing)
    assert rows(con, "select count(*) from raw.opportunities where opportunity_id is null") == [
        (2,)
    ]


def test_unparseable_value_names_file_row_column_and_loads_nothing(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,100,")
    path = batch(
        "b2", "opportunities", OPP, "o2,2026-01-01,prospecting,12,", "o3,yesterday,meeting,abc,"
    )
    with pytest.raises(DataQualityError) as err:
        ingest(con, landing)
    message = str(err.value)
    assert str(path) in message
    assert (
        "column created_at (timestamp): 1 value(s) do not parse, e.g. row 2 'yesterday'" in message
    )
    assert "column amount (double): 1 value(s) do not parse, e.g. row 2 'abc'" in message
    # All or nothing: b1 was not published either, and the manifest is untouched.
    assert rows(con, "select count(*) from raw.opportunities") == [(0,)]
    assert rows(con, "select count(*) from raw._manifest") == [(0,)]


def test_missing_required_column(con, landing, batch):
    batch("b1", "opportunities", "opportunity_id,stage", "o1,prospecting")
    with pytest.raises(DataQualityError, match=r"required column\(s\) created_at missing"):
        ingest(con, landing)


def test_ragged_csv_is_a_clear_error(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,1,,extra,fields")
    with pytest.raises(LandingError, match=r"opportunities\.csv: cannot be read"):
        ingest(con, landing)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"b1/deals.csv": "x\n1\n"}, "not a canonical landing file"),
        ({"stray.csv": "x\n1\n"}, "is a file at the top of the landing directory"),
        (
            {"b1/opportunities.csv": OPP + "\n", "b1/opportunities.parquet": ""},
            "holds opportunities twice",
        ),
    ],
)
def test_layout_errors(con, landing, layout, message):
    for rel, text in layout.items():
        (landing / rel).parent.mkdir(parents=True, exist_ok=True)
        (landing / rel).write_text(text)
    with pytest.raises(LandingError, match=message):
        ingest(con, landing)


def test_missing_landing_directory(con, tmp_path):
    with pytest.raises(LandingError, match="does not exist"):
        ingest(con, tmp_path / "nope")


def test_parquet_and_jsonl_batches(con, landing):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (landing / "b1").mkdir()
    pq.write_table(
        pa.table(
            {"opportunity_id": ["o1"], "created_at": ["2026-01-01T00:00:00Z"], "stage": ["meeting"]}
        ),
        landing / "b1" / "opportunities.parquet",
    )
    (landing / "b2").mkdir()
    (landing / "b2" / "stage_changes.jsonl").write_text(
        '{"opportunity_id": "o1", "stage": "meeting", "changed_at": "2026-01-01T00:00:00Z"}\n'
    )
    ingest(con, landing)
    assert rows(con, "select opportunity_id, stage from raw.opportunities") == [("o1", "meeting")]
    assert rows(con, "select count(*) from raw.stage_changes") == [(1,)]


def test_stage_map_is_written(con, landing, batch):
    batch("b1", "opportunities", OPP, "o1,2026-01-01,prospecting,1,")
    ingest(con, landing)
    assert rows(
        con,
        "select stage, stage_order, category from raw.stage_map where source_label = 'closed_won'",
    ) == [("closed_won", 6, "won")]
