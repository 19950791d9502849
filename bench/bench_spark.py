"""Spark (local mode) beside DuckDB: the whole pipeline on the same synthetic landing.

    .venv/bin/python bench/bench_spark.py 100000 [--batches 4] [--engines duckdb,spark]
        [--master 'local[*]'] [--keep DIR]

Generates one landing, then runs `crm-pipeline run` on it once per engine, each into a new
warehouse (the initial load), in a child process of its own: wall time per step from the
run's progress lines, and the peak of the resident memory summed over the run and every
process under it (its JVM included), sampled as bench_scale.py does. The run's output is
kept in DIR/<engine>.log with --keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

AS_OF = "2026-11-26T06:00:00Z"
_STEP = re.compile(r"^\[\s*([\d.]+)s\] ▸ (\S+)")


def _run(engine: str, landing: Path, work: Path, master: str) -> dict:
    """One engine's run, measured as bench_scale measures: wall time and the peak of the
    resident memory summed over the run and all its descendants (its JVM included)."""
    from bench_scale import measure

    warehouse = work / engine / "warehouse.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "crm-pipeline"), "run", "--source", "crm",
           "--landing", str(landing), "--warehouse", str(warehouse), "--as-of", AS_OF]  # fmt: skip
    if engine == "spark":
        config = work / "spark.yaml"
        config.write_text(f"engine: spark\nspark: {{master: '{master}'}}\n", encoding="utf-8")
        cmd += ["--config", str(config)]
    log = work / f"{engine}.log"
    wall, peak_gib, code = measure(cmd, log)
    output = log.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        print(output, file=sys.stderr)
        raise SystemExit(f"{engine}: crm-pipeline run failed ({code})")
    return {"wall": wall, "peak_mib": peak_gib * 1024, "output": output}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("opportunities", type=int, nargs="?", default=100_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    args = parser.parse_args(argv)

    from ingestion.synthetic import generate

    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="bench_spark_"))
    work = args.keep or tmp
    work.mkdir(parents=True, exist_ok=True)
    landing = work / "landing"
    try:
        if not landing.exists():
            generate(
                landing,
                opportunities=args.opportunities,
                batches=args.batches,
                end=dt.date.fromisoformat(AS_OF[:10]),
                # Clean, as for the runs in bench/RESULTS.md (no rows to quarantine).
                clean=True,
            )
        print(
            f"opportunities={args.opportunities:,} batches={args.batches} "
            f"cpus={os.cpu_count()} master={args.master} date={dt.datetime.now():%Y-%m-%d %H:%M} "
            f"load_average={os.getloadavg()[0]:.1f}"
        )
        for engine in args.engines.split(","):
            result = _run(engine, landing, work, args.master)
            lines = result["output"].splitlines()
            starts = [(float(m[1]), m[2]) for m in map(_STEP.match, lines) if m]
            ends = [t for t, _ in starts[1:]] + [result["wall"]]
            print(f"{engine}: wall_seconds={result['wall']:.1f} "
                  f"peak_rss_mib={result['peak_mib']:.0f} "
                  f"load_average_after={os.getloadavg()[0]:.1f}")  # fmt: skip
            for (t, step), end in zip(starts, ends, strict=True):
                print(f"  step {step}: {end - t:.1f}s")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
