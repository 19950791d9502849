"""Publishing the marts to PostgreSQL, for dashboards on other machines.

One transaction per publish: every mart is loaded with COPY into a new table beside the
old one, then the old tables are dropped and the new ones renamed into their place, and
the transaction commits. A dashboard sees the old numbers or the new ones, never half; a
failure anywhere rolls everything back and leaves the previous numbers in place.

The connection string comes only from an environment variable (it holds a password);
every message shows it with the password masked, and error texts are scrubbed of it.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ingestion.errors import ConfigError, PublishError
from ingestion.publish import MARTS_SCHEMA, PUBLICATION_TABLE, Publication

if TYPE_CHECKING:
    import psycopg

    from ingestion.config import PostgresPublishSettings

# DuckDB type (as information_schema names it) → PostgreSQL type holding every value of
# it exactly. Unsigned and 128-bit integers need a wider type (or numeric).
_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "HUGEINT": "numeric(39,0)",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric(20,0)",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "varchar",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_S": "timestamp(0)",
    "TIMESTAMP_MS": "timestamp(3)",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "INTERVAL": "interval",
    "UUID": "uuid",
    "JSON": "json",
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")
# A dashboard's query that holds a mart longer than this makes the publish give up (and
# keep the old numbers) instead of waiting without end; Dagster's retry tries again.
LOCK_TIMEOUT_SECONDS = 120
CONNECT_TIMEOUT_SECONDS = 15
# One try at the old tables' locks; below PostgreSQL's deadlock_timeout (1 s).
_LOCK_TRY_MS = 200
# New tables are created beside the old ones, in the same schema, so the schema's
# default privileges (ALTER DEFAULT PRIVILEGES ... GRANT SELECT) apply to them.
_NEW_SUFFIX = "__publishing"
_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


def pg_type(duckdb_type: str, where: str) -> str:
    """The PostgreSQL type for a DuckDB column type; PublishError when none is faithful."""
    decimal = _DECIMAL.fullmatch(duckdb_type)
    if decimal:
        return f"numeric({decimal[1]},{decimal[2]})"
    if duckdb_type in _TYPES:
        return _TYPES[duckdb_type]
    raise PublishError(
        f"{where} has the DuckDB type {duckdb_type}, which the PostgreSQL publish does not "
        f"map (it maps {', '.join(sorted(_TYPES))} and DECIMAL(p,s)). Cast the column to "
        f"one of those in its dbt model."
    )


def postgres_url(settings: PostgresPublishSettings, environ: Mapping[str, str]) -> str:
    """The connection string from the environment variable the config names, checked."""
    url = environ.get(settings.env, "").strip()
    if not url:
        raise ConfigError(
            f"publish.postgres in the config reads the PostgreSQL connection string from the "
            f"environment variable {settings.env}, which is not set. Set it (e.g. "
            f"{settings.env}=postgresql://user:password@host:5432/database) or remove "
            f"publish.postgres from the config."
        )
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception:
        # libpq's message quotes the string, password included: say what it should be.
        raise ConfigError(
            f"The environment variable {settings.env} does not hold a PostgreSQL connection "
            f"string (its value is not shown: it may hold a password). Write it as "
            f"postgresql://user:password@host:5432/database."
        ) from None
    return url


def mask_url(url: str) -> str:
    """The connection string as messages show it: user, host, port and database, with
    the password replaced by ***."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:
        return "(a connection string that cannot be parsed)"
    user = params.get("user") or ""
    auth = f"{user}{':***' if params.get('password') else ''}@" if user else ""
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{auth}{host}{port}/{params.get('dbname') or user or ''}"


def _scrub(text: str, url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = str(conninfo_to_dict(url).get("password") or "")
    except Exception:
        password = ""
    text = text.replace(url, mask_url(url))
    return text.replace(password, "***") if password else text


def publish_postgres(
    warehouse: Path,
    marts: Sequence[str],
    url: str,
    schema: str,
    *,
    run_id: str,
    as_of: datetime,
    env_name: str = "the environment variable",
    published_at: datetime | None = None,
) -> Publication:
    """Replace the marts in ``schema`` of the PostgreSQL database at ``url`` with the
    warehouse's, in one transaction. The caller keeps writers off the warehouse."""
    import psycopg

    where = f"{mask_url(url)}, schema {schema}"
    published_at = published_at or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    too_long = [m for m in marts if len(m) + len(_NEW_SUFFIX) > _MAX_IDENTIFIER]
    if too_long:
        raise PublishError(
            f"The mart name {too_long[0]} is too long for PostgreSQL (at most "
            f"{_MAX_IDENTIFIER - len(_NEW_SUFFIX)} characters): rename the dbt model."
        )
    with tempfile.TemporaryDirectory(dir=warehouse.parent, prefix=".publish-postgres-") as tmp:
        # DuckDB writes each mart as CSV (set-based, in its own threads); COPY streams it
        # to the server. The warehouse is closed again before the server is touched.
        columns, files = _export_csv(warehouse, marts, Path(tmp))
        try:
            rows = _load(url, schema, marts, columns, files, run_id, as_of, published_at)
        except psycopg.Error as exc:
            sqlstate = _sqlstate(exc)
            raise PublishError(
                _failure_message(exc, url, where, env_name),
                # A server down or a lock held may be gone on the next try; a refused
                # login or a missing privilege is not.
                retry=not sqlstate.startswith(("28", "42", "2B")),
            ) from None
    return Publication("PostgreSQL", f"{where}", len(marts), rows)


def _export_csv(
    warehouse: Path, marts: Sequence[str], folder: Path
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, Path]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        columns: dict[str, list[tuple[str, str]]] = {}
        files = {}
        for mart in marts:
            described = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [MARTS_SCHEMA, mart],
            ).fetchall()
            if not described:
                raise PublishError(
                    f"The warehouse {warehouse} has no table {MARTS_SCHEMA}.{mart}, though "
                    f"the dbt project defines it: run the whole pipeline (crm-pipeline run) "
                    f"before publishing."
                )
            columns[mart] = [
                (name, pg_type(type_, f"Column {MARTS_SCHEMA}.{mart}.{name}"))
                for name, type_ in described
            ]
            files[mart] = folder / f"{mart}.csv"
            # DuckDB writes NULL as an empty field and '' as "", as PostgreSQL reads them,
            # and doubles in their shortest exact form.
            target = str(files[mart]).replace("'", "''")
            con.execute(
                f'COPY "{MARTS_SCHEMA}"."{mart}" TO \'{target}\' (FORMAT csv, HEADER false)'
            )
    finally:
        con.close()
    return columns, files


def _load(
    url: str,
    schema: str,
    marts: Sequence[str],
    columns: dict[str, list[tuple[str, str]]],
    files: dict[str, Path],
    run_id: str,
    as_of: datetime,
    published_at: datetime,
) -> int:
    import psycopg
    from psycopg import sql

    total = 0
    ident = sql.Identifier
    with psycopg.connect(
        url, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="crm-pipeline publish"
    ) as pg:
        # The connection's context commits on success and rolls back on any error.
        cur = pg.cursor()
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(f"{LOCK_TIMEOUT_SECONDS}s"))
        # Two warehouses publishing to one schema take turns instead of colliding.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"crm-pipeline:{schema}"])
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(schema)))
        previous = _previous_marts(cur, schema)
        for mart in marts:
            new = ident(schema, mart + _NEW_SUFFIX)
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(new))
            cur.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    new,
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(ident(name), sql.SQL(type_))
                        for name, type_ in columns[mart]
                    ),
                )
            )
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                new, sql.SQL(", ").join(ident(name) for name, _ in columns[mart])
            )
            with cur.copy(copy_sql) as copy, files[mart].open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    copy.write(chunk)
            total += cur.rowcount if cur.rowcount > 0 else 0
            # Dashboards' first queries get a plan from real statistics.
            cur.execute(sql.SQL("ANALYZE {}").format(new))
        # The swap: the only moment dashboards wait (the old tables' locks), right
        # before the commit.
        _lock_old_tables(pg, cur, schema, [*marts, *previous, PUBLICATION_TABLE])
        for mart in marts:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(schema, mart)))
            cur.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    ident(schema, mart + _NEW_SUFFIX), ident(mart)
                )
            )
        # A mart this pipeline published before and the project no longer has goes too.
        for gone in sorted(set(previous) - set(marts)):
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(schema, gone)))
        publication = ident(schema, PUBLICATION_TABLE)
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(publication))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (run_id varchar, as_of timestamp, published_at timestamp, "
                "marts varchar[])"
            ).format(publication)
        )
        cur.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(publication),
            [run_id, as_of, published_at, list(marts)],
        )
    return total


def _lock_old_tables(
    pg: psycopg.Connection, cur: psycopg.Cursor, schema: str, names: list[str]
) -> None:
    """Take every table the swap drops, in one go, and hold them to the commit.

    A dashboard's query locks the tables it reads one after the other. Waiting for the
    old tables one by one can deadlock with a query that holds one of them and waits for
    another the publish already has, and PostgreSQL then kills one of the two. Each try
    here waits less than PostgreSQL's deadlock check (1 s by default) and then lets go of
    everything, so the query goes on; meanwhile the queued lock holds new queries back,
    so the tables soon are free together.
    """
    cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind = 'r'",
        [schema, sorted(set(names))],
    )
    existing = [name for (name,) in cur.fetchall()]
    if not existing:
        return
    import psycopg
    from psycopg import sql

    lock = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
        sql.SQL(", ").join(sql.Identifier(schema, name) for name in existing)
    )
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        try:
            with pg.transaction():  # a savepoint: a refused try releases what it took
                cur.execute(f"SET LOCAL lock_timeout = '{_LOCK_TRY_MS}ms'")
                cur.execute(lock)
            cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _previous_marts(cur: psycopg.Cursor, schema: str) -> list[str]:
    from psycopg import sql

    cur.execute("SELECT to_regclass(%s)", [f'"{schema}"."{PUBLICATION_TABLE}"'])
    if cur.fetchone()[0] is None:
        return []
    cur.execute(sql.SQL("SELECT marts FROM {}").format(sql.Identifier(schema, PUBLICATION_TABLE)))
    row = cur.fetchone()
    return list(row[0]) if row and row[0] else []


def _sqlstate(exc: Exception) -> str:
    sqlstate = getattr(exc, "sqlstate", None) or ""
    # A refused login arrives while connecting, where libpq gives no SQLSTATE.
    if not sqlstate and "authentication failed" in str(exc):
        return "28P01"
    return sqlstate


def _failure_message(exc: Exception, url: str, where: str, env_name: str) -> str:
    detail = " ".join(_scrub(str(exc), url).split()).rstrip(".")
    sqlstate = _sqlstate(exc)
    if sqlstate == "55P03":  # lock_not_available: a dashboard's query held a mart
        hint = (
            f"A query held a mart for more than {LOCK_TIMEOUT_SECONDS} s; the publish tries "
            f"again on the next run (or retry the step)."
        )
    elif sqlstate == "2BP01":  # dependent_objects_still_exist: a view on a mart
        hint = (
            "The publish replaces the mart tables on every run, so a view on them blocks it: "
            "drop the view, or define it on the dashboard side, then run again."
        )
    elif sqlstate.startswith("28"):  # invalid authorization
        hint = f"Check the user and password in {env_name}, then run again."
    elif sqlstate.startswith("42"):  # e.g. no privilege to create the schema or tables
        hint = (
            "The user needs CREATE on the database (for the schema) or on the schema; "
            "grant it, then run again."
        )
    else:
        hint = (
            f"Check that the server is running and reachable and that {env_name} points at "
            f"it, then run again."
        )
    return (
        f"Publishing the marts to PostgreSQL ({where}) failed: {detail}"
        f"{'' if detail.endswith(('?', '!')) else '.'} The tables there "
        f"keep their previous numbers; the warehouse and its serving file hold the new ones. "
        f"{hint}"
    )
