"""Skip the staging layer when nothing it reads or is made of has changed.

The staging views and their data tests read only the raw tables, the stage map and the
project's code: their verdict on a run that published nothing equals the verdict of the
last run that built and tested them. At a million opportunities those tests scan every
raw row (about 12 s of the dbt build's time), so a run with nothing new, which must still
rebuild every mart for its new as_of, skips them once they have passed on the same data
and code. Anything that could change their verdict forces them again: a published batch
(ingestion_log), another stage map, an edited model, macro, test or dbt setting, or a
dbt upgrade. Tests on later models that also read a staging view still run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb

from ingestion.warehouse import QUALITY_SCHEMA, RAW_SCHEMA

STAGING_PATH = "models/staging"
STAGING_SELECTOR = f"path:{STAGING_PATH}"
# dbt's arguments that leave out the staging views and the tests that read only them;
# "cautious" keeps a test that reads a staging view and a later model.
SKIP_STAGING_ARGS = ["--exclude", STAGING_SELECTOR, "--indirect-selection", "cautious"]
_SCOPE = "staging"
_NOT_DATA_VARS = ("warehouse_path", "memory_limit")
# What the staging layer is made of besides its own folder: shared macros (generic tests
# included), singular tests, and the project and profile settings.
_CODE_PATHS = (STAGING_PATH, "macros", "tests", "dbt_project.yml", "profiles.yml")


@dataclass(frozen=True)
class StagingState:
    fingerprint: str
    verified_by: str | None  # the run whose build last passed staging on this fingerprint

    @property
    def unchanged(self) -> bool:
        return self.verified_by is not None


def staging_state(
    con: duckdb.DuckDBPyConnection, project_dir: Path, dbt_vars: dict[str, Any]
) -> StagingState:
    fingerprint = _fingerprint(con, project_dir, dbt_vars)
    _create_state_table(con)
    rows = con.execute(
        f"SELECT fingerprint, run_id FROM {QUALITY_SCHEMA}.dbt_state WHERE scope = ?", [_SCOPE]
    ).fetchall()
    verified = rows and rows[0][0] == fingerprint and _views_exist(con, project_dir)
    return StagingState(fingerprint, rows[0][1] if verified else None)


def record_staging_passed(con: duckdb.DuckDBPyConnection, state: StagingState, run_id: str) -> None:
    _create_state_table(con)
    con.execute(f"DELETE FROM {QUALITY_SCHEMA}.dbt_state WHERE scope = ?", [_SCOPE])
    con.execute(
        f"INSERT INTO {QUALITY_SCHEMA}.dbt_state VALUES (?, ?, ?, current_timestamp)",
        [_SCOPE, state.fingerprint, run_id],
    )


def staging_nodes(manifest: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The staging views, and the tests that read only staging views or sources."""
    views = {
        uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
        and node["original_file_path"].startswith(f"{STAGING_PATH}/")
    }
    tests = {
        uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "test"
        and all(p in views or p.startswith("source.") for p in node["depends_on"]["nodes"])
    }
    return views, tests


def staging_passed(manifest: dict[str, Any], results: list[dict[str, Any]]) -> bool:
    """Whether this build built every staging view and passed every test of
    ``staging_nodes`` (a Dagster subset or a failure leaves some out)."""
    views, tests = staging_nodes(manifest)
    status = {r["unique_id"]: r.get("status") for r in results}
    return all(status.get(uid) == "success" for uid in views) and all(
        status.get(uid) == "pass" for uid in tests
    )


def _create_state_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {QUALITY_SCHEMA}.dbt_state ("
        "scope VARCHAR, fingerprint VARCHAR, run_id VARCHAR, recorded_at TIMESTAMP)"
    )


def _fingerprint(
    con: duckdb.DuckDBPyConnection, project_dir: Path, dbt_vars: dict[str, Any]
) -> str:
    digest = hashlib.sha256()
    # Every write to raw goes through the loader, which logs each published file in the
    # same transaction; the stage map is rewritten from the configuration on every run.
    for query in (
        f"SELECT count(*), max(ingested_at)::VARCHAR, sum(loaded_rows), "
        f"md5(string_agg(run_id || batch_id || entity, ',' ORDER BY run_id, batch_id, entity)) "
        f"FROM {QUALITY_SCHEMA}.ingestion_log WHERE status = 'published'",
        f"SELECT md5(string_agg(m::VARCHAR, ',' ORDER BY m::VARCHAR)) "
        f"FROM {RAW_SCHEMA}.stage_map m",
    ):
        digest.update(repr(con.execute(query).fetchall()).encode())
    for rel in _CODE_PATHS:
        path = project_dir / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(project_dir)).encode())
            digest.update(file.read_bytes())
    # Where the file is and how much memory dbt may use cannot change a verdict.
    settings = {k: v for k, v in dbt_vars.items() if k not in _NOT_DATA_VARS}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(f"{version('dbt-core')} {version('dbt-duckdb')}".encode())
    return digest.hexdigest()


def _views_exist(con: duckdb.DuckDBPyConnection, project_dir: Path) -> bool:
    """The views are still there (nobody dropped the schema since they were built)."""
    expected = {p.stem for p in (project_dir / STAGING_PATH).rglob("*.sql")}
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'staging' AND table_type = 'VIEW'"
    ).fetchall()
    return expected <= {r[0] for r in rows}
