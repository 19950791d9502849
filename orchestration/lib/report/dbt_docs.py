"""`make docs`: dbt's documentation site, catalog included, beside the warehouse.

    python -m orchestration.lib.report.dbt_docs [--warehouse PATH]

dbt reads the column types of the catalog from a built warehouse, so a warehouse without
marts is built first (`crm-pipeline run`). The site goes to ``docs/`` beside the warehouse
(data/docs/ by default): ``index.html`` is dbt's single-file page with the manifest and
catalog inlined (``dbt docs generate --static``), which opens from the file system with no
server; ``manifest.json`` and ``catalog.json`` sit beside it. The pipeline report links to
it as ``../docs/index.html``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from ingestion.config import format_as_of, load_config
from ingestion.errors import PipelineError
from ingestion.warehouse import WriterLock
from orchestration.lib.report import docs_index
from orchestration.lib.report.data import ReportError, last_run, open_warehouse


def _as_of(warehouse: Path) -> datetime:
    """The as_of of the latest run: the compiled SQL in the docs shows what it ran with."""
    con = open_warehouse(warehouse)
    try:
        as_of = last_run(con).as_of
    finally:
        con.close()
    return as_of or datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def build_docs(config: Path | None, warehouse: Path | None) -> Path:
    """Generate the site; returns its index.html."""
    from orchestration.defs.transform.assets import dbt_vars
    from orchestration.defs.transform.project import DBT_EXECUTABLE, DBT_PROJECT_DIR

    cfg = load_config(config).with_overrides(warehouse=warehouse)
    cfg = cfg.with_overrides(warehouse=cfg.warehouse.resolve())
    as_of = _as_of(cfg.warehouse)
    index = docs_index(cfg.warehouse)
    target = cfg.warehouse.parent / "dbt_docs_target"
    command = [
        DBT_EXECUTABLE, "docs", "generate", "--static", "--quiet",
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(target),
        # The last run's as_of as a var (a var wins over quality.run_context): the
        # compiled SQL in the site is what that run ran.
        "--vars", json.dumps({**dbt_vars(cfg), "as_of": format_as_of(as_of)}),
    ]  # fmt: skip
    # dbt-duckdb opens the file for writing to read its catalog: no run may write meanwhile.
    with WriterLock(cfg.warehouse, "make docs"):
        done = subprocess.run(command, cwd=DBT_PROJECT_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(
            f"dbt docs generate failed (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr).strip()[-3000:]}"
        )
    staging = index.parent.with_name(index.parent.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(target / "static_index.html", staging / "index.html")
    for name in ("manifest.json", "catalog.json"):
        shutil.copyfile(target / name, staging / name)
    # Swap the whole folder, so a reader sees the old site or the new one.
    old = index.parent.with_name(index.parent.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if index.parent.exists():
        index.parent.rename(old)
    staging.rename(index.parent)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make docs", description="Build dbt's documentation site beside the warehouse."
    )
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    parser.add_argument(
        "--warehouse", type=Path, help="DuckDB file (default data/warehouse.duckdb)"
    )
    args = parser.parse_args(argv)
    try:
        try:
            index = build_docs(args.config, args.warehouse)
        except ReportError as exc:
            # No marts (or no warehouse) yet: the catalog needs a built warehouse.
            print(f"{exc}\nBuilding it first: crm-pipeline run", file=sys.stderr)
            from orchestration.cli import main as cli

            run = ["run"] + (["--config", str(args.config)] if args.config else [])
            run += ["--warehouse", str(args.warehouse)] if args.warehouse else []
            code = cli(run)
            if code != 0:
                return code
            index = build_docs(args.config, args.warehouse)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ReportError) else 3
    print(f"dbt docs: {index}  (open it in a browser; the report links to it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
