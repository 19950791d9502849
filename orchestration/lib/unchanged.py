"""Skip the staging layer when nothing it reads or is made of has changed, and test only
what the new batches can have changed when they are all that changed.

The staging views and their data tests read only the raw tables, the stage map and the
project's code: their verdict on a run that published nothing equals the verdict of the
last run that built and tested them. At a million opportunities those tests scan every
raw row (about 12 s of the dbt build's time), so a run with nothing new, which must still
rebuild every mart for its new as_of, skips them once they have passed on the same data
and code. Another stage map, an edited model, macro, test or dbt setting, or a dbt upgrade
forces them again in full; so does a change to a batch they already passed (a verified
entry of ingestion_log gone or different, or a new entry for one of its batches). Tests on
later models that also read a staging view always run.

When the only change is batches published since, the staging tests run in *delta* mode
(``write_test_scope``; macros/tests/get_where_subquery.sql applies it): a row-wise test
(not_null, accepted_values, the child side of relationships) reads only the rows whose
``batch_id`` is a new batch, a unique test every row whose key one of those rows holds.
That verdict equals the full test's given that the verified rows passed, because the
loader never changes a raw row without stamping the batch that changed it (a newer
version or an event with the same key replaces the row by key, a full export's soft
delete sets ``_batch_id`` too) and never removes a key: a parent key a verified child
found is still there, so only new children need looking up.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb

from ingestion.warehouse import QUALITY_SCHEMA, RAW_SCHEMA, STAGING_TEST_SCOPE

STAGING_PATH = "models/staging"
STAGING_SELECTOR = f"path:{STAGING_PATH}"
# dbt's arguments that leave out the staging views and the tests that read only them;
# "cautious" keeps a test that reads a staging view and a later model.
SKIP_STAGING_ARGS = ["--exclude", STAGING_SELECTOR, "--indirect-selection", "cautious"]
# dbt's arguments of the delta mode: the views are left as the verified build made them
# (the same code, and staging_state saw them all there) while their tests run; "empty",
# because an excluded view otherwise takes its tests out with it.
KEEP_STAGING_VIEWS_ARGS = [
    "--exclude", f"{STAGING_SELECTOR},resource_type:model", "--indirect-selection", "empty"
]  # fmt: skip
# What the delta mode tells dbt: per staging test it narrows, the new batches and, for a
# unique test, the key columns. Read by macros/tests/get_where_subquery.sql.
TEST_SCOPE_TABLE = STAGING_TEST_SCOPE
_SCOPE = "staging"
_NOT_DATA_VARS = ("warehouse_path", "memory_limit")
# What the staging layer is made of besides its own folder: shared macros (generic tests
# included), singular tests, and the project and profile settings.
_CODE_PATHS = (STAGING_PATH, "macros", "tests", "dbt_project.yml", "profiles.yml")
# The ingestion_log entries a verified build had read: one per published file.
_LOG_COLUMNS = "run_id, batch_id, entity, source_file, content_sha256, loaded_rows, ingested_at"
_PUBLISHED = f"SELECT {_LOG_COLUMNS} FROM {QUALITY_SCHEMA}.ingestion_log WHERE status = 'published'"
_VERIFIED = f"SELECT {_LOG_COLUMNS} FROM {QUALITY_SCHEMA}.dbt_state_log WHERE scope = '{_SCOPE}'"
# Tests whose verdict over the whole view follows from their verdict over some rows.
_ROW_WISE = ("not_null", "accepted_values", "relationships")
_UNIQUE = ("unique", "unique_combination")


@dataclass(frozen=True)
class StagingState:
    fingerprint: str  # the code's: models, macros, tests, settings, dbt, stage map
    # The run whose build last passed staging on this code, when every batch it read is
    # still as it read it; None: the staging tests run in full.
    verified_by: str | None
    # Batches published since verified_by passed staging (none: nothing changed).
    new_batches: tuple[str, ...] = ()
    new_rows: int = 0  # rows those batches loaded

    @property
    def unchanged(self) -> bool:
        return self.verified_by is not None and not self.new_batches

    @property
    def delta(self) -> bool:
        return self.verified_by is not None and bool(self.new_batches)


def staging_state(
    con: duckdb.DuckDBPyConnection, project_dir: Path, dbt_vars: dict[str, Any]
) -> StagingState:
    fingerprint = _fingerprint(con, project_dir, dbt_vars)
    _create_state_tables(con)
    rows = con.execute(
        f"SELECT fingerprint, run_id FROM {QUALITY_SCHEMA}.dbt_state WHERE scope = ?", [_SCOPE]
    ).fetchall()
    if not rows or rows[0][0] != fingerprint or not _views_exist(con, project_dir):
        return StagingState(fingerprint, None)
    verified_by = rows[0][1]
    (changed,) = con.execute(f"SELECT count(*) FROM ({_VERIFIED} EXCEPT {_PUBLISHED})").fetchone()
    new = con.execute(
        f"SELECT batch_id, sum(loaded_rows) FROM ({_PUBLISHED} EXCEPT {_VERIFIED}) "
        "GROUP BY batch_id ORDER BY batch_id"
    ).fetchall()
    (republished,) = con.execute(
        f"SELECT count(*) FROM ({_PUBLISHED} EXCEPT {_VERIFIED}) "
        f"WHERE batch_id IN (SELECT batch_id FROM ({_VERIFIED}))"
    ).fetchone()
    if changed or republished:
        # A batch the verified build read changed: its rows may have changed without a new
        # batch_id, so no part of the data can be taken as verified.
        return StagingState(fingerprint, None)
    return StagingState(
        fingerprint, verified_by, tuple(b for b, _ in new), sum(int(n or 0) for _, n in new)
    )


def record_staging_passed(con: duckdb.DuckDBPyConnection, state: StagingState, run_id: str) -> None:
    """Record the code and the published batches this run's build passed staging on. The
    run holds the writer lock from the state's check to here: nothing was published since."""
    _create_state_tables(con)
    con.execute(f"DELETE FROM {QUALITY_SCHEMA}.dbt_state WHERE scope = ?", [_SCOPE])
    con.execute(f"DELETE FROM {QUALITY_SCHEMA}.dbt_state_log WHERE scope = ?", [_SCOPE])
    con.execute(
        f"INSERT INTO {QUALITY_SCHEMA}.dbt_state VALUES (?, ?, ?, current_timestamp)",
        [_SCOPE, state.fingerprint, run_id],
    )
    con.execute(
        f"INSERT INTO {QUALITY_SCHEMA}.dbt_state_log ({_LOG_COLUMNS}, scope) "
        f"SELECT *, '{_SCOPE}' FROM ({_PUBLISHED})"
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


def staging_passed(
    manifest: dict[str, Any], results: list[dict[str, Any]], views_kept: bool = False
) -> bool:
    """Whether this build built every staging view (unless it kept them:
    ``KEEP_STAGING_VIEWS_ARGS``) and passed every test of ``staging_nodes`` (a Dagster
    subset or a failure leaves some out)."""
    views, tests = staging_nodes(manifest)
    status = {r["unique_id"]: r.get("status") for r in results}
    built = views_kept or all(status.get(uid) == "success" for uid in views)
    return built and all(status.get(uid) == "pass" for uid in tests)


def delta_tests(
    manifest: dict[str, Any], views_with_batch: set[str]
) -> dict[str, list[str] | None]:
    """The staging tests the delta mode narrows: test id -> the key columns of a unique
    test, None for a row-wise one. A test on a view without ``batch_id`` (the stage map,
    whose changes force the full mode anyway), a singular test and any generic test not
    known to be row-wise or a uniqueness check keep running in full."""
    _, tests = staging_nodes(manifest)
    narrowed: dict[str, list[str] | None] = {}
    for uid in sorted(tests):
        node = manifest["nodes"][uid]
        meta = node.get("test_metadata") or {}
        attached = manifest["nodes"].get(node.get("attached_node") or "")
        if not meta or attached is None or attached["alias"] not in views_with_batch:
            continue
        kwargs = meta.get("kwargs") or {}
        if meta["name"] in _ROW_WISE:
            narrowed[uid] = None
        elif meta["name"] == "unique" and kwargs.get("column_name"):
            narrowed[uid] = [kwargs["column_name"]]
        elif meta["name"] == "unique_combination" and kwargs.get("columns"):
            narrowed[uid] = list(kwargs["columns"])
    return narrowed


def write_test_scope(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    state: StagingState | None,
    manifest: dict[str, Any],
) -> dict[str, list[str] | None]:
    """Tell dbt which staging tests to narrow in this run (none unless ``state.delta``),
    replacing any scope an earlier run left behind; returns what it wrote. The table is
    created with quality.run_context (``write_run_context``)."""
    clear_test_scope(con)
    if state is None or not state.delta:
        return {}
    views_with_batch = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'staging' AND column_name = 'batch_id'"
        ).fetchall()
    }
    narrowed = delta_tests(manifest, views_with_batch)
    con.executemany(
        f"INSERT INTO {TEST_SCOPE_TABLE} VALUES (?, ?, ?, ?)",
        # JSON text: dbt's agate tables read it back as plain strings (fromjson).
        [
            [run_id, uid, json.dumps(keys), json.dumps(list(state.new_batches))]
            for uid, keys in narrowed.items()
        ],
    )
    return narrowed


def clear_test_scope(con: duckdb.DuckDBPyConnection) -> None:
    """Empty the scope: after the build, so that a dbt run by hand tests in full."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {TEST_SCOPE_TABLE} ("
        "run_id VARCHAR, test_id VARCHAR, key_columns VARCHAR, batch_ids VARCHAR)"
    )
    con.execute(f"DELETE FROM {TEST_SCOPE_TABLE}")


def _create_state_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {QUALITY_SCHEMA}.dbt_state ("
        "scope VARCHAR, fingerprint VARCHAR, run_id VARCHAR, recorded_at TIMESTAMP)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {QUALITY_SCHEMA}.dbt_state_log ("
        "scope VARCHAR, run_id VARCHAR, batch_id VARCHAR, entity VARCHAR, source_file VARCHAR, "
        "content_sha256 VARCHAR, loaded_rows BIGINT, ingested_at TIMESTAMP)"
    )


def _fingerprint(
    con: duckdb.DuckDBPyConnection, project_dir: Path, dbt_vars: dict[str, Any]
) -> str:
    digest = hashlib.sha256()
    # What the published data is made of is compared entry by entry (dbt_state_log); a
    # record of the earlier form, which hashed the log in, never matches this one.
    digest.update(b"code v2")
    # The stage map is rewritten from the configuration on every run.
    (stage_map,) = con.execute(
        f"SELECT md5(string_agg(m::VARCHAR, ',' ORDER BY m::VARCHAR)) FROM {RAW_SCHEMA}.stage_map m"
    ).fetchone()
    digest.update(repr(stage_map).encode())
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
