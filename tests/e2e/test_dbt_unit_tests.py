"""The dbt unit tests (models/*/_*__unit_tests.yml) run here, not in every pipeline run.

A pipeline run builds with `--exclude-resource-type unit_test`, as dbt advises for
production: unit tests check the SQL's logic on fixed inputs, so their verdict changes
only when the code does, and each run would pay for them again. They need the models'
relations to exist (dbt reads the input columns from the database): `dbt run --empty`
builds every model with no rows on an empty warehouse first. The profile's DuckDB
settings are checked here too, with dbt as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingestion.warehouse import connect, create_raw_tables, write_run_context

PROJECT = Path(__file__).parents[2] / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"


def dbt(
    args: list[str], warehouse: Path, target: Path, **extra_vars: str
) -> subprocess.CompletedProcess:
    vars_ = {"warehouse_path": str(warehouse), "reporting_currency": "USD", **extra_vars}
    return subprocess.run(
        [str(DBT), *args, "--profiles-dir", ".", "--target-path", str(target),
         "--vars", json.dumps(vars_)],
        cwd=PROJECT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_every_dbt_unit_test_passes(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with connect(warehouse) as con:
        create_raw_tables(con)
        write_run_context(con, "2026-11-26 06:00:00", "unit-tests")
    target = tmp_path / "target"
    built = dbt(["run", "--empty"], warehouse, target)
    assert built.returncode == 0, built.stdout[-3000:]
    tested = dbt(["test", "--select", "test_type:unit"], warehouse, target)
    assert tested.returncode == 0, tested.stdout[-3000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    unit = [r for r in results if r["unique_id"].startswith("unit_test.")]
    # Every unit test of the project ran and passed (the count grows with the project).
    declared = sum(
        path.read_text().count("\n  - name: ")
        for path in (PROJECT / "models").rglob("_*__unit_tests.yml")
    )
    assert len(unit) == declared > 20
    assert {r["status"] for r in unit} == {"pass"}


def test_dbt_works_within_the_configured_memory_limit(tmp_path):
    # The profile sets the config's memory_limit when dbt opens the database (not on each
    # node's cursor, where every SET made DuckDB release its cached memory): dbt's cursors
    # see it. 300 MB is 300,000,000 bytes, which DuckDB shows as 286.1 MiB.
    shown = dbt(
        ["show", "--inline", "select current_setting('memory_limit') as memory_limit, "
         "current_setting('TimeZone') as time_zone", "--output", "json", "--quiet"],
        tmp_path / "warehouse.duckdb", tmp_path / "target", memory_limit="300MB",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout[-3000:]
    assert json.loads(shown.stdout)["show"] == [{"memory_limit": "286.1 MiB", "time_zone": "UTC"}]
