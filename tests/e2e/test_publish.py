"""End to end: every successful run publishes the marts for readers (serving file, Parquet,
PostgreSQL), a reader never blocks a run nor sees half of one, a failed publish keeps the
old numbers, and a blocked run publishes nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psycopg
import pytest
from local_servers import free_port
from pipeline_helpers import query, run_pipeline

from ingestion.publish import parquet_dir, serving_path

FIXTURE = Path(__file__).parents[1] / "fixtures" / "skeleton"
FIRST_BATCH = "2026-02-05T0600"

pytestmark = pytest.mark.slow

# Three marts and the publication record, read in one snapshot: the first run's and the
# second run's values differ in every column, so a copy mixing the two runs shows.
SNAPSHOT_SQL = """
select (select run_id from _publication),
       (select count(*) from marts.fct_opportunities),
       (select count(*) from marts.fct_stage_history),
       (select max(month)::varchar from marts.kpi_monthly)
"""

# A reader process: "held" opens the serving file once, before the run, and queries it
# to the end; "fresh" opens it anew for every query, as a dashboard opened later would.
# (One process cannot do both: DuckDB shares one open file among a process's connections.)
READER = """
import json, os, sys, time, duckdb
mode, path, stop, sql, log = sys.argv[1:6]
held = duckdb.connect(path, read_only=True) if mode == "held" else None
with open(log, "w") as out:
    print("ready", flush=True)
    while not os.path.exists(stop):
        con = held or duckdb.connect(path, read_only=True)
        out.write(json.dumps([time.time(), con.execute(sql).fetchone()]) + "\\n")
        out.flush()
        if con is not held:
            con.close()
        time.sleep(0.02)
"""


def snapshot(path: Path) -> tuple:
    (row,) = query(path, SNAPSHOT_SQL)
    return row


def test_a_reader_holding_the_serving_file_neither_blocks_a_run_nor_sees_a_mix(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copytree(FIXTURE / FIRST_BATCH, landing / FIRST_BATCH)
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    assert run_pipeline(landing, warehouse, "2026-02-06T00:00:00Z") == 0
    serving = serving_path(warehouse)
    old = snapshot(serving)

    shutil.copytree(FIXTURE, landing, dirs_exist_ok=True)
    stop = tmp_path / "stop-readers"
    readers = {}
    for mode in ("held", "fresh"):
        args = [mode, str(serving), str(stop), SNAPSHOT_SQL, str(tmp_path / f"{mode}.jsonl")]
        readers[mode] = subprocess.Popen(
            [sys.executable, "-c", READER, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for reader in readers.values():
        assert reader.stdout.readline().strip() == "ready"
    started = time.time()
    code = run_pipeline(landing, warehouse, "2026-03-15T00:00:00Z")
    finished = time.time()
    new = snapshot(serving)
    time.sleep(2)  # the fresh reader opens the new file a few times
    stop.touch()
    errors = {mode: r.communicate(timeout=60)[1] for mode, r in readers.items()}

    assert code == 0
    assert all(r.returncode == 0 for r in readers.values()), errors
    held, fresh = (
        [(t, tuple(row)) for t, row in map(json.loads, (tmp_path / f"{mode}.jsonl").open())]
        for mode in ("held", "fresh")
    )
    # The two runs differ in every value: a copy mixing them could not pass.
    assert all(a != b for a, b in zip(old, new, strict=True)), (old, new)
    assert new[1:] == (6, query(warehouse, "select count(*) from marts.fct_stage_history")[0][0],
                       "2026-03-01")  # fmt: skip
    # The reader queried all through the run (dbt and the publish take seconds).
    assert sum(1 for t, _ in held if started < t < finished) >= 20
    assert sum(1 for t, _ in fresh if started < t < finished) >= 20
    # The open file stayed the old copy, whole; newly opened ones gave old, then new.
    assert {row for _, row in held} == {old}
    assert {row for _, row in fresh} == {old, new}
    first_new = min(t for t, row in fresh if row == new)
    assert all(row == new for t, row in fresh if t > first_new)


def write_config(tmp_path: Path, env: str = "CRM_TEST_PG_URL") -> Path:
    config = tmp_path / "crm.yaml"
    config.write_text(
        f"publish: {{postgres: {{env: {env}, schema: marts}}}}\nretries: {{max_retries: 0}}\n"
    )
    return config


def pg_marts(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as con:
        names = [
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts' "
                "and table_name <> '_publication' order by 1"
            ).fetchall()
        ]
        return {
            name: sorted(con.execute(f"select * from marts.{name}").fetchall(), key=repr)
            for name in names
        }


def duck_marts(warehouse: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts' "
                "order by 1"
            ).fetchall()
        ]
        return {
            name: sorted(con.execute(f"select * from marts.{name}").fetchall(), key=repr)
            for name in names
        }
    finally:
        con.close()


def pg_run_id(url: str) -> str:
    with psycopg.connect(url) as con:
        return con.execute("select run_id from marts._publication").fetchone()[0]


def test_postgres_gets_the_marts_keeps_them_on_failure_and_a_blocked_run_publishes_nothing(
    tmp_path, pg_url, monkeypatch, capsys
):
    password = pg_url.split(":")[2].split("@")[0]
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE, landing)
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    config = write_config(tmp_path)
    monkeypatch.setenv("CRM_TEST_PG_URL", pg_url)

    # 1. A run publishes everywhere; PostgreSQL holds the DuckDB marts value by value.
    assert run_pipeline(landing, warehouse, "2026-03-15T00:00:00Z", "--config", str(config)) == 0
    out, err = capsys.readouterr()
    marts = duck_marts(warehouse)
    assert len(marts) == 15 and marts["fct_opportunities"]
    assert pg_marts(pg_url) == marts
    rows = sum(len(r) for r in marts.values())
    host_db = pg_url.split("@")[1]
    user = pg_url.split("//")[1].split(":")[0]
    # The summary's last lines: one per target, then the report's path.
    assert out.splitlines()[-1].startswith("Report: ")
    assert out.splitlines()[-4:-1] == [
        f"Published to the serving file: {serving_path(warehouse.resolve())} "
        f"(15 marts, {rows:,} rows; open it read-only)",
        f"Published to Parquet: {parquet_dir(warehouse.resolve())}/<mart>.parquet "
        f"(15 files, {rows:,} rows)",
        f"Published to PostgreSQL: postgresql://{user}:***@{host_db}, schema marts "
        f"(15 marts, {rows:,} rows)",
    ]
    assert password not in out + err
    first_run = pg_run_id(pg_url)
    assert snapshot(serving_path(warehouse))[0] == first_run

    # 2. The server is down: the run fails on the publish step, with a clear message and
    # no password; the serving file has the new run, PostgreSQL still the old numbers.
    down = f"postgresql://{user}:{password}@127.0.0.1:{free_port()}/bi"
    monkeypatch.setenv("CRM_TEST_PG_URL", down)
    assert run_pipeline(landing, warehouse, "2026-03-16T00:00:00Z", "--config", str(config)) == 3
    out, err = capsys.readouterr()
    assert (
        f"error: step publish__postgres: Publishing the marts to PostgreSQL "
        f"(postgresql://{user}:***@127.0.0.1:{down.rsplit(':', 1)[1].split('/')[0]}/bi, "
        f"schema marts) failed: "
    ) in err
    assert "keep their previous numbers" in err and "Check that the server is running" in err
    alerts = (warehouse.parent / "logs" / "alerts.jsonl").read_text()
    assert "publish__postgres" in alerts
    assert password not in out + err + alerts
    second_run = snapshot(serving_path(warehouse))[0]
    assert second_run != first_run
    assert pg_run_id(pg_url) == first_run and pg_marts(pg_url) == marts

    # 3. The hygiene gate blocks the marts: nothing is published anywhere.
    monkeypatch.setenv("CRM_TEST_PG_URL", pg_url)
    copies = {p: p.read_bytes() for p in parquet_dir(warehouse).iterdir()}
    serving_bytes = serving_path(warehouse).read_bytes()
    bad = landing / "2026-03-16T0000"
    bad.mkdir()
    (bad / "opportunities.csv").write_text(
        "opportunity_id,created_at,stage,amount\nO7,2026-03-02T00:00:00Z,Demo Booked,100\n"
    )
    assert run_pipeline(landing, warehouse, "2026-03-16T00:00:00Z", "--config", str(config)) == 1
    out, err = capsys.readouterr()
    assert "Published" not in out
    assert serving_path(warehouse).read_bytes() == serving_bytes
    assert {p: p.read_bytes() for p in parquet_dir(warehouse).iterdir()} == copies
    assert pg_run_id(pg_url) == first_run
