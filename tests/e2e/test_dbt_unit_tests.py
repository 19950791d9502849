"""The dbt unit tests (models/*/_*__unit_tests.yml) run here, not in every pipeline run.

A pipeline run builds with `--exclude-resource-type unit_test`, as dbt advises for
production: unit tests check the SQL's logic on fixed inputs, so their verdict changes
only when the code does, and each run would pay for them again. They need the models'
relations to exist (dbt reads the input columns from the database): `dbt run --empty`
builds every model with no rows on an empty warehouse first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingestion.warehouse import connect, create_raw_tables, write_run_context

PROJECT = Path(__file__).parents[2] / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"


def dbt(args: list[str], warehouse: Path, target: Path) -> subprocess.CompletedProcess:
    vars_ = {"warehouse_path": str(warehouse), "reporting_currency": "USD"}
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
