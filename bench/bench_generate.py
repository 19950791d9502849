"""Time the synthetic generator: wall time, rows written and peak memory.

    .venv/bin/python bench/bench_generate.py 1000000 [--batches 4] [--fmt csv] [--keep DIR]

Writes into a temporary directory (removed afterwards unless --keep is given). Peak RSS
is the process's high-water mark from getrusage, so run one size per process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from ingestion.synthetic import generate


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("opportunities", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--fmt", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2026, 11, 26))
    parser.add_argument("--keep", type=Path, help="write here and keep the files")
    args = parser.parse_args(argv)

    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="bench_generate_"))
    out = args.keep or (tmp / "landing")
    try:
        started = time.perf_counter()
        summary = generate(
            out,
            opportunities=args.opportunities,
            batches=args.batches,
            seed=args.seed,
            end=args.end,
            fmt=args.fmt,
        )
        wall = time.perf_counter() - started
        size = _dir_bytes(out)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    total = sum(summary.rows.values())
    print(
        f"opportunities={args.opportunities:,} batches={args.batches} fmt={args.fmt} "
        f"seed={args.seed} end={args.end} cpus={os.cpu_count()}"
    )
    print(f"wall_seconds={wall:.1f}")
    print(f"peak_rss_mib={peak_kib / 1024:.0f}")
    print(f"output_mib={size / 2**20:.0f}")
    print(f"rows_total={total:,}")
    for entity, n in summary.rows.items():
        print(f"rows.{entity}={n:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
