"""The dbt project, its translator to Dagster keys, and the dbt resource."""

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject

from orchestration.lib.contracts import enforced_not_null_tests

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
# The dbt installed beside this interpreter, so an un-activated .venv works too.
_VENV_DBT = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_VENV_DBT) if _VENV_DBT.exists() else "dbt"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# `dagster dev` re-parses after model edits; elsewhere the manifest comes from `make`
# (dbt parse), so importing the definitions never runs dbt.
dbt_project.prepare_if_dev()


class CrmDbtTranslator(DagsterDbtTranslator):
    """Keys are <schema>/<name>, so dbt's sources line up with the raw assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or "main"
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        return dbt_resource_props.get("config", {}).get("schema") or "transform"

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        # A DuckDB run leaves these tests to the marts' NOT NULL constraints: blocking,
        # each would make Dagster warn, twice, that it gated nothing. They gate nothing on
        # Spark either: a failing test there fails the dbt step, which stops what follows.
        if spec is not None and manifest["nodes"][unique_id]["name"] in _enforced(manifest):
            return spec._replace(blocking=False)
        return spec


# The last manifest asked about and its names: the translator is asked once per test.
_ENFORCED: list[tuple[Mapping[str, Any], frozenset[str]]] = []


def _enforced(manifest: Mapping[str, Any]) -> frozenset[str]:
    """The not_null tests the contracts make redundant on DuckDB, once per manifest."""
    if not _ENFORCED or _ENFORCED[0][0] is not manifest:
        _ENFORCED[:] = [(manifest, frozenset(enforced_not_null_tests(manifest)))]
    return _ENFORCED[0][1]


def _newest_source_mtime() -> float:
    paths = [DBT_PROJECT_DIR / "dbt_project.yml"]
    for folder in ("models", "macros", "tests", "seeds"):
        paths += [p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in paths)


def prepare_manifest() -> None:
    """Run `dbt parse` when the manifest is missing or older than the project's files.

    The command line calls this before loading the definitions, so an edited model is
    never run from a stale manifest.
    """
    manifest = dbt_project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime():
        return
    DbtCliResource(
        project_dir=dbt_project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=DBT_EXECUTABLE
    ).cli(["parse"], target_path=manifest.parent).wait()


def dbt_resource() -> DbtCliResource:
    """Where the dbt project and its profile are. A run builds with dbt inside the run's
    process (orchestration/defs/transform/in_process.py), not through the resource's
    ``cli``, which stays for assets of a user's own."""
    return DbtCliResource(
        project_dir=dbt_project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=DBT_EXECUTABLE
    )
