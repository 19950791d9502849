"""Time the whole pipeline on synthetic data: generate, then `crm-pipeline run`.

    .venv/bin/python bench/bench_pipeline.py 1000000 [--batches 4] [--keep DIR]

The run is the real CLI (ingest → Great Expectations check → dbt build) in a child
process, timed per step from its progress lines. Peak memory is the high-water RSS of
the largest of the run process and its dbt subprocess (getrusage of children), so run
one size per invocation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ingestion.synthetic import generate

AS_OF = "2026-11-26T06:00:00Z"
_STEP = re.compile(r"^\[\s*([\d.]+)s\] ▸ (\S+)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("opportunities", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    args = parser.parse_args(argv)

    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    work = args.keep or tmp
    work.mkdir(parents=True, exist_ok=True)
    landing, warehouse = work / "landing", work / "warehouse.duckdb"
    exe = Path(sys.executable).parent / "crm-pipeline"
    try:
        started = time.perf_counter()
        # In this process, so that the children's peak RSS below is the run's alone.
        generate(
            landing,
            opportunities=args.opportunities,
            batches=args.batches,
            end=dt.date.fromisoformat(AS_OF[:10]),
            # Clean, as for the runs in bench/RESULTS.md (no rows to quarantine).
            clean=True,
        )
        generated = time.perf_counter() - started

        started = time.perf_counter()
        proc = subprocess.run(
            [exe, "run", "--source", "crm", "--landing", landing, "--warehouse", warehouse,
             "--as-of", AS_OF],
            capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        size = warehouse.stat().st_size
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    # Step durations: from one step's start line to the next (the last runs to the end).
    starts = [(float(m[1]), m[2]) for m in map(_STEP.match, proc.stderr.splitlines()) if m]
    ends = [t for t, _ in starts[1:]] + [wall]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"opportunities={args.opportunities:,} batches={args.batches} cpus={os.cpu_count()}")
    print(f"generate_seconds={generated:.1f}")
    print(f"run_wall_seconds={wall:.1f}")
    for (t, step), end in zip(starts, ends, strict=True):
        print(f"  step {step}: {end - t:.1f}s")
    print(f"peak_rss_run_mib={children:.0f}  (largest of the run process and dbt)")
    print(f"warehouse_mib={size / 2**20:.0f}")
    print(f"date={dt.date.today()}")
    return 0


def measure_a_run(
    measure: Callable[[Path], None], description: str, prefix: str, argv: list[str] | None
) -> int:
    """The command line of the benchmarks that measure a finished run's warehouse:
    ``[OPPORTUNITIES] [--batches N] [--keep DIR]`` runs this pipeline benchmark first (in
    a temporary folder unless kept), ``--warehouse PATH`` measures an existing run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("opportunities", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    parser.add_argument("--warehouse", type=Path, help="measure this existing run instead")
    args = parser.parse_args(argv)
    if args.warehouse:
        measure(args.warehouse.resolve())
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix=prefix))
    try:
        code = main([str(args.opportunities), "--batches", str(args.batches), "--keep", str(work)])
        if code != 0:
            return code
        measure((work / "warehouse.duckdb").resolve())
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
