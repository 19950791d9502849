"""What the end-to-end tests share: running the CLI on a landing, reading the warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

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


def mart_columns(warehouse: Path, table: str) -> set[str]:
    return {
        r[0]
        for r in query(
            warehouse,
            "select column_name from information_schema.columns "
            f"where table_schema = 'marts' and table_name = '{table}'",
        )
    }


def same(got: object, expected: object, abs_tol: float = 0.0) -> bool:
    """A mart cell equals a hand-computed value: same type, floats to 1e-12 relative (or
    `abs_tol`, for money summed as decimals rounded to 1e-9 per row)."""
    if expected is None or got is None:
        return got is expected
    if isinstance(expected, bool) or isinstance(got, bool):
        return isinstance(got, bool) and got == expected
    if isinstance(expected, float):
        return isinstance(got, float) and got == pytest.approx(expected, rel=1e-12, abs=abs_tol)
    return type(got) is type(expected) and got == expected


def check_rows(
    warehouse: Path,
    table: str,
    columns: list[str],
    key: int,
    expected: list[tuple],
    *,
    all_columns: bool = True,
    where: str | None = None,
    abs_tol: float = 0.0,
) -> None:
    """Compare the given columns of the rows (optionally only those matching `where`);
    `key` = number of leading key columns. With all_columns, the mart's column set must
    equal `columns`. Every differing cell and missing/extra row goes into one message."""
    if all_columns:
        assert mart_columns(warehouse, table) == set(columns), (
            f"{table}: column set differs: {sorted(mart_columns(warehouse, table))}"
        )
    got_rows = query(
        warehouse,
        f"select {', '.join(columns)} from marts.{table}"
        + (f" where {where}" if where else "")
        + f" order by {', '.join(columns[:key])}",
    )
    got = {r[:key]: r for r in got_rows}
    want = {r[:key]: r for r in expected}
    assert len(got) == len(got_rows), f"{table}: duplicate keys"
    assert len(want) == len(expected), "expected rows have duplicate keys"
    problems = [f"missing row {k}" for k in want if k not in got]
    problems += [f"unexpected row {got[k]}" for k in got if k not in want]
    for k in want:
        if k in got:
            for col, g, e in zip(columns, got[k], want[k], strict=True):
                if not same(g, e, abs_tol):
                    problems.append(f"{k} {col}: pipeline {g!r}, expected {e!r}")
    assert not problems, f"{table}:\n" + "\n".join(problems)


def build_known_answer(tmp: Path, landing: Path, as_of: str, *extra: str) -> Path:
    """Copy a fixture landing and run the pipeline on it; the warehouse, once it exits 0."""
    copy = tmp / "landing"
    shutil.copytree(landing, copy)
    warehouse = tmp / "warehouse.duckdb"
    assert run_pipeline(copy, warehouse, as_of, *extra) == 0
    return warehouse
