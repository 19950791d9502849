"""Which not_null tests a DuckDB run leaves to the marts' enforced NOT NULL constraints."""

from __future__ import annotations

import json
from typing import Any

from orchestration.defs.transform.project import dbt_project, prepare_manifest
from orchestration.lib.contracts import enforced_not_null_tests


def _model(name: str, enforced: bool, columns: dict[str, list[str]], **extra: Any) -> dict:
    return {
        "resource_type": "model",
        "name": name,
        "config": {"contract": {"enforced": enforced}},
        "columns": {c: {"constraints": [{"type": t} for t in ts]} for c, ts in columns.items()},
        "constraints": extra.get("constraints", []),
    }


def _test(name: str, kind: str, model: str, column: str | None) -> dict:
    return {
        "resource_type": "test",
        "name": name,
        "attached_node": f"model.p.{model}",
        "column_name": column,
        "test_metadata": {"name": kind, "kwargs": {"column_name": column}},
    }


def test_only_not_null_tests_on_enforced_not_null_columns():
    manifest = {
        "nodes": {
            "model.p.mart": _model("mart", True, {"id": ["not_null"], "status": [], "n": []},
                                   constraints=[{"type": "not_null", "columns": ["n"]}]),
            "model.p.loose": _model("loose", False, {"id": ["not_null"]}),
            "test.p.a": _test("not_null_mart_id", "not_null", "mart", "id"),
            "test.p.b": _test("not_null_mart_status", "not_null", "mart", "status"),
            "test.p.c": _test("not_null_mart_n", "not_null", "mart", "n"),
            "test.p.d": _test("unique_mart_id", "unique", "mart", "id"),
            "test.p.e": _test("not_null_loose_id", "not_null", "loose", "id"),
            "test.p.f": {"resource_type": "test", "name": "assert_x", "attached_node": None},
        }
    }  # fmt: skip
    # status has no constraint; unique is not not_null; loose's contract is not enforced.
    assert enforced_not_null_tests(manifest) == ["not_null_mart_id", "not_null_mart_n"]


def test_every_not_null_test_of_a_mart_is_left_to_its_contract():
    prepare_manifest()
    manifest = json.loads(dbt_project.manifest_path.read_text())
    mart_not_null = sorted(
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test"
        and (n.get("test_metadata") or {}).get("name") == "not_null"
        and n["original_file_path"].startswith("models/marts/")
    )
    assert len(mart_not_null) == 24
    assert enforced_not_null_tests(manifest) == mart_not_null


def test_the_left_out_tests_gate_nothing_so_dagster_does_not_wait_for_them():
    from orchestration.defs.transform.assets import dbt_models

    manifest = json.loads(dbt_project.manifest_path.read_text())
    left_out = set(enforced_not_null_tests(manifest))
    specs = {spec.name: spec for spec in dbt_models.check_specs}
    assert left_out <= specs.keys()
    assert not any(specs[name].blocking for name in left_out)
    # The other error-severity tests still gate what follows them.
    assert specs["unique_fct_opportunities_opportunity_id"].blocking
    assert specs["not_null_int_opportunities_closed_status"].blocking
