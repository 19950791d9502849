"""Everything the code location defines, merged from the per-concern folders.

Building reads the small config file and nothing else: the dbt manifest is prepared ahead
of time (`make`), the warehouse is opened only inside runs. The command line builds its
own Definitions from its options; ``orchestration.definitions`` builds the code location's
from the environment.

May import: its concern folders, ``orchestration.lib``, ``ingestion``, dagster.
"""

import dagster as dg

from ingestion.config import PipelineConfig
from orchestration.defs.alerts import sensors as alerts
from orchestration.defs.automation import jobs as automation
from orchestration.defs.ingest import assets as ingest
from orchestration.defs.publish import assets as publish
from orchestration.defs.quality import checks as quality
from orchestration.defs.report import assets as report
from orchestration.defs.transform import assets as transform
from orchestration.defs.transform.project import dbt_resource
from orchestration.lib.pipeline import PipelineResource, WarehouseWriter


def build_definitions(
    pipeline: PipelineResource, loggers: dict[str, dg.LoggerDefinition] | None = None
) -> dg.Definitions:
    cfg = pipeline.settings()
    # The report and the published copies read the marts from the DuckDB warehouse; on
    # Spark they read the copy made there after dbt (ingestion.spark.mirror), which needs
    # Spark's warehouse on this machine (docs/spark.md).
    marts_in_duckdb = cfg.engine == "duckdb" or _spark_tables_local(cfg)
    return dg.Definitions.merge(
        ingest.defs,
        quality.defs,
        transform.defs,
        report.defs if marts_in_duckdb else dg.Definitions(),
        automation.build_defs(cfg),
        alerts.build_defs(cfg),
        publish.build_defs(cfg) if marts_in_duckdb else dg.Definitions(),
        dg.Definitions(
            resources={
                "pipeline": pipeline,
                "warehouse_writer": WarehouseWriter(pipeline=pipeline),
                "dbt": dbt_resource(),
            },
            loggers=loggers or {},
        ),
    )


def _spark_tables_local(cfg: PipelineConfig) -> bool:
    if cfg.engine != "spark":
        return False
    from ingestion.spark.mirror import local_warehouse_dir

    return local_warehouse_dir(cfg) is not None
