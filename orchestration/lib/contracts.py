"""The not_null data tests that DuckDB's enforced contracts make redundant.

A mart has an enforced contract, and a mart column with a ``not_null`` constraint is
created ``NOT NULL``: on DuckDB the insert that builds the table fails on the first null
(a Constraint Error that fails the model, so the mart keeps its previous version and
everything downstream is skipped). A ``not_null`` data test on such a column can only
pass there, yet each costs a dbt node (about 45 ms of dbt's bookkeeping and a scan of the
column) on the build's critical path. The DuckDB runs leave them out; Spark's Parquet
tables hold no constraints (dbt-spark skips them), so there the tests run. A ``not_null``
test on a column without the constraint, or on a model without an enforced contract,
always runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def enforced_not_null_tests(manifest: Mapping[str, Any]) -> list[str]:
    """Names of the not_null tests whose column an enforced contract declares NOT NULL."""
    nodes = manifest["nodes"]
    names = []
    for test in nodes.values():
        meta = test.get("test_metadata") or {}
        if test["resource_type"] != "test" or meta.get("name") != "not_null":
            continue
        model = nodes.get(test.get("attached_node") or "")
        column = meta.get("kwargs", {}).get("column_name") or test.get("column_name")
        if model is None or not column or not _enforced(model):
            continue
        declared = (model.get("columns") or {}).get(column) or {}
        column_level = any(c.get("type") == "not_null" for c in declared.get("constraints", []))
        model_level = any(
            c.get("type") == "not_null" and column in (c.get("columns") or [])
            for c in model.get("constraints", [])
        )
        # A test with a where clause checks a subset: the constraint covers it as well.
        if column_level or model_level:
            names.append(test["name"])
    return sorted(names)


def _enforced(model: Mapping[str, Any]) -> bool:
    return bool(((model.get("config") or {}).get("contract") or {}).get("enforced"))
