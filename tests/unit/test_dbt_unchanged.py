"""When a run may leave the staging views and their tests out (orchestration.lib.
unchanged): only while the raw data, the stage map, the project's code and the
settings that reach the SQL are those of the build that last passed them."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from ingestion.warehouse import create_raw_tables
from orchestration.defs.transform.project import DBT_PROJECT_DIR
from orchestration.lib.unchanged import (
    record_staging_passed,
    staging_passed,
    staging_state,
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


def test_a_published_file_changes_it(con, project):
    passed(con, project)
    con.execute(
        "INSERT INTO quality.ingestion_log (run_id, batch_id, entity, status, loaded_rows, "
        "ingested_at) VALUES ('run-2', 'b2', 'accounts', 'published', 1, now())"
    )
    assert not staging_state(con, project, VARS).unchanged
    passed(con, project, run_id="run-2")
    # A rejected file wrote nothing to raw.
    con.execute(
        "INSERT INTO quality.ingestion_log (run_id, batch_id, entity, status, loaded_rows, "
        "ingested_at) VALUES ('run-3', 'b3', 'accounts', 'rejected', 0, now())"
    )
    assert staging_state(con, project, VARS).verified_by == "run-2"


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
