"""Readers' copies of the marts: a serving DuckDB file and one Parquet file per mart.

The warehouse is the pipeline's own file: a run writes it, and DuckDB lets no other
process open a file while one writes it. Readers (BI tools, notebooks) open these copies
instead. Each is built under a temporary name in its final directory, flushed to disk and
renamed over the previous one (``os.replace``): a reader that opens the path gets a whole
old or a whole new file, and a reader that already has the old file open keeps reading
it (its open file keeps the old inode) while the run goes on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingestion.errors import PublishError

MARTS_SCHEMA = "marts"
# One row: which run published the copy, as of when, and which marts it holds. Readers
# check it to tell which numbers they see; it lives outside the marts schema, so the
# marts schema lists the marts and nothing else.
PUBLICATION_TABLE = "_publication"
_TMP_SUFFIX = ".tmp"


def serving_path(warehouse: Path) -> Path:
    """The serving file beside the warehouse: data/w.duckdb → data/w.serving.duckdb."""
    return warehouse.with_name(f"{warehouse.stem}.serving.duckdb")


def parquet_dir(warehouse: Path) -> Path:
    """The folder of the marts' Parquet files: <warehouse dir>/marts/<mart>.parquet."""
    return warehouse.parent / "marts"


@dataclass(frozen=True)
class Publication:
    """Where one target's copy of the marts went, for the run summary."""

    target: str
    location: str
    tables: int
    rows: int
    note: str = ""

    def line(self) -> str:
        noun = "file" if self.target == "Parquet" else "mart"
        plural = "" if self.tables == 1 else "s"
        text = (
            f"Published to {self.target}: {self.location} "
            f"({self.tables} {noun}{plural}, {self.rows:,} rows"
        )
        return text + (f"; {self.note})" if self.note else ")")


def mart_names(warehouse: Path) -> list[str]:
    """The tables of the warehouse's marts schema (what dbt built there)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = ? and table_type = 'BASE TABLE' order by table_name",
            [MARTS_SCHEMA],
        ).fetchall()
    finally:
        con.close()
    return [name for (name,) in rows]


def publish_files(
    warehouse: Path,
    marts: Sequence[str],
    *,
    run_id: str,
    as_of: datetime,
    published_at: datetime | None = None,
) -> list[Publication]:
    """Copy the given marts of the warehouse into the serving file and Parquet files.

    The caller makes sure nobody writes the warehouse meanwhile (the run's writer lock):
    the warehouse is only read here. Nothing is renamed before every temporary file is
    complete, so a failure leaves the previous copies as they were.
    """
    warehouse = warehouse.resolve()
    serving = serving_path(warehouse)
    folder = parquet_dir(warehouse)
    folder.mkdir(parents=True, exist_ok=True)
    # Only one run writes a warehouse at a time (its writer lock), so a temporary file
    # left here is a crashed run's.
    _remove_leftovers(serving.parent, f".{serving.name}.")
    _remove_leftovers(folder, ".")
    pid = os.getpid()
    serving_tmp = serving.with_name(f".{serving.name}.{pid}{_TMP_SUFFIX}")
    parquet_tmp = {m: folder / f".{m}.parquet.{pid}{_TMP_SUFFIX}" for m in marts}
    published_at = published_at or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    try:
        rows = _build(warehouse, serving_tmp, parquet_tmp, marts, run_id, as_of, published_at)
        for path in [serving_tmp, *parquet_tmp.values()]:
            _fsync(path)
        os.replace(serving_tmp, serving)
        for mart, tmp in parquet_tmp.items():
            os.replace(tmp, folder / f"{mart}.parquet")
    finally:
        for path in [serving_tmp, *parquet_tmp.values()]:
            path.unlink(missing_ok=True)
        serving_tmp.with_name(serving_tmp.name + ".wal").unlink(missing_ok=True)
    # A mart dropped from the project must not linger as a file that looks current.
    for old in folder.glob("*.parquet"):
        if old.stem not in marts:
            old.unlink()
    _fsync_dir(serving.parent)
    _fsync_dir(folder)
    total = sum(rows.values())
    return [
        Publication("the serving file", str(serving), len(marts), total, "open it read-only"),
        Publication("Parquet", str(folder / "<mart>.parquet"), len(marts), total),
    ]


def _build(
    warehouse: Path,
    serving_tmp: Path,
    parquet_tmp: dict[str, Path],
    marts: Sequence[str],
    run_id: str,
    as_of: datetime,
    published_at: datetime,
) -> dict[str, int]:
    con = duckdb.connect(str(serving_tmp))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        try:
            con.execute(f"ATTACH {_literal(str(warehouse))} AS crm_source_warehouse (READ_ONLY)")
        except duckdb.IOException as exc:
            raise PublishError(
                f"Cannot read the warehouse {warehouse} to publish the marts: "
                f"{str(exc).splitlines()[0]} A process other than this run has it open for "
                f"writing; close it (readers belong on {serving_path(warehouse).name}) and "
                f"run again.",
                retry=True,
            ) from exc
        existing = {
            name
            for (name,) in con.execute(
                "select table_name from duckdb_tables() "
                "where database_name = 'crm_source_warehouse' and schema_name = ?",
                [MARTS_SCHEMA],
            ).fetchall()
        }
        missing = [m for m in marts if m not in existing]
        if missing:
            raise PublishError(
                f"The warehouse {warehouse} has no table {MARTS_SCHEMA}.{missing[0]}"
                + (f" (nor {', '.join(missing[1:])})" if missing[1:] else "")
                + ", though the dbt project defines it: the marts were not built by this "
                "run. Run the whole pipeline (crm-pipeline run) before publishing."
            )
        con.execute(f"CREATE SCHEMA {MARTS_SCHEMA}")
        rows = {}
        for mart in marts:
            table = f"{MARTS_SCHEMA}.{_ident(mart)}"
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM crm_source_warehouse.{table}")
            (rows[mart],) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            con.execute(f"COPY {table} TO {_literal(str(parquet_tmp[mart]))} (FORMAT parquet)")
        con.execute(
            f"CREATE TABLE {PUBLICATION_TABLE} AS SELECT ?::VARCHAR AS run_id, "
            "?::TIMESTAMP AS as_of, ?::TIMESTAMP AS published_at, ?::VARCHAR[] AS marts",
            [run_id, as_of, published_at, list(marts)],
        )
        con.execute("DETACH crm_source_warehouse")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return rows


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _remove_leftovers(folder: Path, prefix: str) -> None:
    for path in folder.glob(f"{prefix}*{_TMP_SUFFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # The renames themselves reach the disk only with the directory.
    _fsync(folder)
