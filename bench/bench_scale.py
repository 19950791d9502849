"""How the pipeline's cost grows with the data, beside the DuckDB floor of the same work.

    .venv/bin/python bench/bench_scale.py [--sizes 10000 100000 1000000] [--batches 30]
        [--work DIR] [--repeat 3] [--only-nothing-new]

For each size: a clean synthetic landing of ``--batches`` daily batches (CSV; ``clean=True``,
without the few defective rows the generator adds by default, because the floor loads
every row and the run must therefore quarantine none), then three real
`crm-pipeline run --source crm` runs in a child process, into one new warehouse:

1. first load: every batch but the last;
2. daily: the last batch arrives (about 1/30 of the rows, as a daily export); best of
   ``--repeat`` tries, each from the state the first load left;
3. nothing new: the same landing again, on each of the next ``--repeat`` days (best of).

Each is printed beside its floor, measured in the same benchmark run: the same work done
by hand in one DuckDB session (a child process too), with the pipeline's memory_limit:

- load: every landing CSV of each entity read with ``read_csv`` into the raw table of
  its entity, typed as the contract says, deduplicated (latest ``updated_at`` per key for
  versioned entities, distinct rows for events); a daily batch is merged into the
  previous floor's tables (delete + insert by key);
- transform: the run's own compiled model SQL (dbt's ``run_results.json``, in
  completion order, so every model after the ones it reads) executed in one session,
  each model a view or a table as the project materializes it.

Peak memory is the largest sum of the resident memory of the process and all of its
descendants (dbt included), sampled every 50 ms from /proc. Times are wall clock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

AS_OF_END = dt.date(2026, 11, 26)


def memory_limit() -> str:
    """The pipeline's default memory_limit: the floor works within the same budget."""
    from ingestion.config import PipelineConfig

    return PipelineConfig().memory_limit


# --- measuring a child process ------------------------------------------------------------

Measured = tuple[float, float, int]  # wall seconds, peak tree RSS (GiB), exit code


def _tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and every descendant (children's pages counted once per
    process; shared libraries are small beside the data)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def measure(cmd: list[str], log: Path) -> Measured:
    """Run ``cmd``; (wall seconds, peak tree RSS in GiB, exit code). Output goes to ``log``."""
    peak = 0
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_rss_bytes(proc.pid))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
    return wall, peak / 2**30, code


# --- the floor ------------------------------------------------------------------------------


def floor_load(db: Path, batches: list[Path]) -> None:
    """Read the batches' CSVs into raw.* by hand: typed, deduplicated, merged."""
    import duckdb

    from ingestion.schema import ENTITIES, SQL_TYPES
    from ingestion.warehouse import RAW_SCHEMA, create_raw_tables

    con = duckdb.connect(str(db))
    con.execute(f"SET memory_limit = '{memory_limit()}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    create_raw_tables(con)
    for name, entity in ENTITIES.items():
        files = [str(b / f"{name}.csv") for b in batches if (b / f"{name}.csv").exists()]
        if not files:
            continue
        typed = ", ".join(
            f"TRY_CAST({c.name} AS {SQL_TYPES[c.type]}) AS {c.name}" for c in entity.columns
        )
        source = (
            f"SELECT {typed}, regexp_extract(filename, '([^/]+)/[^/]+$', 1) AS _batch_id, "
            f"filename AS _source_file, row_number() OVER () AS _source_row "
            f"FROM read_csv({files}, header = true, all_varchar = true, union_by_name = true, "
            f"filename = true)"
        )
        key = ", ".join(entity.key)
        if entity.kind == "versioned":
            order = "updated_at DESC NULLS LAST, _batch_id DESC, _source_row DESC"
            if "updated_at" not in entity.column_names:
                order = "_batch_id DESC, _source_row DESC"
            new = f"SELECT * FROM ({source}) QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}) = 1"  # noqa: E501
        else:
            new = f"SELECT DISTINCT ON ({', '.join(entity.column_names)}) * FROM ({source})"
        con.execute(f"CREATE TEMP TABLE _new AS {new}")
        target = f"{RAW_SCHEMA}.{name}"
        matches = " AND ".join(f"t.{k} = n.{k}" for k in entity.key)
        con.execute(f"DELETE FROM {target} t USING _new n WHERE {matches}")
        columns = ", ".join([*entity.column_names, "_batch_id", "_source_file", "_source_row"])
        con.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM _new")
        con.execute("DROP TABLE _new")
    con.close()


def floor_transform(db: Path, run_results: Path, stage_map_from: Path) -> None:
    """Execute the run's compiled models, in completion order, in one session."""
    import duckdb

    results = json.loads(run_results.read_text())["results"]
    # Each model as the project materializes it: a view stays a view, read by its readers.
    nodes = json.loads((run_results.parent / "manifest.json").read_text())["nodes"]
    con = duckdb.connect(str(db))
    con.execute(f"SET memory_limit = '{memory_limit()}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    # The stage map is configuration the pipeline writes; copied, not timed as work.
    con.execute(f"ATTACH '{stage_map_from}' AS run_wh (READ_ONLY)")
    con.execute("CREATE OR REPLACE TABLE raw.stage_map AS SELECT * FROM run_wh.raw.stage_map")
    con.execute("DETACH run_wh")
    for schema in ("staging", "intermediate", "marts"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for r in results:
        if not r["unique_id"].startswith("model."):
            continue
        kind = "VIEW" if nodes[r["unique_id"]]["config"]["materialized"] == "view" else "TABLE"
        schema, name = r["relation_name"].replace('"', "").split(".")[1:]
        # A floor made before the model changed kind (view ↔ table): replace, not fail.
        other = "TABLE" if kind == "VIEW" else "VIEW"
        if con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ? "
            "AND table_type = ?",
            [schema, name, "VIEW" if other == "VIEW" else "BASE TABLE"],
        ).fetchall():
            con.execute(f"DROP {other} {r['relation_name']} CASCADE")
        con.execute(f"CREATE OR REPLACE {kind} {r['relation_name']} AS {r['compiled_code']}")
    con.close()


# --- one size ---------------------------------------------------------------------------------


def _pipeline(exe: Path, work: Path, n: int, as_of: str, log: str) -> Measured:
    """`crm-pipeline run` of size ``n``'s landing into its warehouse, measured."""
    return measure(
        [str(exe), "run", "--source", "crm", "--landing", str(work / f"landing_{n}"),
         "--warehouse", str(work / f"run_{n}" / "warehouse.duckdb"), "--as-of", as_of],
        work / log,
    )  # fmt: skip


def _floor(step: str, args: list[str], log: Path) -> Measured:
    """One floor step (``--load`` or ``--transform``) in a child process, measured."""
    return measure([sys.executable, str(Path(__file__).resolve()), f"--{step}", *args], log)


def _transform_floor(work: Path, n: int, log: str) -> Measured:
    """The floor of the last run's transform: its compiled models on the floor's tables."""
    run_dir = work / f"run_{n}"
    return _floor(
        "transform",
        [str(work / f"floor_{n}" / "warehouse.duckdb"),
         str(run_dir / "dbt_target" / "run_results.json"), str(run_dir / "warehouse.duckdb")],
        work / log,
    )  # fmt: skip


def bench_size(n: int, batches: int, work: Path, exe: Path, repeat: int) -> list[dict[str, object]]:
    from ingestion.synthetic import generate

    landing = work / f"landing_{n}"
    if not landing.exists():
        # Clean: the floor loads every row, so the run must quarantine none.
        generate(landing, opportunities=n, batches=batches, end=AS_OF_END, clean=True)
    held = work / f"held_{n}"
    held.mkdir(exist_ok=True)
    folders = sorted(p for p in landing.iterdir() if p.is_dir())
    last = folders[-1]
    shutil.move(str(last), held / last.name)
    run_dir = work / f"run_{n}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    floor_dir = work / f"floor_{n}"
    shutil.rmtree(floor_dir, ignore_errors=True)
    floor_dir.mkdir()
    # The compiled SQL names the database after the file: the floor's has the same name.
    floor_db = floor_dir / "warehouse.duckdb"

    rows: list[dict[str, object]] = []
    first_as_of = f"{folders[-2].name[:10]}T06:00:00Z"
    last_as_of = f"{last.name[:10]}T06:00:00Z"
    try:
        # 1. first load
        m = _pipeline(exe, work, n, first_as_of, f"first_{n}.log")
        load = _floor(
            "load", [str(floor_db), *[str(f) for f in folders[:-1]]], work / f"floor_load_{n}.log"
        )
        transform = _transform_floor(work, n, f"floor_transform_{n}.log")
        rows.append(_row(n, work, "first load", [(m, [load, transform])]))
        # 2. the daily batch, best of ``repeat``: each try starts from what the first load
        # left (both warehouses copied back, not timed), as the nothing-new runs do.
        snapshot = work / f"snapshot_{n}"
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(run_dir, snapshot / "run")
        shutil.copytree(floor_dir, snapshot / "floor")
        shutil.move(str(held / last.name), landing / last.name)
        tries = []
        for attempt in range(1, repeat + 1):
            if attempt > 1:
                for kept, live in ((snapshot / "run", run_dir), (snapshot / "floor", floor_dir)):
                    shutil.rmtree(live)
                    shutil.copytree(kept, live)
            os.sync()  # the copies' writes are not the next run's to pay
            m = _pipeline(exe, work, n, last_as_of, f"daily_{n}_{attempt}.log")
            load = _floor(
                "load",
                [str(floor_db), str(landing / last.name)],
                work / f"floor_load_{n}_daily_{attempt}.log",
            )
            transform = _transform_floor(work, n, f"floor_transform_{n}_daily_{attempt}.log")
            tries.append((m, [load, transform]))
        shutil.rmtree(snapshot)
        rows.append(_row(n, work, "daily batch", tries))
        rows += nothing_new(n, last, work, exe, repeat)
    finally:
        if (held / last.name).exists():
            shutil.move(str(held / last.name), landing / last.name)
    return rows


def nothing_new(n: int, last: Path, work: Path, exe: Path, repeat: int) -> list[dict[str, object]]:
    """The same landing on the following days, each run followed by its transform floor;
    best of ``repeat`` for both (a few seconds of work, so the machine's noise is large
    beside it: the spread is printed too)."""
    if (
        not (work / f"run_{n}" / "warehouse.duckdb").exists()
        or not (work / f"floor_{n}" / "warehouse.duckdb").exists()
    ):
        raise SystemExit(f"no first load at {n:,} in {work}: run once without --only-nothing-new")
    tries = []
    for day in range(1, repeat + 1):
        as_of = dt.date.fromisoformat(last.name[:10]) + dt.timedelta(days=day)
        run = _pipeline(exe, work, n, f"{as_of}T06:00:00Z", f"nothing_new_{n}_{day}.log")
        tries.append((run, [_transform_floor(work, n, f"floor_transform_{n}_{day}.log")]))
    return [_row(n, work, "nothing new", tries)]


def _row(
    n: int, work: Path, label: str, tries: list[tuple[Measured, list[Measured]]]
) -> dict[str, object]:
    """One row of the table, printed as it is made, from one or more tries of a run, each
    with its floor in parts (load, transform). Of several: the fastest run beside the
    fastest floor, the spread in the label; memory: the largest of any try."""
    if any(run[2] != 0 or any(p[2] != 0 for p in parts) for run, parts in tries):
        raise SystemExit(f"{label} at {n:,} failed: see the logs in {work}")
    walls = [run[0] for run, _ in tries]
    floors = [sum(p[0] for p in parts) for _, parts in tries]
    if len(tries) > 1:
        label += (
            f" (best of {len(tries)}; runs {min(walls):.1f}–{max(walls):.1f} s, "
            f"floors {min(floors):.1f}–{max(floors):.1f} s)"
        )
    best_floor = tries[floors.index(min(floors))][1]
    row = {
        "opportunities": n,
        "run": label,
        "wall_s": min(walls),
        "peak_gib": max(run[1] for run, _ in tries),
        "floor_s": min(floors),
        "floor_parts_s": [round(p[0], 1) for p in best_floor],
        "floor_peak_gib": max(p[1] for _, parts in tries for p in parts),
        "ratio": min(walls) / min(floors),
    }
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| opportunities | run | time (s) | peak RSS (GiB) | DuckDB floor (s) | floor peak (GiB) "
        "| ratio |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        parts = " + ".join(f"{p}" for p in r["floor_parts_s"])
        lines.append(
            f"| {r['opportunities']:,} | {r['run']} | {r['wall_s']:.1f} | {r['peak_gib']:.2f} "
            f"| {r['floor_s']:.1f} ({parts}) | {r['floor_peak_gib']:.2f} | {r['ratio']:.1f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="daily and nothing-new runs (and floors) per size; best of",
    )
    parser.add_argument(
        "--only-nothing-new",
        action="store_true",
        help="reuse the warehouses a previous run left in --work; time the nothing-new runs only",
    )
    parser.add_argument("--work", type=Path, help="work here and keep the files")
    parser.add_argument("--load", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--transform", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        floor_load(Path(args.load[0]), [Path(p) for p in args.load[1:]])
        return 0
    if args.transform:
        floor_transform(*(Path(p) for p in args.transform))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "crm-pipeline"
    rows: list[dict[str, object]] = []
    try:
        for n in args.sizes:
            if args.only_nothing_new:
                last = max(p for p in (work / f"landing_{n}").iterdir() if p.is_dir())
                rows += nothing_new(n, last, work, exe, args.repeat)
            else:
                rows += bench_size(n, args.batches, work, exe, args.repeat)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
