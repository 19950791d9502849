"""dbt models as Dagster assets; one `dbt build` per run, so dbt's start-up is paid once."""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from ingestion.config import PipelineConfig, format_as_of
from ingestion.warehouse import connect, write_run_context
from orchestration.defs.transform.in_process import InProcessDbtInvocation
from orchestration.defs.transform.project import DBT_PROJECT_DIR, CrmDbtTranslator, dbt_project
from orchestration.lib.contracts import enforced_not_null_tests
from orchestration.lib.pipeline import PipelineResource, WarehouseWriter
from orchestration.lib.progress import NOT_RERUN
from orchestration.lib.unchanged import (
    KEEP_STAGING_VIEWS_ARGS,
    SKIP_STAGING_ARGS,
    TEST_SCOPE_TABLE,
    StagingState,
    clear_test_scope,
    record_staging_passed,
    staging_nodes,
    staging_passed,
    staging_state,
    write_test_scope,
)


def dbt_vars(cfg: PipelineConfig) -> dict[str, Any]:
    """The vars of `dbt build`; the models read them with var(), under these names. They
    stay the same from run to run of one deployment, so dbt parses only what changed: the
    run's as_of goes through the warehouse instead (``write_run_context``)."""
    return {
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
    target_path = cfg.warehouse.parent / "dbt_target"
    # A dbt that dies before it writes its results must not be judged by the last run's.
    (target_path / "run_results.json").unlink(missing_ok=True)
    as_of = format_as_of(pipeline.run_as_of(context))
    # Unit tests check the SQL on fixed inputs: their verdict changes with the code, not
    # the data, so they run in the test suite (tests/e2e/test_dbt_unit_tests.py), as dbt
    # advises, not on every run.
    args = ["build", "--exclude-resource-type", "unit_test"]
    staging: StagingState | None = None  # DuckDB only
    manifest: dict[str, Any] = {}  # DuckDB only: what the selection was made from
    narrowed: dict[str, Any] = {}  # DuckDB only: the staging tests in delta mode
    if cfg.engine == "spark":
        from ingestion.spark.session import get_session

        # dbt-spark's session method, in this process: it builds on the loader's session
        # (started here when this step runs in a process of its own).
        get_session(cfg)
        # On Spark the as_of goes as a var (quality.run_context is DuckDB's).
        args += ["--target", "spark", "--vars", json.dumps({**dbt_vars(cfg), "as_of": as_of})]
    else:
        manifest = json.loads(dbt_project.manifest_path.read_text())
        with connect(cfg.warehouse) as con:
            write_run_context(con, as_of, context.run.run_id)
            staging = staging_state(con, DBT_PROJECT_DIR, dbt_vars(cfg))
            # A Dagster subset tests in full: it may leave out views or tests the state
            # would need, and it records nothing anyway.
            narrowed = write_test_scope(
                con, context.run.run_id, None if context.is_subset else staging, manifest
            )
        args += ["--vars", json.dumps(dbt_vars(cfg))]
        views, tests = staging_nodes(manifest)
        if staging.unchanged:
            args += SKIP_STAGING_ARGS
            context.log.info(
                f"{NOT_RERUN} {len(views)} staging views and their {len(tests)} tests: "
                "no batch published, and the stage map and the dbt project are unchanged "
                f"since run {staging.verified_by[:8]} passed them."
            )
        elif narrowed:
            args += KEEP_STAGING_VIEWS_ARGS
            context.log.info(
                f"{NOT_RERUN} {len(views)} staging views: the dbt project and the stage map "
                f"are as when run {staging.verified_by[:8]} built them."
            )
            rows, batches = staging.new_rows, len(staging.new_batches)
            context.log.info(
                f"{NOT_RERUN} {len(narrowed)} of the {len(tests)} staging tests over the rows "
                f"run {staging.verified_by[:8]} passed: they test the {rows:,} "
                f"row{'' if rows == 1 else 's'} of the {batches} "
                f"batch{'' if batches == 1 else 'es'} published since "
                f"({_batch_list(staging.new_batches)}), unique tests also every row sharing "
                "a key with those."
            )
        # DuckDB enforces the marts' NOT NULL constraints as it writes them: a not_null
        # test on such a column cannot fail there (orchestration/lib/contracts.py).
        redundant = enforced_not_null_tests(manifest)
        if redundant:
            # One value, names space-separated, as dbt's CLI reads one value per --exclude.
            args += ["--exclude", " ".join(redundant)]
            context.log.info(
                f"{NOT_RERUN} {len(redundant)} not_null tests: DuckDB enforces the NOT NULL "
                "constraints of those mart columns when it writes them."
            )
    invocation = InProcessDbtInvocation(
        dbt,
        args,
        context=context,
        translator=CrmDbtTranslator(),
        target_path=target_path,
        engine=cfg.engine,
    )
    try:
        yield from invocation.stream()
    finally:
        # An exception while streaming (Dagster refusing an event, an interrupt) must not
        # leave dbt building with the warehouse open: it would hold it against a retry.
        invocation.stop()
        if cfg.engine == "duckdb":
            try:
                with connect(cfg.warehouse) as con:
                    clear_test_scope(con)
            except Exception as exc:  # must not hide why the step failed
                # Left behind, the scope only matches this run's context: the next run
                # replaces it, and a dbt run by hand before then would narrow its tests.
                context.log.warning(f"Could not clear {TEST_SCOPE_TABLE}: {exc}")
    if cfg.engine == "spark":
        from ingestion.spark.mirror import mirror_marts

        # The marts dbt built (all, or those before a failed test) reach the DuckDB file,
        # which the summary, the report and the publish steps read, as on engine: duckdb.
        mirror_marts(cfg)
    results_path = target_path / "run_results.json"
    if invocation.is_successful():
        if staging is not None and not staging.unchanged:
            results = json.loads(results_path.read_text()).get("results", [])
            if staging_passed(manifest, results, views_kept=bool(narrowed)):
                with connect(cfg.warehouse) as con:
                    record_staging_passed(con, staging, context.run.run_id)
        return
    if not results_path.exists():
        # dbt stopped before running anything (e.g. the file is locked): worth a retry.
        raise invocation.get_error() or dg.Failure("dbt build failed; see the run's dbt log.")
    results = json.loads(results_path.read_text()).get("results", [])
    failed_tests = [r["unique_id"] for r in results if r.get("status") == "fail"]
    errors = [r for r in results if r.get("status") == "error"]
    if failed_tests and not errors:
        # Data that fails dbt's tests fails them again on a retry.
        raise dg.Failure(
            description=f"dbt tests failed: {', '.join(failed_tests)}. The models they "
            f"test were built; the models downstream of them were skipped.",
            allow_retries=False,
        )
    if errors and not any(is_transient_dbt_error(r.get("message")) for r in errors):
        # A compilation, contract or SQL error comes back the same on every retry.
        raise dg.Failure(
            description="dbt build failed: "
            + "; ".join(f"{r['unique_id']}: {first_line(r.get('message'))}" for r in errors[:3])
            + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
            + ". See the run's dbt log.",
            allow_retries=False,
        )
    raise invocation.get_error() or dg.Failure("dbt build failed; see the run's dbt log.")


def _batch_list(batches: tuple[str, ...], shown: int = 3) -> str:
    more = len(batches) - shown
    return ", ".join(batches[:shown]) + (f" and {more} more" if more > 0 else "")


def is_transient_dbt_error(message: str | None) -> bool:
    """An error another try may not meet: DuckDB's I/O errors (the file locked by another
    process, a full disk). Anything else in a model or test fails the same way again."""
    return "IO Error" in (message or "")


def first_line(message: str | None) -> str:
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[0] if lines else "no message"


defs = dg.Definitions(assets=[dbt_models])
