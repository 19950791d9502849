"""What the pipeline report costs: reading the marts and writing the HTML page.

    .venv/bin/python bench/bench_report.py 1000000 [--batches 4] [--keep DIR]
    .venv/bin/python bench/bench_report.py --warehouse DIR/warehouse.duckdb

Runs the whole pipeline on a synthetic landing (bench_pipeline.py; its step timings include
the report/pipeline step the run itself takes), then times `crm-pipeline report` on that
warehouse in this process: the queries (read-only), the Plotly figures and the page, three
times, with the page's size and this process's peak RSS. With --warehouse, an existing
run's warehouse is measured instead.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_pipeline

from orchestration.lib.report import build_report, write_report
from orchestration.lib.report.data import read_report_data

REPEATS = 3


def measure(warehouse: Path) -> None:
    out = Path(tempfile.mkdtemp(prefix="bench_report_")) / "report.html"
    try:
        reads, builds, writes = [], [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            read_report_data(warehouse)
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            build_report(warehouse, out.parent)
            builds.append(time.perf_counter() - started)
            started = time.perf_counter()
            write_report(warehouse, out)
            writes.append(time.perf_counter() - started)
        size = out.stat().st_size
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"warehouse={warehouse} ({warehouse.stat().st_size / 2**20:.0f} MiB)")
    print(f"read_marts_seconds={min(reads):.2f}  (best of {REPEATS})")
    print(f"read_and_render_seconds={min(builds):.2f}")
    print(f"crm_pipeline_report_seconds={min(writes):.2f}  (read, render, write)")
    print(f"page_mib={size / 2**20:.1f}")
    print(f"peak_rss_mib={peak:.0f}")


def main(argv: list[str] | None = None) -> int:
    return bench_pipeline.measure_a_run(measure, __doc__.splitlines()[0], "bench_report_run_", argv)


if __name__ == "__main__":
    sys.exit(main())
