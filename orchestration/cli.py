"""`crm-pipeline`: generate demo data, run the whole asset graph in-process, or write the
HTML pipeline report from a warehouse.

Exit codes: 0 success; 1 data quality blocked the marts (each failing check is named);
2 usage or configuration error; 3 the run failed for another reason (message printed).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from ingestion.config import PipelineConfig, format_as_of, load_config, parse_as_of
from ingestion.errors import ConfigError, DataQualityError, PipelineError

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm-pipeline",
        description="Trustworthy sales-funnel numbers from CRM exports "
        "(Dagster + Great Expectations + dbt on DuckDB).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic CRM export batches")
    gen.add_argument("--out", type=Path, required=True, help="landing directory to create")
    gen.add_argument("--opportunities", type=int, default=5000, help="100 to 1,000,000")
    gen.add_argument("--batches", type=int, default=4, help="daily export batches")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument(
        "--end", type=date.fromisoformat, default=None, help="date of the last export (UTC)"
    )
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv")
    gen.add_argument(
        "--clean",
        action="store_true",
        help="write no defective rows (by default about one lead or activity row in 2,000 "
        "is defective, for the hygiene gate to quarantine)",
    )

    run = sub.add_parser("run", help="ingest, check and build every mart")
    run.add_argument("--config", type=Path, help="YAML configuration file")
    run.add_argument(
        "--source",
        help="synthetic (default), crm (canonical landing), salesforce, hubspot, pipedrive, "
        "or mapping:FILE (any CSVs, described by your mapping file)",
    )
    run.add_argument("--landing", type=Path, help="landing directory (default data/landing)")
    run.add_argument("--warehouse", type=Path, help="DuckDB file (default data/warehouse.duckdb)")
    run.add_argument("--as-of", help="compute the marts as of this UTC timestamp (default now)")

    rep = sub.add_parser("report", help="write the HTML pipeline report from the warehouse")
    rep.add_argument("--config", type=Path, help="YAML configuration file")
    rep.add_argument("--warehouse", type=Path, help="DuckDB file (default data/warehouse.duckdb)")
    rep.add_argument(
        "--out", type=Path, help="HTML file to write (default reports/latest.html beside it)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    finally:
        if argv is None:
            # The program itself (not a caller passing its own argv): the process ends
            # now, and the interpreter's last collection would only walk every object of
            # the run again (a second or more after a 1M run).
            gc.freeze()


def _main(args: argparse.Namespace) -> int:
    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "report":
            return _report(args)
        return _run(args, sys.stdout, sys.stderr)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DataQualityError as exc:
        print(f"blocked: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        # A LandingError is the user's to fix, like a ConfigError; anything else is not.
        return EXIT_USAGE if type(exc).__name__ == "LandingError" else EXIT_FAILED


def _generate(args: argparse.Namespace) -> int:
    from ingestion.synthetic import generate

    summary = generate(
        args.out,
        opportunities=args.opportunities,
        batches=args.batches,
        seed=args.seed,
        end=args.end,
        fmt=args.format,
        clean=args.clean,
    )
    print(summary)
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    """Write the report of the latest run from the warehouse, opened read-only."""
    from orchestration.lib.report import report_dir, write_report

    warehouse = load_config(args.config).with_overrides(warehouse=args.warehouse).warehouse
    out = args.out or report_dir(warehouse) / "latest.html"
    print(f"Report: {write_report(warehouse, out)}")
    return EXIT_OK


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ingestion.landing.layout import discover, has_batches
    from ingestion.warehouse import connect

    cfg = load_config(args.config).with_overrides(
        source=args.source, landing_dir=args.landing, warehouse=args.warehouse
    )
    as_of = (
        parse_as_of(args.as_of)
        if args.as_of
        else datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    )
    for spec in cfg.sources:  # fail fast on a wrong path or layout
        if spec.kind == "crm" and not discover(spec.landing_dir):
            raise ConfigError(f"Landing directory {spec.landing_dir} holds no batches.")
        if spec.is_adapter and not has_batches(spec.landing_dir):
            raise ConfigError(
                f"Landing directory {spec.landing_dir} holds no batch folders; put each "
                f"{spec.kind} export in a folder of its own: "
                f"{spec.landing_dir}/<batch_id>/<export files>.csv."
            )
    from orchestration.lib.alert_sinks import sinks_from_env

    sinks_from_env(os.environ)  # a half-configured alert sink is refused before the run
    if cfg.publish.postgres is not None:
        from ingestion.postgres import postgres_url

        postgres_url(cfg.publish.postgres, os.environ)  # so is a missing connection string
    if cfg.engine == "spark":
        from ingestion.warehouse import check_writable

        check_writable(cfg.warehouse)  # fail fast when another run holds the deployment
    else:
        connect(cfg.warehouse).close()  # fail fast when another process holds the warehouse
    log_path = _run_log_path(cfg.warehouse)
    origin = (
        f"{cfg.source} source"
        if not cfg.source_list
        else "sources " + ", ".join(f"{s.name} ({s.kind})" for s in cfg.sources)
    )
    print(f"Running the pipeline as of {format_as_of(as_of)} UTC ({origin})", file=err)
    print(f"Full log (dbt output included): {log_path}", file=err)
    if cfg.engine == "duckdb":
        from ingestion.hygiene.pool import start_spare_worker

        # GX's import, in a process of its own, while this one imports Dagster and starts
        # the run: a small load is then validated without waiting for it.
        start_spare_worker()
    # dagster-dbt echoes every dbt log line to stdout; the terminal gets the progress
    # lines and the summary, the log file gets everything.
    with log_path.open("w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        result, progress = _execute(args, cfg, as_of, err)
    if result.success:
        from orchestration.lib.summary import (
            kpi_summary,
            publish_summary,
            quality_summary,
            source_summary,
        )

        print(f"{progress.passed_checks} checks passed.", file=err)
        for line in _warnings(result):
            print(line, file=err)
        if cfg.engine == "spark" and not _spark_tables_local(cfg):
            # A cluster's warehouse: nothing was copied to the DuckDB file to summarise.
            _print_alerts(cfg, result.run_id, err)
            print(_spark_marts_line(cfg), file=out)
            return EXIT_OK
        # What became of the CRM export rows, before the loader's own accounting below.
        for line in source_summary(cfg.warehouse.resolve(), result.run_id):
            print(line, file=err)
        notes = quality_summary(cfg.warehouse.resolve(), result.run_id)
        if notes:
            print(notes, file=err)
        _print_alerts(cfg, result.run_id, err)
        print(kpi_summary(cfg.warehouse.resolve()), file=out)
        if cfg.engine == "spark":
            print(_spark_marts_line(cfg), file=out)
        for line in publish_summary(result.all_events):
            print(line, file=out)
        from orchestration.defs.report.assets import written_report

        report = written_report(result)
        if report:
            print(f"Report: {report}  (open it in a browser)", file=out)
        return EXIT_OK
    code = _report_failure(result, err)
    from orchestration.lib.summary import source_summary

    # A blocked run still read the exports: what became of their rows helps find why.
    with contextlib.suppress(PipelineError):  # the warehouse may not be readable
        for line in (
            source_summary(cfg.warehouse.resolve(), result.run_id) if cfg.warehouse.exists() else []
        ):
            print(line, file=err)
    from orchestration.lib.alerts import send_alert
    from orchestration.lib.run_failures import run_failure_alert

    alert = run_failure_alert(result.run_id, result.job_def.name, result.all_events)
    if alert is not None:
        send_alert(cfg, alert)
    _print_alerts(cfg, result.run_id, err)
    print(f"See the full log: {log_path}", file=err)
    return code


def _spark_tables_local(cfg: PipelineConfig) -> bool:
    from ingestion.spark.mirror import local_warehouse_dir

    return local_warehouse_dir(cfg) is not None


def _spark_marts_line(cfg: PipelineConfig) -> str:
    return (
        f"Spark tables: marts.* under {cfg.spark_warehouse_dir} (query them with Spark SQL; "
        f"docs/spark.md)"
    )


def _print_alerts(cfg: PipelineConfig, run_id: str, err: TextIO) -> None:
    """Say which alerts this run raised and where they went."""
    import json

    if not cfg.alert_log.exists():
        return
    records = []
    with cfg.alert_log.open(encoding="utf-8") as fh:
        for line in fh:
            with contextlib.suppress(ValueError):  # a line cut short by a crash
                record = json.loads(line)
                if record.get("run_id") == run_id:
                    records.append(record)
    for record in records:
        went = [
            f"{d['sink']} {d['status']}" + (f" ({d['error']})" if d.get("error") else "")
            for d in record["deliveries"]
        ]
        print(
            f"alert: {record['title']} → alert log" + "".join(f", {w}" for w in went),
            file=err,
        )
    if records:
        print(f"Alert log: {cfg.alert_log}", file=err)


def _execute(
    args: argparse.Namespace, cfg: PipelineConfig, as_of: datetime, err: TextIO
) -> tuple[Any, Any]:
    """Materialize the job in this process, with compact progress lines on ``err``."""
    # Dagster, dagster-dbt and dbt-core leave ~400,000 long-lived objects (modules, the
    # manifest's nodes, the job). While they are created, the collector's passes only walk
    # them again and again (0.6 s of every run's start, measured), so it is off until they
    # exist; then they are frozen, so that each full collection during the run looks only
    # at what the run allocates. Thawed after: a caller running several pipelines in one
    # process collects them as usual.
    collecting = gc.isenabled()
    gc.disable()
    try:
        from orchestration.defs.transform.project import prepare_manifest

        prepare_manifest()
        import dagster as dg

        from orchestration.defs import build_definitions
        from orchestration.lib.pipeline import AS_OF_TAG, PipelineResource
        from orchestration.lib.progress import progress_logger

        logger, progress = progress_logger(err)
        resource = PipelineResource(
            config_path=str(args.config) if args.config else None,
            source=cfg.source,
            landing_dir=str(cfg.landing_dir),
            warehouse=str(cfg.warehouse),
        )
        definitions = build_definitions(resource, loggers={"progress": logger})
        job = definitions.resolve_job_def("crm_pipeline")
        instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
        gc.freeze()
    finally:
        if collecting:
            gc.enable()
    try:
        result = job.execute_in_process(
            instance=instance,
            tags={AS_OF_TAG: format_as_of(as_of)},
            run_config={"loggers": {"progress": {}}},
            raise_on_error=False,
        )
    finally:
        gc.unfreeze()
    return result, progress


def _run_log_path(warehouse: Path) -> Path:
    logs = warehouse.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"


def _warnings(result: Any) -> list[str]:
    """WARN checks that failed: published, but the user should know."""
    from orchestration.lib.run_failures import failed_checks

    lines = []
    for check in failed_checks(result.all_events):
        if check.severity == "WARN":
            lines.append(f"warning: check {check.name}:")
            lines += [f"  {line}" for line in check.description.splitlines()]
    return lines


def _report_failure(result: Any, err: TextIO) -> int:
    """Name every failing check; otherwise the user's error behind Dagster's wrapper."""
    from orchestration.lib.run_failures import (
        QUALITY_ERRORS,
        USAGE_ERRORS,
        failed_checks,
        step_errors,
    )

    blocking = [c for c in failed_checks(result.all_events) if c.severity == "ERROR"]
    errors = step_errors(result.all_events)
    for check in blocking:
        print(f"blocked: check {check.name} failed:", file=err)
        for line in check.description.splitlines():
            print(f"  {line}", file=err)
    for e in errors:
        prefix = "blocked" if e.cls_name in QUALITY_ERRORS else "error"
        print(f"{prefix}: step {e.step}: {e.message}", file=err)
    if any(c.name.startswith("raw/") for c in blocking):
        print(
            "The marts were not rebuilt; the previously published marts are unchanged.",
            file=err,
        )
    elif blocking:
        # dbt tests a model after building it: only what depends on it was held back.
        print(
            "The models these dbt tests check were rebuilt; everything downstream of them "
            "was skipped and keeps its previous version.",
            file=err,
        )
    if blocking:
        return EXIT_BLOCKED
    classes = {e.cls_name for e in errors}
    if classes & QUALITY_ERRORS:
        return EXIT_BLOCKED
    if classes and classes <= USAGE_ERRORS:
        return EXIT_USAGE
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
