"""Publishing to a real PostgreSQL server (started by the session fixture): faithful types,
one transaction a concurrent reader never sees half of, and failures that keep the old
numbers and never show the password."""

from __future__ import annotations

import threading
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest
from local_servers import free_port

from ingestion.config import PostgresPublishSettings
from ingestion.errors import ConfigError, PublishError
from ingestion.postgres import mask_url, postgres_url, publish_postgres

AS_OF = datetime(2026, 3, 15)
MARTS = ["fct_deals", "kpi_total"]


def make_warehouse(path: Path, deals: int) -> Path:
    """fct_deals with every type the marts use, and kpi_total, which must agree with it."""
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(
        "CREATE OR REPLACE TABLE marts.fct_deals AS SELECT i::BIGINT AS deal_id, "
        "(i % 1000)::INTEGER AS bucket, (i / 7)::DOUBLE AS ratio, "
        "(i * 1.005)::DECIMAL(18,3) AS price, DATE '2026-01-01' + (i % 300)::INTEGER AS day, "
        "TIMESTAMP '2026-01-01 00:00:00.123456' + to_seconds(i) AS created_at, "
        "i % 2 = 0 AS is_won, 'deal ' || i AS name "
        f"FROM range(1, {deals + 1}) t(i)"
    )
    con.execute(
        "CREATE OR REPLACE TABLE marts.kpi_total AS "
        "SELECT count(*) AS deals, sum(price) AS price_sum FROM marts.fct_deals"
    )
    con.close()
    return path


def add_edge_rows(path: Path) -> None:
    """Values CSV could get wrong: NULLs, '' apart from NULL, quotes, commas, newlines,
    non-ASCII, extreme doubles, -0.0, the decimal's limits."""
    con = duckdb.connect(str(path))
    con.execute(
        """INSERT INTO marts.fct_deals VALUES
        (-1, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (-2, 0, 1e-300, -999999999999999.999, DATE '1970-01-01',
         TIMESTAMP '1999-12-31 23:59:59.999999', true, ''),
        (-3, -7, -0.0, 0.001, DATE '2099-12-31', TIMESTAMP '2026-03-15 00:00:00', false,
         'say "hi", then
        leave; Zürich € \\N'),
        (-4, 2147483647, 1.7976931348623157e308, 999999999999999.999, DATE '2026-02-28',
         TIMESTAMP '2026-02-28 12:00:00', NULL, 'NULL')"""
    )
    con.close()


def duck_rows(path: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT * FROM marts.{table} ORDER BY ALL").fetchall()
    finally:
        con.close()


def pg_rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as con:
        return con.execute(sql).fetchall()


def publish(warehouse: Path, url: str, run_id: str, schema: str = "marts", marts=MARTS):
    return publish_postgres(warehouse, marts, url, schema, run_id=run_id, as_of=AS_OF,
                            env_name="CRM_POSTGRES_URL")  # fmt: skip


def test_marts_arrive_value_by_value_with_faithful_types(tmp_path, pg_url):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 50)
    add_edge_rows(warehouse)

    publication = publish(warehouse, pg_url, "run-1")

    assert pg_rows(
        pg_url,
        "SELECT column_name, data_type, numeric_precision, numeric_scale "
        "FROM information_schema.columns WHERE table_schema = 'marts' "
        "AND table_name = 'fct_deals' ORDER BY ordinal_position",
    ) == [
        ("deal_id", "bigint", 64, 0),
        ("bucket", "integer", 32, 0),
        ("ratio", "double precision", 53, None),
        ("price", "numeric", 18, 3),
        ("day", "date", None, None),
        ("created_at", "timestamp without time zone", None, None),
        ("is_won", "boolean", None, None),
        ("name", "character varying", None, None),
    ]
    for table in MARTS:
        got = pg_rows(pg_url, f"SELECT * FROM marts.{table} ORDER BY 1")
        assert sorted(got, key=repr) == sorted(duck_rows(warehouse, table), key=repr)
    edge = {r[0]: r for r in pg_rows(pg_url, "SELECT * FROM marts.fct_deals WHERE deal_id < 0")}
    assert edge[-1] == (-1, None, None, None, None, None, None, None)
    assert edge[-2] == (-2, 0, 1e-300, Decimal("-999999999999999.999"), date(1970, 1, 1),
                        datetime(1999, 12, 31, 23, 59, 59, 999999), True, "")  # fmt: skip
    assert edge[-3][7] == 'say "hi", then\n        leave; Zürich € \\N'
    assert edge[-4][2] == 1.7976931348623157e308 and edge[-4][7] == "NULL"
    assert pg_rows(pg_url, "SELECT run_id, as_of, marts FROM marts._publication") == [
        ("run-1", AS_OF, MARTS)
    ]
    assert publication.rows == 55 and publication.tables == 2
    assert "S3cret" not in publication.line()


def test_a_second_publish_swaps_atomically_under_a_concurrent_reader(tmp_path, pg_url):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 200_000)
    publish(warehouse, pg_url, "run-1")
    old = pg_rows(pg_url, "SELECT deals, price_sum FROM marts.kpi_total")[0]
    make_warehouse(warehouse, 300_000)

    seen: list[tuple] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        # One statement reads both marts and the run id: a publish seen half-done would
        # pair one run's fct_deals with the other's kpi_total or run id.
        try:
            with psycopg.connect(pg_url, autocommit=True) as con:
                while not stop.is_set():
                    seen.append(
                        con.execute(
                            "SELECT (SELECT run_id FROM marts._publication), "
                            "(SELECT count(*) FROM marts.fct_deals), "
                            "(SELECT sum(price) FROM marts.fct_deals), "
                            "(SELECT deals FROM marts.kpi_total), "
                            "(SELECT price_sum FROM marts.kpi_total)"
                        ).fetchone()
                    )
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        publish(warehouse, pg_url, "run-2")
        after_publish = len(seen)
        while len(seen) < after_publish + 3 and thread.is_alive():
            pass
    finally:
        stop.set()
        thread.join(60)

    assert not errors, errors
    new = pg_rows(pg_url, "SELECT deals, price_sum FROM marts.kpi_total")[0]
    assert old == (200_000, Decimal("20100100500.000")) and new[0] == 300_000
    assert set(seen) <= {("run-1", *old, *old), ("run-2", *new, *new)}
    assert seen[0][0] == "run-1" and seen[-1][0] == "run-2"
    # The staging tables never outlive the transaction.
    assert pg_rows(
        pg_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
        "ORDER BY 1"
    ) == [("_publication",), ("fct_deals",), ("kpi_total",)]  # fmt: skip


def test_a_failure_inside_the_transaction_keeps_the_old_numbers(tmp_path, pg_url):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 10)
    publish(warehouse, pg_url, "run-1")
    # A view a dashboard user defined on a mart: the swap cannot drop the table under it.
    with psycopg.connect(pg_url) as con:
        con.execute("CREATE VIEW public.big_deals AS SELECT * FROM marts.fct_deals")
    make_warehouse(warehouse, 20)

    with pytest.raises(PublishError) as failed:
        publish(warehouse, pg_url, "run-2")

    message = str(failed.value)
    assert "Publishing the marts to PostgreSQL (postgresql://" in message
    assert ":***@127.0.0.1:" in message and "schema marts" in message
    assert "big_deals" in message and "drop the view" in message
    assert "keep their previous numbers" in message
    assert "S3cret" not in message
    assert not failed.value.retry
    assert pg_rows(pg_url, "SELECT run_id FROM marts._publication") == [("run-1",)]
    assert pg_rows(pg_url, "SELECT count(*) FROM marts.fct_deals") == [(10,)]
    assert pg_rows(
        pg_url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts'"
    ) == [(3,)]


def test_a_server_that_is_down_gives_a_clear_message_without_the_password(tmp_path):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 10)
    url = f"postgresql://publisher:Hunter2-S3cret@127.0.0.1:{free_port()}/bi"

    with pytest.raises(PublishError) as failed:
        publish(warehouse, url, "run-1")

    message = str(failed.value)
    assert message.startswith(
        f"Publishing the marts to PostgreSQL (postgresql://publisher:***@127.0.0.1:"
        f"{url.split(':')[3].split('/')[0]}/bi, schema marts) failed: "
    )
    assert "Connection refused" in message
    assert "Check that the server is running" in message and "CRM_POSTGRES_URL" in message
    assert "Hunter2" not in message
    assert failed.value.retry  # a server may come back


def test_a_wrong_password_is_not_retried_and_not_shown(tmp_path, pg_url):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 10)
    bad = pg_url.replace("-S3cret@", "-Wrong-Guess@")

    with pytest.raises(PublishError) as failed:
        publish(warehouse, bad, "run-1")

    message = str(failed.value)
    assert "password authentication failed" in message
    assert "Check the user and password in CRM_POSTGRES_URL" in message
    assert "Wrong-Guess" not in message and not failed.value.retry


def test_an_unmapped_type_is_refused_before_the_server_is_touched(tmp_path, pg_url):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 10)
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE TABLE marts.kpi_lists AS SELECT [1, 2] AS stages")
    con.close()

    with pytest.raises(PublishError, match=r"Column marts\.kpi_lists\.stages has the DuckDB "
                       r"type INTEGER\[\], which .* Cast the column"):  # fmt: skip
        publish(warehouse, pg_url, "run-1", marts=[*MARTS, "kpi_lists"])
    assert pg_rows(pg_url, "SELECT to_regnamespace('marts')") == [(None,)]


def test_a_mart_dropped_from_the_project_goes_and_other_tables_stay(tmp_path, pg_url):
    warehouse = make_warehouse(tmp_path / "wh.duckdb", 10)
    publish(warehouse, pg_url, "run-1", schema="bi")
    with psycopg.connect(pg_url) as con:
        con.execute("CREATE TABLE bi.notes AS SELECT 'mine' AS note")

    publish(warehouse, pg_url, "run-2", schema="bi", marts=["kpi_total"])

    assert pg_rows(
        pg_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'bi' "
        "ORDER BY 1"
    ) == [("_publication",), ("kpi_total",), ("notes",)]  # fmt: skip


def test_the_connection_string_comes_from_the_environment_and_is_masked():
    settings = PostgresPublishSettings(env="CRM_BI_URL", schema="marts")
    with pytest.raises(ConfigError, match=r"environment variable CRM_BI_URL, which is not set"):
        postgres_url(settings, {})
    with pytest.raises(ConfigError) as bad:
        postgres_url(settings, {"CRM_BI_URL": "postgresql//bob:T0ps3cret@db/bi"})
    assert "does not hold a PostgreSQL connection string" in str(bad.value)
    assert "T0ps3cret" not in str(bad.value)
    url = "postgresql://bob:T0ps3cret@db.example.com:6543/bi"
    assert postgres_url(settings, {"CRM_BI_URL": f" {url} "}) == url
    assert mask_url(url) == "postgresql://bob:***@db.example.com:6543/bi"
    assert mask_url("host=db user=bob password=T0ps3cret dbname=bi") == (
        "postgresql://bob:***@db/bi"
    )
    assert mask_url("postgresql:///bi") == "postgresql://localhost/bi"
