"""The HTML pipeline report as an asset downstream of every mart.

It runs only when the dbt step succeeded: when the hygiene gate blocks the marts, or a dbt
test fails, the dbt step does not materialize and this one is skipped, so the report never
shows numbers that were not published. It writes ``reports/pipeline-<as_of>.html`` beside
the warehouse and replaces ``reports/latest.html`` atomically.
"""

from typing import Any

import dagster as dg

from orchestration.defs.transform.assets import dbt_models
from orchestration.lib.pipeline import PipelineResource, WarehouseWriter

REPORT_KEY = dg.AssetKey(["report", "pipeline"])
# Every mart the dbt project defines, read from its manifest: a mart added later is a
# dependency without a change here.
MART_KEYS = sorted((key for key in dbt_models.keys if key.path[0] == "marts"), key=str)


@dg.asset(
    key=REPORT_KEY,
    deps=MART_KEYS,
    group_name="report",
    kinds={"html"},
    description="The pipeline report: one self-contained HTML page with the KPIs and their "
    "trends, funnel, pipeline, forecast, reps, leads and data quality, beside the warehouse "
    "(reports/latest.html).",
)
def pipeline_report(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    warehouse_writer: WarehouseWriter,  # held for the whole run: no writer in between
) -> dg.MaterializeResult:
    from orchestration.lib.report import write_run_reports

    cfg = pipeline.settings()
    dated, latest = write_run_reports(
        cfg.warehouse, context.run.run_id, pipeline.run_as_of(context)
    )
    context.log.info(f"pipeline report written: {latest}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(dated)),
            "latest": dg.MetadataValue.path(str(latest)),
            "size_bytes": dated.stat().st_size,
        }
    )


def written_report(result: Any) -> str | None:
    """The report a finished in-process run wrote (`crm-pipeline run` prints it)."""
    for materialization in result.asset_materializations_for_node(pipeline_report.op.name):
        if materialization.asset_key == REPORT_KEY:
            return str(materialization.metadata["latest"].value)
    return None


defs = dg.Definitions(assets=[pipeline_report])
