"""ingestion.spark.mirror: the Spark run's Parquet tables copied into the DuckDB file.

Spark's table folders are written here by DuckDB in Spark's layout (``<db>.db/<table>/``,
``part-*.parquet`` files, a ``_SUCCESS`` marker, instants as TIMESTAMPTZ), so no JVM runs;
the end-to-end comparison (tests/e2e/test_spark_engine.py) copies real Spark output.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb

from ingestion.config import PipelineConfig, SparkSettings
from ingestion.spark.mirror import (
    local_warehouse_dir,
    mirror_marts,
    mirror_quality,
    parquet_files,
)


def _write(folder: Path, name: str, sql: str, mtime: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    os.utime(path, ns=(mtime, mtime))


def test_local_warehouse_dir_is_a_folder_of_this_machine_only(tmp_path):
    cfg = PipelineConfig(engine="spark", warehouse=tmp_path / "w.duckdb")
    assert local_warehouse_dir(cfg) == tmp_path / "w.spark"
    on = PipelineConfig(
        engine="spark", warehouse=tmp_path / "w.duckdb",
        spark=SparkSettings(warehouse_dir="file:///data/crm"),
    )  # fmt: skip
    assert local_warehouse_dir(on) == Path("/data/crm")
    remote = PipelineConfig(
        engine="spark", warehouse=tmp_path / "w.duckdb",
        spark=SparkSettings(warehouse_dir="s3a://bucket/crm"),
    )  # fmt: skip
    assert local_warehouse_dir(remote) is None
    assert mirror_marts(remote) == []


def test_marts_are_copied_with_naive_utc_timestamps_and_replace_the_previous_copy(tmp_path):
    cfg = PipelineConfig(engine="spark", warehouse=tmp_path / "w.duckdb")
    marts = tmp_path / "w.spark" / "marts.db"
    # Two part files of one mart; Spark's instants (TIMESTAMPTZ) 2026-03-01 12:00 UTC.
    _write(
        marts / "kpi_a",
        "part-00000-x.parquet",
        "select 1::bigint as n, 'x' as s, TIMESTAMPTZ '2026-03-01 12:00:00+00' as at",
        1,
    )
    _write(
        marts / "kpi_a",
        "part-00001-x.parquet",
        "select 2::bigint as n, 'y' as s, TIMESTAMPTZ '2026-03-02 00:00:00+00' as at",
        2,
    )
    (marts / "kpi_a" / "_SUCCESS").write_text("")
    (marts / "kpi_empty").mkdir()  # a folder with no data file: not a table to copy
    assert mirror_marts(cfg) == ["kpi_a"]
    with duckdb.connect(str(cfg.warehouse), read_only=True) as con:
        types = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'kpi_a' order by ordinal_position"
        ).fetchall()
        assert types == [("n", "BIGINT"), ("s", "VARCHAR"), ("at", "TIMESTAMP")]
        assert con.execute("select * from marts.kpi_a order by n").fetchall() == [
            (1, "x", datetime(2026, 3, 1, 12)),
            (2, "y", datetime(2026, 3, 2)),
        ]
    # The next run's mart replaces the copy whole.
    for f in parquet_files(marts / "kpi_a"):
        f.unlink()
    _write(
        marts / "kpi_a",
        "part-00000-z.parquet",
        "select 3::bigint as n, 'z' as s, TIMESTAMPTZ '2026-04-01 00:00:00+00' as at",
        3,
    )
    mirror_marts(cfg)
    with duckdb.connect(str(cfg.warehouse), read_only=True) as con:
        assert con.execute("select n, s from marts.kpi_a").fetchall() == [(3, "z")]


def test_quality_records_are_copied_by_name_in_the_order_they_were_written(tmp_path):
    cfg = PipelineConfig(engine="spark", warehouse=tmp_path / "w.duckdb")
    quality = tmp_path / "w.spark" / "quality.db"
    row = (
        "select '{run}' as run_id, TIMESTAMPTZ '2026-03-01 00:00:00+00' as validated_at, "
        "null::varchar as batch_id, 'opportunities' as entity, null::varchar as source_file, "
        "'landing.freshness' as rule, 'sql' as expectation, null::varchar as \"column\", "
        "'warn' as severity, true as success, null::bigint as element_count, "
        "null::bigint as unexpected_count, null::varchar as observed, '[]' as examples, "
        "'fresh' as message"
    )
    # Written later, but named first: the order is the files' age, not their names.
    _write(quality / "validation_results", "part-00000-b.parquet", row.format(run="r2"), 20)
    _write(quality / "validation_results", "part-00000-a.parquet", row.format(run="r1"), 10)
    # Spark's log has no file_size / file_mtime_ns columns: copied by name, NULL there.
    _write(quality / "ingestion_log", "part-0.parquet",
           "select 'r1' as run_id, 'b1' as batch_id, 'users' as entity, 'b1/users.csv' as "
           "source_file, 'abc' as content_sha256, 'published' as status, 3::bigint as "
           "input_rows, 3::bigint as loaded_rows, 0::bigint as quarantined_rows, 0::bigint as "
           "duplicate_rows, 0::bigint as rejected_rows, '[]' as reasons, "
           "TIMESTAMPTZ '2026-03-01 06:00:00+00' as ingested_at", 5)  # fmt: skip
    _write(tmp_path / "w.spark" / "raw.db" / "users", "part-0.parquet",
           "select 'u1' as user_id, 'Ames' as name", 5)  # fmt: skip
    mirror_quality(cfg)
    mirror_quality(cfg)  # a second copy replaces the first: no row twice
    with duckdb.connect(str(cfg.warehouse), read_only=True) as con:
        assert con.execute(
            "select run_id from quality.validation_results order by rowid"
        ).fetchall() == [("r1",), ("r2",)]
        assert con.execute(
            "select source_file, loaded_rows, ingested_at, file_size from quality.ingestion_log"
        ).fetchall() == [("b1/users.csv", 3, datetime(2026, 3, 1, 6), None)]
        assert con.execute("select count(*) from quality.quarantine").fetchone() == (0,)
        assert con.execute("select * from raw.users").fetchall() == [("u1", "Ames")]
