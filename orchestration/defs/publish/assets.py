"""Publishing the marts for readers, after every run that built them.

The warehouse stays the pipeline's own file. Downstream of every mart, one asset copies
the marts into the serving DuckDB file and Parquet files beside it, and, when the config
has `publish: postgres:`, another loads them into PostgreSQL. Both read the warehouse
while the run still holds its writer lock, after dbt finished: read-only, never a second
writer. A run whose marts were not built (the hygiene gate blocked them, a dbt test
failed) skips both, so readers keep the last good numbers.
"""

import os

import dagster as dg

from ingestion.config import PipelineConfig
from ingestion.errors import ConfigError, PublishError
from ingestion.publish import Publication, publish_files
from orchestration.defs.transform.assets import dbt_models
from orchestration.lib.pipeline import PipelineResource, WarehouseWriter

# Every model of dbt_project/models/marts, as the dbt manifest names them: a mart added
# to the project is published without a change here.
MART_KEYS: list[dg.AssetKey] = sorted(
    (key for key in dbt_models.keys if key.path[0] == "marts"), key=lambda k: k.path
)
MARTS: list[str] = [key.path[-1] for key in MART_KEYS]
# The materialization metadata the command line's summary prints, one line per target.
SUMMARY_METADATA = "published"


def _result(publications: list[Publication]) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            SUMMARY_METADATA: dg.MetadataValue.text("\n".join(p.line() for p in publications)),
            "marts": dg.MetadataValue.int(len(MARTS)),
            "rows": dg.MetadataValue.int(publications[0].rows),
        }
    )


def _failure(exc: PublishError | ConfigError) -> dg.Failure:
    retry = isinstance(exc, PublishError) and exc.retry
    return dg.Failure(description=str(exc), allow_retries=retry)


@dg.asset(
    key=["publish", "serving_file"],
    deps=MART_KEYS,
    group_name="publish",
    kinds={"duckdb", "parquet"},
    description="The marts for readers: <warehouse>.serving.duckdb (open it read-only) and "
    "marts/<mart>.parquet beside the warehouse, each swapped in whole.",
)
def serving_file(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    warehouse_writer: WarehouseWriter,  # no writer while the marts are copied
) -> dg.MaterializeResult:
    cfg = pipeline.settings()
    try:
        publications = publish_files(
            cfg.warehouse, MARTS, run_id=context.run.run_id, as_of=pipeline.run_as_of(context)
        )
    except PublishError as exc:
        raise _failure(exc) from None
    return _result(publications)


def postgres_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    settings = cfg.publish.postgres
    assert settings is not None

    @dg.asset(
        key=["publish", "postgres"],
        # After the serving file: PostgreSQL is never ahead of the local copies, and the
        # run summary lists the targets in a fixed order.
        deps=[*MART_KEYS, serving_file.key],
        group_name="publish",
        kinds={"postgres"},
        description=f"The marts in PostgreSQL (schema {settings.schema}; connection string "
        f"from ${settings.env}), replaced in one transaction.",
    )
    def postgres_marts(
        context: dg.AssetExecutionContext,
        pipeline: PipelineResource,
        warehouse_writer: WarehouseWriter,  # no writer while the marts are read
    ) -> dg.MaterializeResult:
        from ingestion.postgres import postgres_url, publish_postgres

        cfg = pipeline.settings()
        try:
            publication = publish_postgres(
                cfg.warehouse,
                MARTS,
                postgres_url(settings, os.environ),
                settings.schema,
                run_id=context.run.run_id,
                as_of=pipeline.run_as_of(context),
                env_name=settings.env,
            )
        except (PublishError, ConfigError) as exc:
            raise _failure(exc) from None
        return _result([publication])

    return postgres_marts


def build_defs(cfg: PipelineConfig) -> dg.Definitions:
    assets: list[dg.AssetsDefinition] = [serving_file]
    if cfg.publish.postgres is not None:
        assets.append(postgres_asset(cfg))
    return dg.Definitions(assets=assets)
