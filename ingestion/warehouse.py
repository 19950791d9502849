"""The DuckDB warehouse file: opening it, and the DDL of the ``raw`` schema."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import duckdb

from ingestion.errors import ConfigError, WarehouseLockedError
from ingestion.schema import ENTITIES, EXPORT_LINEAGE, LINEAGE_COLUMNS, SQL_TYPES, Entity

RAW_SCHEMA = "raw"
QUALITY_SCHEMA = "quality"
SCHEMAS = ("raw", "quality", "staging", "intermediate", "marts")


class WriterLock:
    """The right to write the warehouse, held by one run for its whole duration.

    DuckDB's own file lock lasts only while a connection is open, and a run opens several
    in turn (loader, checks, dbt); between them another writer could slip in. This
    advisory lock beside the file spans the run. The kernel drops it when its process
    dies, so a crashed run never leaves a stale lock behind.
    """

    def __init__(self, warehouse: Path | str, holder: str) -> None:
        self.warehouse = Path(warehouse).resolve()
        self.path = self.warehouse.with_name(self.warehouse.name + ".writer.lock")
        self.holder = holder
        self._file: IO[str] | None = None

    def acquire(
        self, wait_seconds: float = 0, on_wait: Callable[[str], None] | None = None
    ) -> WriterLock:
        """Take the lock, waiting up to ``wait_seconds`` for its holder to finish."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                other = _holder_text(fh.read())
                if time.monotonic() >= deadline:
                    fh.close()
                    raise WarehouseLockedError(
                        f"The warehouse {self.warehouse} is being written by {other}. Only "
                        f"one run may write it at a time: wait for that run to finish, then "
                        f"try again."
                    ) from None
                if on_wait is not None:
                    on_wait(other)
                    on_wait = None  # say it once
                time.sleep(1)
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {
                    "holder": self.holder,
                    "pid": os.getpid(),
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
        )
        fh.flush()
        self._file = fh
        _HELD[self.warehouse] = self
        return self

    def release(self) -> None:
        if self._file is not None:
            _HELD.pop(self.warehouse, None)
            # Nobody holds it now: a later holder that is not this code must not be
            # reported under our name.
            self._file.truncate(0)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# Writer locks this process holds: its own connections may write, nobody else's.
_HELD: dict[Path, WriterLock] = {}


def _holder_text(raw: str) -> str:
    try:
        info = json.loads(raw)
        return f"{info['holder']} (process {info['pid']}, since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def check_writable(path: Path | str) -> None:
    """Fail fast when another process holds the writer lock of this warehouse."""
    path = Path(path).resolve()
    if path in _HELD:
        return
    WriterLock(path, "a check").acquire().release()


def connect(
    path: Path | str, *, read_only: bool = False, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; a second writer gets a clear error instead of DuckDB's."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_writable(path)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            pid = re.search(r"PID (\d+)", str(exc))
            raise WarehouseLockedError(
                f"The warehouse {path} is open in another process"
                + (f" (PID {pid[1]})" if pid else "")
                + ": a run, or a client such as a notebook or the DuckDB CLI. DuckDB lets "
                "only one process write, and none while another has it open. Wait for the "
                "run to finish or close the client, then try again."
            ) from exc
        raise ConfigError(
            f"Cannot open the warehouse {path}: {str(exc).splitlines()[0]} Point "
            f"--warehouse (or `warehouse:` in the config) at a DuckDB file, or at a new path."
        ) from exc
    # Timestamps without an offset are read as UTC, and stored as naive UTC.
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB draws a progress bar on long queries; in a pipeline's logs it is noise.
    con.execute("SET enable_progress_bar = false")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


def raw_table_ddl(entity: Entity) -> str:
    cols = [f"{c.name} {SQL_TYPES[c.type]}" for c in entity.columns]
    cols += [f"{name} {type_}" for name, type_ in LINEAGE_COLUMNS]
    return f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{entity.name} ({', '.join(cols)})"


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every raw.* table (empty) so downstream models always find their sources."""
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for entity in ENTITIES.values():
        con.execute(raw_table_ddl(entity))
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.stage_map (
            source_label VARCHAR, stage VARCHAR, stage_order INTEGER,
            category VARCHAR, probability DOUBLE)"""
    )
    create_quality_tables(con)


STAGING_TEST_SCOPE = f"{QUALITY_SCHEMA}.staging_test_scope"


def write_run_context(con: duckdb.DuckDBPyConnection, as_of: str, run_id: str) -> None:
    """The one-row table the dbt models read the run's as_of from (macro as_of()): not a
    dbt var, so that dbt's partial parsing survives a new as_of on every run. Beside it,
    the staging tests' scope (orchestration.lib.unchanged.write_test_scope), empty unless
    the pipeline fills it: the project reads both, so both exist wherever dbt runs."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {QUALITY_SCHEMA}")
    con.execute(
        f"CREATE OR REPLACE TABLE {QUALITY_SCHEMA}.run_context AS "
        f"SELECT CAST(? AS TIMESTAMP) AS as_of, CAST(? AS VARCHAR) AS run_id",
        [as_of, run_id],
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {STAGING_TEST_SCOPE} ("
        "run_id VARCHAR, test_id VARCHAR, key_columns VARCHAR, batch_ids VARCHAR)"
    )


# quality.quarantine's columns from a row's export lineage (EXPORT_LINEAGE, in order):
# export_file, export_line, export_column.
QUARANTINE_EXPORT_COLUMNS: tuple[str, ...] = tuple(c.lstrip("_") for c in EXPORT_LINEAGE)


def create_quality_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The hygiene gate's records: what was loaded, quarantined, and every rule's result."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {QUALITY_SCHEMA}")
    # One row per landing file per run that read it: input = loaded + quarantined +
    # duplicates + rejected (a rejected file loads nothing and says why). Doubles as the
    # manifest of published files.
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {QUALITY_SCHEMA}.ingestion_log (
            run_id VARCHAR, batch_id VARCHAR, entity VARCHAR, source_file VARCHAR,
            content_sha256 VARCHAR, status VARCHAR, input_rows BIGINT, loaded_rows BIGINT,
            quarantined_rows BIGINT, duplicate_rows BIGINT, rejected_rows BIGINT, reasons JSON,
            ingested_at TIMESTAMP)"""
    )
    # The file's size and modification time when it was read: a file found again with
    # both unchanged is the file already published, without hashing it again (a daily
    # run would otherwise re-read gigabytes of history). Added later: ALTER for old logs.
    for column in ("file_size", "file_mtime_ns"):
        con.execute(
            f"ALTER TABLE {QUALITY_SCHEMA}.ingestion_log ADD COLUMN IF NOT EXISTS {column} BIGINT"
        )
    # One row per export file of a CRM batch (and canonical entity it feeds) per run that
    # loaded the batch, the step before ingestion_log: rows_read = rows_emitted +
    # rows_set_aside, set_aside the reasons ({reason: rows}); skip_reason says why none of
    # the file's rows could load (ingestion.sources.reconcile).
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {QUALITY_SCHEMA}.source_reconciliation (
            run_id VARCHAR, source VARCHAR, batch_id VARCHAR, export_file VARCHAR,
            entity VARCHAR, rows_read BIGINT, rows_emitted BIGINT, rows_set_aside BIGINT,
            set_aside JSON, skip_reason VARCHAR, recorded_at TIMESTAMP)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {QUALITY_SCHEMA}.quarantine (
            entity VARCHAR, batch_id VARCHAR, source_file VARCHAR, source_row BIGINT,
            raw_row JSON, failed_rules JSON, quarantined_at TIMESTAMP, run_id VARCHAR)"""
    )
    # Where a row converted from a CRM export was in the user's own file (source_file /
    # source_row name the converted landing file): NULL for a canonical landing. Added
    # later, at the end: ALTER for old warehouses, so both have one column order.
    for column in QUARANTINE_EXPORT_COLUMNS:
        con.execute(
            f"ALTER TABLE {QUALITY_SCHEMA}.quarantine ADD COLUMN IF NOT EXISTS {column} VARCHAR"
        )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {QUALITY_SCHEMA}.validation_results (
            run_id VARCHAR, validated_at TIMESTAMP, batch_id VARCHAR, entity VARCHAR,
            source_file VARCHAR, rule VARCHAR, expectation VARCHAR, "column" VARCHAR,
            severity VARCHAR, success BOOLEAN, element_count BIGINT,
            unexpected_count BIGINT, observed VARCHAR, examples JSON, message VARCHAR)"""
    )
