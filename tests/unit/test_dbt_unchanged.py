"""When a run may leave the staging views and their tests out (orchestration.lib.
unchanged): only while the raw data, the stage map, the project's code and the
settings that reach the SQL are those of the build that last passed them; and when it
may test only the batches published since (delta mode): only while the rest is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from ingestion.warehouse import create_raw_tables
from orchestration.defs.transform.project import DBT_PROJECT_DIR
from orchestration.lib.unchanged import (
    TEST_SCOPE_TABLE,
    StagingState,
    clear_test_scope,
    delta_tests,
    record_staging_passed,
    staging_nodes,
    staging_passed,
    staging_state,
    write_test_scope,
)

VARS = {"reporting_currency": "USD", "warehouse_path": "/a/w.duckdb", "memory_limit": "2GB"}


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "dbt_project"
    for rel in ("models/staging", "macros", "tests"):
        shutil.copytree(DBT_PROJECT_DIR / rel, root / rel)
    for rel in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(DBT_PROJECT_DIR / rel, root / rel)
    return root


@pytest.fixture
def con(tmp_path, project):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    create_raw_tables(con)
    for view in (project / "models/staging").rglob("*.sql"):
        con.execute(f"CREATE VIEW staging.{view.stem} AS SELECT 1 AS x")
    yield con
    con.close()


def passed(con, project, vars_=VARS, run_id="run-1"):
    record_staging_passed(con, staging_state(con, project, vars_), run_id)


def test_unchanged_only_after_a_build_passed_staging(con, project):
    assert not staging_state(con, project, VARS).unchanged
    passed(con, project)
    state = staging_state(con, project, VARS)
    assert state.unchanged and state.verified_by == "run-1"


def log(con, run_id, batch_id, entity, loaded_rows=1, status="published", file=None):
    con.execute(
        "INSERT INTO quality.ingestion_log (run_id, batch_id, entity, source_file, status, "
        "loaded_rows, ingested_at) VALUES (?, ?, ?, ?, ?, ?, now())",
        [run_id, batch_id, entity, file or f"{batch_id}/{entity}.csv", status, loaded_rows],
    )


def test_a_published_file_changes_it(con, project):
    passed(con, project)
    log(con, "run-2", "b2", "accounts")
    assert not staging_state(con, project, VARS).unchanged
    passed(con, project, run_id="run-2")
    # A rejected file wrote nothing to raw.
    log(con, "run-3", "b3", "accounts", 0, status="rejected")
    assert staging_state(con, project, VARS).unchanged
    assert staging_state(con, project, VARS).verified_by == "run-2"


def test_only_new_batches_since_the_verified_build_give_the_delta_mode(con, project):
    log(con, "run-1", "b1", "accounts", 5)
    log(con, "run-1", "b1", "activities", 7)
    passed(con, project)
    # Two runs publish three files of two new batches (a rejected file counts for nothing).
    log(con, "run-2", "b2", "accounts", 2)
    log(con, "run-2", "b2", "activities", 3)
    log(con, "run-3", "b3", "activities", 4)
    log(con, "run-3", "b4", "activities", 9, status="rejected")
    state = staging_state(con, project, VARS)
    assert state.delta and not state.unchanged
    assert (state.verified_by, state.new_batches, state.new_rows) == ("run-1", ("b2", "b3"), 9)
    # Once a build passes on them, they are the verified point.
    passed(con, project, run_id="run-3")
    assert staging_state(con, project, VARS) == StagingState(state.fingerprint, "run-3")


def test_a_change_to_a_verified_batch_forces_the_full_tests(con, project):
    log(con, "run-1", "b1", "accounts", 5)
    passed(con, project)
    # A later run publishes a new file into the verified batch b1: its old rows may have
    # been replaced without a new batch_id.
    log(con, "run-2", "b1", "contacts", 2)
    log(con, "run-2", "b2", "accounts", 1)
    assert staging_state(con, project, VARS).verified_by is None
    # An entry the verified build read is gone or different.
    con.execute("DELETE FROM quality.ingestion_log WHERE run_id = 'run-2'")
    assert staging_state(con, project, VARS).unchanged
    con.execute("UPDATE quality.ingestion_log SET loaded_rows = 6 WHERE batch_id = 'b1'")
    assert staging_state(con, project, VARS).verified_by is None


def test_new_batches_with_edited_code_or_a_dropped_view_force_the_full_tests(con, project):
    passed(con, project)
    log(con, "run-2", "b2", "accounts")
    assert staging_state(con, project, VARS).delta
    macro = project / "macros" / "normalize_label.sql"
    macro.write_text(macro.read_text() + "\n")
    assert staging_state(con, project, VARS).verified_by is None
    passed(con, project, run_id="run-2")
    log(con, "run-3", "b3", "accounts")
    con.execute("DROP VIEW staging.stg_crm__users")
    assert staging_state(con, project, VARS).verified_by is None


def test_another_stage_map_changes_it(con, project):
    passed(con, project)
    con.execute("INSERT INTO raw.stage_map VALUES ('Demo', 'meeting', 3, 'open', 0.2)")
    assert not staging_state(con, project, VARS).unchanged


def test_edited_code_changes_it(con, project):
    passed(con, project)
    macro = project / "macros" / "normalize_label.sql"
    macro.write_text(macro.read_text() + "\n")
    assert not staging_state(con, project, VARS).unchanged


def test_settings_that_reach_the_sql_change_it_others_do_not(con, project):
    passed(con, project)
    moved = {**VARS, "warehouse_path": "/b/w.duckdb", "memory_limit": "4GB"}
    assert staging_state(con, project, moved).unchanged
    assert not staging_state(con, project, {**VARS, "reporting_currency": "EUR"}).unchanged


def test_a_dropped_view_changes_it(con, project):
    passed(con, project)
    con.execute("DROP VIEW staging.stg_crm__users")
    assert not staging_state(con, project, VARS).unchanged


MANIFEST = {
    "nodes": {
        "model.p.stg_a": {"resource_type": "model", "original_file_path": "models/staging/a.sql",
                          "depends_on": {"nodes": ["source.p.raw.a"]}},
        "model.p.stg_b": {"resource_type": "model", "original_file_path": "models/staging/b.sql",
                          "depends_on": {"nodes": ["source.p.raw.b"]}},
        "model.p.fct": {"resource_type": "model", "original_file_path": "models/marts/fct.sql",
                        "depends_on": {"nodes": ["model.p.stg_a"]}},
        "test.p.unique_a": {"resource_type": "test", "original_file_path": "models/staging/x.yml",
                            "depends_on": {"nodes": ["model.p.stg_a"]}},
        "test.p.rel_a_b": {"resource_type": "test", "original_file_path": "models/staging/x.yml",
                           "depends_on": {"nodes": ["model.p.stg_a", "model.p.stg_b"]}},
        "test.p.rel_fct_a": {"resource_type": "test", "original_file_path": "models/marts/x.yml",
                             "depends_on": {"nodes": ["model.p.fct", "model.p.stg_a"]}},
    }
}  # fmt: skip


PASSED = {
    "model.p.stg_a": "success",
    "model.p.stg_b": "success",
    "model.p.fct": "success",
    "test.p.unique_a": "pass",
    "test.p.rel_a_b": "pass",
    "test.p.rel_fct_a": "pass",
}


def results(**changed: str | None) -> list[dict[str, str]]:
    """The build's results, with some nodes' status changed (None: not in the build)."""
    status = {
        **PASSED,
        **{f"{k.split('_', 1)[0]}.p.{k.split('_', 1)[1]}": v for k, v in changed.items()},
    }
    return [{"unique_id": k, "status": v} for k, v in status.items() if v is not None]


def test_staging_passed_needs_every_view_and_every_test_of_staging_alone():
    assert staging_passed(MANIFEST, results())
    # The test that also reads a mart is not staging's: it runs on every build anyway.
    assert staging_passed(MANIFEST, results(test_rel_fct_a="fail"))
    assert not staging_passed(MANIFEST, results(test_rel_a_b="fail"))
    assert not staging_passed(MANIFEST, results(test_unique_a=None))  # left out
    assert not staging_passed(MANIFEST, results(model_stg_b="error"))


def test_staging_passed_without_the_views_when_the_build_kept_them():
    # The delta mode leaves the views as the verified build made them: only tests count.
    kept = results(model_stg_a=None, model_stg_b=None)
    assert not staging_passed(MANIFEST, kept)
    assert staging_passed(MANIFEST, kept, views_kept=True)
    assert not staging_passed(MANIFEST, results(model_stg_a=None, test_unique_a="fail"), True)
    assert not staging_passed(MANIFEST, results(model_stg_a=None, test_rel_a_b=None), True)


def project_manifest() -> dict:
    return json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())


def short(uid: str) -> str:
    return uid.split(".")[2]


def test_the_delta_mode_narrows_the_row_wise_and_unique_tests_of_views_with_a_batch():
    manifest = project_manifest()
    with_batch = {f"stg_crm__{v}" for v in (
        "accounts", "activities", "contacts", "fx_rates", "leads", "opportunities",
        "quotas", "stage_changes", "users")}  # fmt: skip
    narrowed = {short(uid): keys for uid, keys in delta_tests(manifest, with_batch).items()}
    # 32 staging tests: the 6 of the stage map (no batch_id) stay whole.
    assert len(narrowed) == 26
    _, tests = staging_nodes(manifest)
    assert {short(uid) for uid in tests} - set(narrowed) == {
        "unique_stg_crm__stage_map_source_label",
        "not_null_stg_crm__stage_map_source_label",
        "not_null_stg_crm__stage_map_stage",
        "not_null_stg_crm__stage_map_stage_order",
        "not_null_stg_crm__stage_map_stage_category",
        "accepted_values_stg_crm__stage_map_stage_category__open__won__lost__post_sale",
    }
    assert narrowed["unique_stg_crm__activities_activity_id"] == ["activity_id"]
    assert narrowed["unique_combination_stg_crm__fx_rates_currency__rate_date"] == [
        "currency", "rate_date"]  # fmt: skip
    assert narrowed["not_null_stg_crm__leads_lead_id"] is None
    # The child side of a relationships test is the view it is declared on.
    assert narrowed[
        "relationships_stg_crm__activities_opportunity_id__opportunity_id__ref_stg_crm__opportunities_"
    ] is None  # fmt: skip
    # A view without batch_id keeps its tests whole.
    assert not any("fx_rates" in n for n in map(short, delta_tests(manifest, with_batch - {
        "stg_crm__fx_rates"})))  # fmt: skip


def test_the_scope_is_written_only_in_delta_mode_and_cleared_after(con, project):
    manifest = project_manifest()
    for view in ("stg_crm__activities", "stg_crm__stage_map"):
        con.execute(f"CREATE OR REPLACE VIEW staging.{view} AS SELECT 1 AS x")
    con.execute("CREATE OR REPLACE VIEW staging.stg_crm__activities AS SELECT 'b' AS batch_id")
    delta = StagingState("f", "run-1", ("b2", "it's"), 3)
    assert write_test_scope(con, "run-2", StagingState("f", None), manifest) == {}
    assert con.execute(f"SELECT count(*) FROM {TEST_SCOPE_TABLE}").fetchone() == (0,)
    narrowed = write_test_scope(con, "run-2", delta, manifest)
    # Only the views with a batch_id column: here, activities' 5 tests.
    assert sorted(map(short, narrowed)) == [
        "not_null_stg_crm__activities_activity_id",
        "not_null_stg_crm__activities_occurred_at",
        "relationships_stg_crm__activities_opportunity_id__opportunity_id__ref_stg_crm__opportunities_",
        "unique_stg_crm__activities_activity_id",
    ]  # fmt: skip
    rows = con.execute(
        f"SELECT run_id, key_columns, batch_ids FROM {TEST_SCOPE_TABLE} "
        "WHERE test_id LIKE 'test.crm_pipeline.unique_stg_crm__activities%'"
    ).fetchall()
    assert rows == [("run-2", '["activity_id"]', '["b2", "it\'s"]')]
    clear_test_scope(con)
    assert con.execute(f"SELECT count(*) FROM {TEST_SCOPE_TABLE}").fetchone() == (0,)
