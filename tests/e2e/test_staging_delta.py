"""The staging tests' delta mode with the real dbt on a real warehouse: after a build
passed the staging layer, a run whose only new data is newly published batches tests
what those batches can have changed, and every verdict equals the full test's.

The verified warehouse is the skeleton fixture (tests/fixtures/skeleton, as in
test_pipeline.py) plus one fx rate (EUR on 2026-01-01), built by the pipeline. The
verdict tests then publish a batch by hand, as the loader would leave it (rows stamped
with the batch in raw, one published ingestion_log entry per file), because the hygiene
gate would quarantine some of the bad rows before they reach raw; then they run the
staging layer's `dbt build` once in delta mode and once in full, on the same data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from pipeline_helpers import query, run_pipeline

from ingestion.config import load_config
from ingestion.warehouse import connect, write_run_context
from orchestration.defs.transform.assets import dbt_vars
from orchestration.defs.transform.project import DBT_PROJECT_DIR
from orchestration.lib.unchanged import staging_nodes, staging_state, write_test_scope

FIXTURE = Path(__file__).parents[1] / "fixtures" / "skeleton"
AS_OF = "2026-03-15T00:00:00Z"
NEW = "2026-03-16T0000"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> tuple[Path, Path]:
    """(landing, warehouse) after a first run: staging built, tested in full, passed."""
    tmp = tmp_path_factory.mktemp("delta")
    landing = tmp / "landing"
    shutil.copytree(FIXTURE, landing)
    (landing / "2026-02-05T0600" / "fx_rates.csv").write_text(
        "currency,rate_date,rate_to_reporting\nEUR,2026-01-01,1.1\n"
    )
    warehouse = tmp / "warehouse.duckdb"
    assert run_pipeline(landing, warehouse, AS_OF) == 0
    return landing, warehouse


def copy_of(verified: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    landing, warehouse = tmp_path / "landing", tmp_path / "w" / "warehouse.duckdb"
    shutil.copytree(verified[0], landing)
    warehouse.parent.mkdir()
    shutil.copy(verified[1], warehouse)
    return landing, warehouse


def test_a_first_run_tests_in_full_and_records_what_it_verified(verified):
    _, warehouse = verified
    results = json.loads((warehouse.parent / "dbt_target" / "run_results.json").read_text())
    compiled = {r["unique_id"]: r.get("compiled_code") or "" for r in results["results"]}
    assert not any("batch_id in (" in code for code in compiled.values())
    ((run_id,),) = query(warehouse, "select run_id from quality.dbt_state")
    assert query(warehouse, "select batch_id, entity from quality.dbt_state_log order by all") == [
        ("2026-02-05T0600", e)
        for e in ("accounts", "activities", "fx_rates", "opportunities", "stage_changes", "users")
    ] + [("2026-03-15T0000", e) for e in ("activities", "opportunities", "stage_changes")]
    assert query(warehouse, "select distinct run_id from quality.dbt_state_log") == [(run_id,)]


def publish(warehouse: Path, batch: str, rows: dict[str, list[dict]]) -> None:
    """Write a batch as the loader publishes one: each row replaces the row with its key
    (``replace``: a newer version), stamped with the batch, and logged."""
    keys = {"opportunities": "opportunity_id", "activities": "activity_id"}
    with duckdb.connect(str(warehouse)) as con:
        for entity, entity_rows in rows.items():
            for row in entity_rows:
                row = {**row, "_batch_id": batch, "_source": "crm"}
                replace = row.pop("replace", False)
                if replace:
                    key = keys[entity]
                    con.execute(f"DELETE FROM raw.{entity} WHERE {key} = ?", [row[key]])
                names, marks = ", ".join(row), ", ".join("?" for _ in row)
                con.execute(
                    f"INSERT INTO raw.{entity} ({names}) VALUES ({marks})", list(row.values())
                )
            con.execute(
                "INSERT INTO quality.ingestion_log (run_id, batch_id, entity, source_file, "
                "status, loaded_rows, ingested_at) "
                "VALUES ('by-hand', ?, ?, ?, 'published', ?, now())",
                [batch, entity, f"{batch}/{entity}.csv", len(entity_rows)],
            )


def staging_verdicts(warehouse: Path, target: Path, *, delta: bool) -> dict[str, tuple[str, str]]:
    """Build the staging layer as the pipeline's dbt step would, in delta mode or in full:
    {test name: (status, compiled SQL)} of the staging tests."""
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    vars_ = {**dbt_vars(load_config(None)), "warehouse_path": str(warehouse)}
    with connect(warehouse) as con:
        write_run_context(con, AS_OF, "check")
        state = staging_state(con, DBT_PROJECT_DIR, vars_)
        assert state.delta
        write_test_scope(con, "check", state if delta else None, manifest)
    dbt = Path(sys.executable).parent / "dbt"
    result = subprocess.run(
        [str(dbt), "build", "--select", "path:models/staging", "--indirect-selection",
         "cautious", "--profiles-dir", ".", "--target-path", str(target),
         "--vars", json.dumps(vars_)],
        cwd=DBT_PROJECT_DIR, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    results = json.loads((target / "run_results.json").read_text())["results"]
    assert not [r for r in results if r["status"] == "error"], result.stdout
    _, tests = staging_nodes(manifest)
    return {
        r["unique_id"].split(".")[2]: (r["status"], r.get("compiled_code") or "")
        for r in results
        if r["unique_id"] in tests
    }


def failing(verdicts: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: status for name, (status, _) in verdicts.items() if status != "pass"}


def test_new_rows_that_break_a_test_fail_it_in_delta_mode_as_in_full(verified, tmp_path):
    _, warehouse = copy_of(verified, tmp_path)
    # A batch name with a quote must reach the SQL quoted.
    publish(warehouse, "b2'q", {
        "activities": [
            # act1 is an activity of the first batch: the new row repeats its id.
            {"activity_id": "act1", "activity_type": "call", "occurred_at": "2026-03-15",
             "owner_id": "u1", "opportunity_id": "O1"},
            # O404 is no opportunity: an orphan (relationships warns).
            {"activity_id": "act9", "activity_type": "call", "occurred_at": "2026-03-15",
             "owner_id": "u1", "opportunity_id": "O404"},
        ],
        # A stage change without its opportunity id.
        "stage_changes": [{"opportunity_id": None, "stage": "prospecting",
                           "changed_at": "2026-03-15"}],
        # Staging upper-cases currencies: ' eur' repeats the verified EUR rate's key.
        "fx_rates": [{"currency": " eur", "rate_date": "2026-01-01", "rate_to_reporting": 1.2}],
    })  # fmt: skip
    delta = staging_verdicts(warehouse, tmp_path / "target", delta=True)
    full = staging_verdicts(warehouse, tmp_path / "target", delta=False)
    expected = {
        "unique_stg_crm__activities_activity_id": "fail",
        "relationships_stg_crm__activities_opportunity_id__opportunity_id__ref_stg_crm__opportunities_": "warn",  # noqa: E501
        "not_null_stg_crm__stage_changes_opportunity_id": "fail",
        "unique_combination_stg_crm__fx_rates_currency__rate_date": "fail",
    }
    assert failing(delta) == expected
    assert failing(full) == expected
    assert {n: s for n, (s, _) in delta.items()} == {n: s for n, (s, _) in full.items()}
    assert len(delta) == 32
    # Delta mode really narrowed: the row-wise tests read the new batch only.
    assert "batch_id in ('b2''q')" in delta["not_null_stg_crm__activities_occurred_at"][1]
    assert "batch_id" not in full["not_null_stg_crm__activities_occurred_at"][1]


def test_a_clean_batch_changing_parents_passes_in_delta_mode_as_in_full(verified, tmp_path):
    _, warehouse = copy_of(verified, tmp_path)
    publish(warehouse, NEW, {
        # O1, parent of verified activities and stage changes, is soft-deleted (a new
        # version replaces the row); O7 is a new opportunity.
        "opportunities": [
            {"opportunity_id": "O1", "created_at": "2026-01-05", "stage": "closed_won",
             "updated_at": "2026-03-15", "is_deleted": True, "replace": True},
            {"opportunity_id": "O7", "created_at": "2026-03-15", "stage": "prospecting",
             "updated_at": "2026-03-15", "is_deleted": False},
        ],
        # act2 gets a new version; act10 hangs on the deleted O1, act11 on the new O7.
        "activities": [
            {"activity_id": "act2", "activity_type": "Demo ", "occurred_at": "2026-01-21",
             "owner_id": "u1", "opportunity_id": "O1", "replace": True},
            {"activity_id": "act10", "activity_type": "call", "occurred_at": "2026-03-15",
             "owner_id": "u1", "opportunity_id": "O1"},
            {"activity_id": "act11", "activity_type": "call", "occurred_at": "2026-03-15",
             "owner_id": "u1", "opportunity_id": "O7"},
        ],
        "stage_changes": [{"opportunity_id": "O7", "stage": "Prospecting",
                           "changed_at": "2026-03-15"}],
        "fx_rates": [{"currency": "EUR", "rate_date": "2026-01-02", "rate_to_reporting": 1.2}],
    })  # fmt: skip
    delta = staging_verdicts(warehouse, tmp_path / "target", delta=True)
    full = staging_verdicts(warehouse, tmp_path / "target", delta=False)
    assert failing(delta) == failing(full) == {}
    assert len(delta) == len(full) == 32
    unique = delta["unique_stg_crm__activities_activity_id"][1]
    assert f"batch_id in ('{NEW}')" in unique and "activity_id in (" in unique


def test_the_pipeline_tests_a_clean_batch_in_delta_mode_and_records_it(verified, tmp_path, capsys):
    landing, warehouse = copy_of(verified, tmp_path)
    ((first_run,),) = query(warehouse, "select run_id from quality.dbt_state")
    (landing / NEW).mkdir()
    (landing / NEW / "activities.csv").write_text(
        "activity_id,activity_type,occurred_at,owner_id,opportunity_id\n"
        "act20,call,2026-03-15T10:00:00Z,u1,O3\nact21,email,2026-03-15T11:00:00Z,u1,O6\n"
    )
    capsys.readouterr()
    assert run_pipeline(landing, warehouse, "2026-03-16T00:00:00Z") == 0
    err = capsys.readouterr().err
    assert (
        f"Not rerun: 26 of the 32 staging tests over the rows run {first_run[:8]} passed: "
        f"they test the 2 rows of the 1 batch published since ({NEW}), unique tests also "
        "every row sharing a key with those."
    ) in err
    # The views are as the first run made them: dbt tests them without re-creating them.
    assert (
        f"Not rerun: 10 staging views: the dbt project and the stage map are as when run "
        f"{first_run[:8]} built them."
    ) in err
    results = json.loads((warehouse.parent / "dbt_target" / "run_results.json").read_text())
    status = {r["unique_id"]: r["status"] for r in results["results"]}
    views, tests = staging_nodes(json.loads((DBT_PROJECT_DIR / "target/manifest.json").read_text()))
    assert not views & status.keys()
    assert {status.get(t) for t in tests} == {"pass"} and len(tests) == 32
    assert status["model.crm_pipeline.fct_opportunities"] == "success"
    ((second_run,),) = query(warehouse, "select run_id from quality.dbt_state")
    assert second_run != first_run
    assert query(
        warehouse, f"select run_id from quality.dbt_state_log where batch_id = '{NEW}'"
    ) == [(second_run,)]
    # The scope lives only while dbt runs: a dbt run by hand tests in full.
    assert query(warehouse, "select count(*) from quality.staging_test_scope") == [(0,)]
    # An orphan activity in the next batch: loaded (the gate only warns), its
    # relationships test warns in delta mode, and the state stays at the clean run.
    (landing / "2026-03-17T0000").mkdir()
    (landing / "2026-03-17T0000" / "activities.csv").write_text(
        "activity_id,activity_type,occurred_at,owner_id,opportunity_id\n"
        "act22,call,2026-03-16T10:00:00Z,u1,O404\n"
    )
    assert run_pipeline(landing, warehouse, "2026-03-17T00:00:00Z") == 0
    err = capsys.readouterr().err
    assert "they test the 1 row of the 1 batch published since (2026-03-17T0000)" in err
    results = json.loads((warehouse.parent / "dbt_target" / "run_results.json").read_text())
    status = {r["unique_id"].split(".")[2]: r["status"] for r in results["results"]}
    assert status[
        "relationships_stg_crm__activities_opportunity_id__opportunity_id__ref_stg_crm__opportunities_"
    ] == "warn"  # fmt: skip
    assert query(warehouse, "select run_id from quality.dbt_state") == [(second_run,)]
