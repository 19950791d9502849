"""dbt models as Dagster assets; one `dbt build` per run, so dbt's start-up is paid once."""

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from ingestion.config import PipelineConfig, format_as_of
from orchestration.defs.transform.project import CrmDbtTranslator, dbt_project
from orchestration.lib.pipeline import PipelineResource, WarehouseWriter


def dbt_vars(cfg: PipelineConfig, as_of: datetime) -> dict[str, Any]:
    """The vars of `dbt build`; the models read them with var(), under these names."""
    return {
        "as_of": format_as_of(as_of),
        "reporting_currency": cfg.reporting_currency,
        "warehouse_path": str(cfg.warehouse),
        "memory_limit": cfg.memory_limit,
        "forecast_lookback_days": cfg.forecast.lookback_days,
        "forecast_min_closed_deals": cfg.forecast.min_closed_deals,
        "forecast_follow_up_days": cfg.forecast.follow_up_days,
    }


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=CrmDbtTranslator(),
    name="dbt_models",
)
def dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    pipeline: PipelineResource,
    warehouse_writer: WarehouseWriter,  # held for the whole run: no writer in between
) -> Iterator[Any]:
    cfg = pipeline.settings()
    # dbt's artifacts go beside the warehouse, one folder overwritten by each run: runs on
    # one warehouse never overlap, and nothing piles up in the repository.
    invocation = dbt.cli(
        ["build", "--vars", json.dumps(dbt_vars(cfg, pipeline.run_as_of(context)))],
        context=context,
        target_path=cfg.warehouse.parent / "dbt_target",
        raise_on_error=False,
    )
    yield from invocation.stream()
    if invocation.is_successful():
        return
    results = invocation.get_artifact("run_results.json").get("results", [])
    failed_tests = [r["unique_id"] for r in results if r.get("status") == "fail"]
    errors = [r for r in results if r.get("status") == "error"]
    if failed_tests and not errors:
        # Data that fails dbt's tests fails them again on a retry.
        raise dg.Failure(
            description=f"dbt tests failed: {', '.join(failed_tests)}. The models they "
            f"test were built; the models downstream of them were skipped.",
            allow_retries=False,
        )
    raise invocation.get_error() or dg.Failure("dbt build failed; see the run's dbt log.")


defs = dg.Definitions(assets=[dbt_models])
