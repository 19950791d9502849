"""dbt models as Dagster assets; one `dbt build` per run, so dbt's start-up is paid once."""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from ingestion.config import format_as_of
from orchestration.defs.transform.project import CrmDbtTranslator, dbt_project
from orchestration.lib.pipeline import PipelineResource, WarehouseWriter


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
    dbt_vars = {
        "as_of": format_as_of(pipeline.run_as_of(context)),
        "reporting_currency": cfg.reporting_currency,
        "warehouse_path": str(cfg.warehouse),
        "memory_limit": cfg.memory_limit,
    }
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()


defs = dg.Definitions(assets=[dbt_models])
