"""What the end-to-end tests share: running the CLI on a landing, reading the warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb

from orchestration.cli import main


def run_pipeline(
    landing: Path, warehouse: Path, as_of: str, *extra: str, source: str = "crm"
) -> int:
    """`crm-pipeline run --source <source>` in this process; returns its exit code."""
    return main(
        ["run", "--source", source, "--landing", str(landing), "--warehouse", str(warehouse),
         "--as-of", as_of, *extra]
    )  # fmt: skip


def query(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
