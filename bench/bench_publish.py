"""What publishing the marts costs: the serving file and Parquet, and PostgreSQL.

    .venv/bin/python bench/bench_publish.py 1000000 [--batches 4] [--keep DIR]
    .venv/bin/python bench/bench_publish.py --warehouse DIR/warehouse.duckdb

Runs the whole pipeline on a synthetic landing (bench_pipeline.py, which prints the run's
own timings, the publish step among them), or takes an existing run's warehouse, then
times on it, each three times: publish_files (serving file + Parquet) and publish_postgres
into a throwaway PostgreSQL server on this machine (tests/local_postgres.py; fsync off, so
this is the transfer and load, not the server's disk). The floor for PostgreSQL is
DuckDB's CSV export of the marts alone (the first half of the publish).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).parent), str(ROOT / "tests")]
import bench_pipeline  # noqa: E402
from local_postgres import PostgresServer  # noqa: E402

from ingestion.postgres import publish_postgres  # noqa: E402
from ingestion.publish import mart_names, publish_files  # noqa: E402

AS_OF = datetime(2026, 11, 26, 6)
REPEATS = 3


def _timed(label: str, action: object) -> None:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    print(f"{label:<38} best {min(times):6.2f} s  worst {max(times):6.2f} s   {result}")


def measure(warehouse: Path) -> None:
    marts = mart_names(warehouse)
    con = duckdb.connect(str(warehouse), read_only=True)
    counts = {m: con.execute(f"select count(*) from marts.{m}").fetchone()[0] for m in marts}
    con.close()
    print(f"{len(marts)} marts, {sum(counts.values()):,} rows; largest: " + ", ".join(
        f"{m} {n:,}" for m, n in sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    ))  # fmt: skip

    def files() -> str:
        pubs = publish_files(warehouse, marts, run_id="bench", as_of=AS_OF)
        size = sum(p.stat().st_size for p in (warehouse.parent / "marts").glob("*.parquet"))
        serving = warehouse.with_name(f"{warehouse.stem}.serving.duckdb").stat().st_size
        return f"{pubs[0].rows:,} rows; serving {serving >> 20} MiB, Parquet {size >> 20} MiB"

    _timed("serving file + Parquet", files)

    def csv_floor() -> str:
        with tempfile.TemporaryDirectory(dir=warehouse.parent) as tmp:
            con = duckdb.connect(str(warehouse), read_only=True)
            for m in marts:
                con.execute(f"COPY marts.{m} TO '{tmp}/{m}.csv' (FORMAT csv)")
            con.close()
            size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        return f"CSV {size >> 20} MiB"

    _timed("floor: DuckDB CSV export alone", csv_floor)
    server = PostgresServer().start()
    try:

        def postgres() -> str:
            pub = publish_postgres(
                warehouse, marts, server.url(), "marts", run_id="bench", as_of=AS_OF
            )
            return f"{pub.rows:,} rows"

        _timed("PostgreSQL (one transaction)", postgres)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    return bench_pipeline.measure_a_run(measure, __doc__.splitlines()[0], "bench_publish_", argv)


if __name__ == "__main__":
    sys.exit(main())
