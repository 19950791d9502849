"""The serving file and the Parquet files: exact copies of the marts, swapped in whole."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ingestion.errors import PublishError
from ingestion.publish import mart_names, parquet_dir, publish_files, serving_path

AS_OF = datetime(2026, 3, 15)


def make_warehouse(path: Path, version: int) -> Path:
    """Two marts whose rows agree (kpi_total.total = rows of fct_deals) and a raw table."""
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA IF NOT EXISTS marts; CREATE SCHEMA IF NOT EXISTS raw")
    con.execute("CREATE OR REPLACE TABLE raw.secret AS SELECT 1 AS x")
    con.execute(
        "CREATE OR REPLACE TABLE marts.fct_deals AS SELECT i::BIGINT AS deal_id, "
        "(i / 7)::DOUBLE AS amount, (i * 1.005)::DECIMAL(18,3) AS price, "
        "DATE '2026-01-01' + i::INTEGER AS closed_on, "
        "TIMESTAMP '2026-01-01 00:00:00.123456' + to_hours(i) AS created_at, "
        "i % 2 = 0 AS is_won, CASE WHEN i % 3 = 0 THEN NULL ELSE 'deal ' || i END AS name "
        f"FROM range(1, {10 * version + 1}) t(i)"
    )
    con.execute(
        "CREATE OR REPLACE TABLE marts.kpi_total AS SELECT count(*) AS total FROM marts.fct_deals"
    )
    con.close()
    return path


def rows(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


MARTS = ["fct_deals", "kpi_total"]


def copies(warehouse: Path) -> dict[Path, bytes]:
    """Every file beside the warehouse that readers see, and its bytes."""
    paths = [serving_path(warehouse), *parquet_dir(warehouse).iterdir()]
    return {p: p.read_bytes() for p in paths}


def test_copies_the_marts_exactly_with_their_names_and_types(tmp_path):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 1)
    assert mart_names(warehouse) == ["fct_deals", "kpi_total"]
    pubs = publish_files(warehouse, mart_names(warehouse), run_id="run-1", as_of=AS_OF,
                         published_at=datetime(2026, 3, 15, 6))  # fmt: skip

    serving = tmp_path / "wh.serving.duckdb"
    assert serving_path(warehouse) == serving and parquet_dir(warehouse) == tmp_path / "marts"
    types = (
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' order by all"
    )
    assert rows(serving, types) == rows(warehouse, types)
    assert rows(serving, "select * from marts.fct_deals order by deal_id") == rows(
        warehouse, "select * from marts.fct_deals order by deal_id"
    )
    first = rows(serving, "select * from marts.fct_deals where deal_id = 3")
    assert first == [
        (3, 3 / 7, Decimal("3.015"), date(2026, 1, 4),
         datetime(2026, 1, 1, 3, 0, 0, 123456), False, None)
    ]  # fmt: skip
    # Only the marts (and the publication record) go to readers: no raw, no quality.
    assert rows(serving, "select distinct schema_name from duckdb_tables() order by 1") == [
        ("main",),
        ("marts",),
    ]
    assert rows(serving, "select * from _publication") == [
        ("run-1", AS_OF, datetime(2026, 3, 15, 6), ["fct_deals", "kpi_total"])
    ]
    for mart in ("fct_deals", "kpi_total"):
        parquet = tmp_path / "marts" / f"{mart}.parquet"
        assert rows(warehouse, f"select * from read_parquet('{parquet}') order by all") == rows(
            warehouse, f"select * from marts.{mart} order by all"
        )
    assert sorted(p.name for p in (tmp_path / "marts").iterdir()) == [
        "fct_deals.parquet",
        "kpi_total.parquet",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marts", "wh.duckdb", "wh.serving.duckdb"]
    assert [p.line() for p in pubs] == [
        f"Published to the serving file: {serving} (2 marts, 11 rows; open it read-only)",
        f"Published to Parquet: {tmp_path / 'marts'}/<mart>.parquet (2 files, 11 rows)",
    ]


def test_a_reader_with_the_old_file_open_keeps_a_consistent_copy(tmp_path):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 1)
    publish_files(warehouse, ["fct_deals", "kpi_total"], run_id="run-1", as_of=AS_OF)
    reader = duckdb.connect(str(serving_path(warehouse)), read_only=True)
    check = (
        "select (select run_id from _publication), (select count(*) from marts.fct_deals), "
        "(select total from marts.kpi_total)"
    )
    assert reader.execute(check).fetchall() == [("run-1", 10, 10)]

    make_warehouse(warehouse, 2)
    publish_files(warehouse, ["fct_deals", "kpi_total"], run_id="run-2", as_of=AS_OF)

    # The open connection still reads the file it opened, whole; a new one gets the new.
    assert reader.execute(check).fetchall() == [("run-1", 10, 10)]
    reader.close()
    assert rows(serving_path(warehouse), check) == [("run-2", 20, 20)]


def test_a_missing_mart_fails_and_leaves_the_previous_copies(tmp_path):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 1)
    publish_files(warehouse, ["fct_deals", "kpi_total"], run_id="run-1", as_of=AS_OF)
    before = copies(warehouse)
    make_warehouse(warehouse, 2)

    with pytest.raises(PublishError, match=r"has no table marts\.kpi_missing.*crm-pipeline run"):
        publish_files(warehouse, [*MARTS, "kpi_missing"], run_id="r2", as_of=AS_OF)

    assert copies(warehouse) == before  # no temporary file left, nothing replaced


def test_a_dropped_mart_loses_its_parquet_file_and_crash_leftovers_go(tmp_path):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 1)
    publish_files(warehouse, ["fct_deals", "kpi_total"], run_id="run-1", as_of=AS_OF)
    # What a run killed mid-publish leaves behind.
    (tmp_path / ".wh.serving.duckdb.999.tmp").write_bytes(b"half")
    (tmp_path / "marts" / ".fct_deals.parquet.999.tmp").write_bytes(b"half")

    publish_files(warehouse, ["fct_deals"], run_id="run-2", as_of=AS_OF)

    assert sorted(p.name for p in (tmp_path / "marts").iterdir()) == ["fct_deals.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marts", "wh.duckdb", "wh.serving.duckdb"]
    assert rows(serving_path(warehouse), "select table_name from duckdb_tables() order by 1") == [
        ("_publication",),
        ("fct_deals",),
    ]
