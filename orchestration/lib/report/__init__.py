"""The pipeline report: one self-contained HTML file with the KPIs, funnel, pipeline,
forecast, reps, leads and data quality, drawn with Plotly from the published marts.

The file opens with no network: plotly.js is inlined once in the page, and every chart is
a <div> that calls it. Values from the data are escaped (the template autoescapes; chart
labels are escaped in charts.py). The same inputs give the same file: chart ids are fixed
and the page carries as_of, not the time it was written.

``crm-pipeline report`` writes it from a warehouse; the Dagster asset ``report/pipeline``
writes it after every run that rebuilt the marts.

May import: ``ingestion``, ``orchestration.lib`` (the run summary's queries), duckdb,
plotly, jinja2. Never dagster: the command line writes a report without it.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from orchestration.lib.report.charts import headline, sections
from orchestration.lib.report.data import ReportData, ReportError, read_report_data

__all__ = [
    "ReportError",
    "build_report",
    "docs_index",
    "render_report",
    "report_dir",
    "write_report",
    "write_run_reports",
]


def report_dir(warehouse: Path) -> Path:
    """Where a warehouse's reports go: ``reports/`` beside it (data/reports by default)."""
    return Path(warehouse).resolve().parent / "reports"


def docs_index(warehouse: Path) -> Path:
    """The dbt documentation site `make docs` builds beside the warehouse."""
    return Path(warehouse).resolve().parent / "docs" / "index.html"


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("orchestration.lib.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        keep_trailing_newline=True,
    )


def _plotly_js() -> Markup:
    from plotly.offline import get_plotlyjs

    return Markup(get_plotlyjs())


def _warnings(data: ReportData) -> list[str]:
    """What a reader must know before trusting the page."""
    out = []
    as_of, last_day = data.run.as_of, data.marts_last_day
    if as_of is not None and last_day is not None and as_of.date() != last_day:
        out.append(
            f"The marts end on {last_day}, but the latest run is as of "
            f"{as_of:%Y-%m-%d %H:%M}: that run did not rebuild them (the hygiene gate or a dbt "
            f"test held them back). The numbers below are those last published; the data "
            f"quality section is that of the latest run."
        )
    return out


def _shown(path: Path) -> str:
    """A path as the reader would type it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def render_report(data: ReportData, out_dir: Path) -> str:
    """The report's HTML; ``out_dir`` is where it will be written (for relative links)."""
    as_of = data.run.as_of
    docs = os.path.relpath(docs_index(data.warehouse), Path(out_dir).resolve())
    template = _environment().get_template("report.html.j2")
    return template.render(
        plotly_js=_plotly_js(),
        as_of=None if as_of is None else f"{as_of:%Y-%m-%d %H:%M:%S}",
        run_id=data.run.run_id,
        warehouse=_shown(data.warehouse),
        docs_link=Path(docs).as_posix(),
        docs_built=docs_index(data.warehouse).exists(),
        warnings=_warnings(data),
        kpis=headline(data),
        sections=sections(data),
    )


def build_report(
    warehouse: Path,
    out_dir: Path,
    run_id: str | None = None,
    as_of: datetime | None = None,
) -> tuple[str, ReportData]:
    """Read the warehouse (read-only) and render the report."""
    data = read_report_data(Path(warehouse).resolve(), run_id=run_id, as_of=as_of)
    return render_report(data, out_dir), data


def _write_atomic(path: Path, text: str) -> None:
    """Write beside the target, then rename: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named by process and thread, so two writers never share a temporary file; created
    # with open() so it gets the usual permissions (mkstemp's are owner-only).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(warehouse: Path, out: Path) -> Path:
    """`crm-pipeline report`: the report of the latest run into ``out``."""
    out = Path(out)
    html, _ = build_report(warehouse, out.resolve().parent)
    _write_atomic(out, html)
    return out


def as_of_stamp(as_of: datetime) -> str:
    """as_of in a file name: sortable, no colons (2026-11-29T060000)."""
    return f"{as_of:%Y-%m-%dT%H%M%S}"


def write_run_reports(warehouse: Path, run_id: str, as_of: datetime) -> tuple[Path, Path]:
    """After a run: reports/pipeline-<as_of>.html, and reports/latest.html replaced
    atomically with the same page."""
    folder = report_dir(warehouse)
    html, _ = build_report(warehouse, folder, run_id=run_id, as_of=as_of)
    dated = folder / f"pipeline-{as_of_stamp(as_of)}.html"
    latest = folder / "latest.html"
    _write_atomic(dated, html)
    _write_atomic(latest, html)
    return dated, latest
