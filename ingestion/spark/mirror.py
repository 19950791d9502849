"""The Spark run's marts and quality records, copied into the DuckDB warehouse file.

With ``engine: spark`` the tables live in Spark's warehouse folder, one folder of Parquet
files per table. Everything that reads a finished run (the run summary, the report,
``crm-pipeline report``, the serving file, the Parquet and PostgreSQL copies) reads the
DuckDB file at ``warehouse:``; on Spark that file holds a copy of what they read, made by
DuckDB's Parquet reader from Spark's files, so they work unchanged, from one reader, with
no JVM:

* ``quality.*``, whole (a few rows per landing file and rule), after ingestion: a run the
  gate blocks still says what it held back;
* ``marts.*``, after ``dbt build``, with DuckDB's types (Spark's Parquet timestamps are
  instants, the marts' are naive UTC);
* ``raw.users`` (the report names the reps); the other raw tables stay in Spark.

Each copy replaces the previous one in one transaction: a reader sees one run's tables or
the next's, never a mix. The copy needs the Spark warehouse on this machine's file system
(``spark.warehouse_dir`` a local folder, as in local mode); on a cluster's object store the
marts stay in Spark's catalog (docs/spark.md).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ingestion.config import PipelineConfig
from ingestion.warehouse import QUALITY_SCHEMA, RAW_SCHEMA, connect, create_quality_tables

MARTS_SCHEMA = "marts"
# The raw tables a reader of the DuckDB file needs (the report's rep names).
RAW_TABLES = ("users",)


def local_warehouse_dir(cfg: PipelineConfig) -> Path | None:
    """Spark's warehouse folder when it is on this machine's file system, else None."""
    location = cfg.spark_warehouse_dir
    if location.startswith("file:"):
        location = location.removeprefix("file:").removeprefix("//")
    elif "://" in location:
        return None
    return Path(location)


def parquet_files(folder: Path) -> list[Path]:
    """A Spark table's data files, oldest first (an appended table's rows in the order
    they were written); Spark's markers (``_SUCCESS``, ``.crc``) left out."""
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.name.endswith(".parquet") and not p.name.startswith(("_", "."))
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def parquet_select(con: duckdb.DuckDBPyConnection, files: list[Path]) -> str:
    """A SELECT of every column of a Spark table's Parquet files, Spark's instants as
    DuckDB's naive UTC (the connection's TimeZone must be UTC). By name: files written
    before a column was added to the table (quarantine's export_file ...) lack it."""
    paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    source = f"read_parquet([{paths}], union_by_name = true)"
    items = []
    for name, type_, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall():
        column = '"' + name.replace('"', '""') + '"'
        if type_ == "TIMESTAMP WITH TIME ZONE":
            items.append(f"CAST({column} AS TIMESTAMP) AS {column}")
        else:
            items.append(column)
    return f"SELECT {', '.join(items)} FROM {source}"


def mirror_quality(cfg: PipelineConfig) -> None:
    """Copy Spark's quality.* and the raw tables of RAW_TABLES into the DuckDB file."""
    root = local_warehouse_dir(cfg)
    if root is None:
        return
    with connect(cfg.warehouse, memory_limit=cfg.memory_limit) as con:
        con.execute("SET TimeZone = 'UTC'")
        create_quality_tables(con)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        con.execute("BEGIN")
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [QUALITY_SCHEMA],
        ).fetchall()]  # fmt: skip
        for table in tables:
            con.execute(f"DELETE FROM {QUALITY_SCHEMA}.{table}")
            files = parquet_files(root / f"{QUALITY_SCHEMA}.db" / table)
            if files:
                # By name: the DuckDB log keeps columns Spark's does not (file_size ...).
                con.execute(
                    f"INSERT INTO {QUALITY_SCHEMA}.{table} BY NAME {parquet_select(con, files)}"
                )
        for table in RAW_TABLES:
            files = parquet_files(root / f"{RAW_SCHEMA}.db" / table)
            if files:
                con.execute(
                    f"CREATE OR REPLACE TABLE {RAW_SCHEMA}.{table} AS {parquet_select(con, files)}"
                )
        con.execute("COMMIT")


def mirror_marts(cfg: PipelineConfig) -> list[str]:
    """Copy every table of Spark's marts database into the DuckDB file's marts schema,
    replacing the previous copy; returns the marts copied."""
    root = local_warehouse_dir(cfg)
    if root is None:
        return []
    folder = root / f"{MARTS_SCHEMA}.db"
    tables = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    copied = []
    with connect(cfg.warehouse, memory_limit=cfg.memory_limit) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {MARTS_SCHEMA}")
        con.execute("BEGIN")
        for table in tables:
            files = parquet_files(folder / table)
            if not files:  # a table being written, or dbt's leftover: no data to read
                continue
            con.execute(
                f'CREATE OR REPLACE TABLE {MARTS_SCHEMA}."{table}" AS {parquet_select(con, files)}'
            )
            copied.append(table)
        con.execute("COMMIT")
    return copied
