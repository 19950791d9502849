"""What the dynamics and forecast marts add to a run, beside the same SQL in plain DuckDB.

    .venv/bin/python bench/bench_forecast_marts.py 1000000 [--batches 4] [--keep DIR]
    .venv/bin/python bench/bench_forecast_marts.py --warehouse DIR/warehouse.duckdb

Runs the whole pipeline on a synthetic landing (bench_pipeline.py, which prints the run's
own timings), then reads dbt's run_results.json for the models of the pipeline dynamics
and forecast (the open spells, the learned win rates, the six marts, and the month-end
model that now reads the spells) and their tests. The floor is the same compiled SQL of
each model executed in order in one DuckDB session on a copy of the warehouse, so the
difference is what dbt adds around it. With --warehouse, an existing run's warehouse (and
the dbt_target folder beside it) is measured instead.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
import bench_pipeline

MODELS = (
    "int_open_spells_built",
    "int_opportunities_open_at_month_end",
    "int_stage_win_rates_learned",
    "fct_pipeline_daily_snapshot",
    "kpi_pipeline_waterfall",
    "kpi_stage_win_probability",
    "fct_forecast",
    "kpi_forecast_monthly",
    "kpi_forecast_backtest",
)
# Singular tests of these marts (generic and unit tests are found by the model name).
SINGULAR_TESTS = (
    "assert_waterfall_balances",
    "assert_daily_snapshot_matches_kpi_monthly",
    "assert_forecast_sums_match_monthly",
)


def _node_name(unique_id: str) -> str:
    return unique_id.split(".")[2]


def measure(warehouse: Path) -> None:
    results = json.loads((warehouse.parent / "dbt_target" / "run_results.json").read_text())
    by_model = {
        _node_name(r["unique_id"]): r
        for r in results["results"]
        if r["unique_id"].startswith("model.")
    }
    missing = [m for m in MODELS if m not in by_model]
    if missing:
        sys.exit(f"run_results.json lacks {', '.join(missing)}: run the whole pipeline first.")
    tests = [
        r
        for r in results["results"]
        if r["unique_id"].startswith(("test.", "unit_test."))
        and (
            any(m in r["unique_id"] for m in MODELS) or _node_name(r["unique_id"]) in SINGULAR_TESTS
        )
    ]
    dbt_models = sum(by_model[m]["execution_time"] for m in MODELS)
    dbt_tests = sum(r["execution_time"] for r in tests)

    # The floor: the same SQL, in dependency order, one DuckDB session, on a copy (same file
    # name, because the compiled SQL names the database after it).
    floor_times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_forecast_") as tmp:
        copy = Path(tmp) / warehouse.name
        shutil.copy(warehouse, copy)
        con = duckdb.connect(str(copy))
        try:
            for model in MODELS:
                relation = by_model[model]["relation_name"]
                started = time.perf_counter()
                con.execute(
                    f"create or replace table {relation} as {by_model[model]['compiled_code']}"
                )
                floor_times[model] = time.perf_counter() - started
        finally:
            con.close()
    floor = sum(floor_times.values())

    (rows,) = (
        duckdb.connect(str(warehouse), read_only=True)
        .execute("select count(*) from marts.fct_opportunities")
        .fetchone()
    )
    print(
        f"forecast marts on {rows:,} opportunities "
        f"(whole dbt build: {results['elapsed_time']:.1f}s elapsed)"
    )
    print(f"{'model':<40}{'dbt s':>8}{'DuckDB floor s':>16}")
    for model in MODELS:
        print(f"{model:<40}{by_model[model]['execution_time']:>8.2f}{floor_times[model]:>16.2f}")
    print(f"{'models, total':<40}{dbt_models:>8.2f}{floor:>16.2f}")
    print(f"{'their tests (' + str(len(tests)) + ')':<40}{dbt_tests:>8.2f}")
    print(f"ratio_models_to_floor={dbt_models / floor:.2f}")


def main(argv: list[str] | None = None) -> int:
    return bench_pipeline.measure_a_run(
        measure, __doc__.splitlines()[0], "bench_forecast_run_", argv
    )


if __name__ == "__main__":
    sys.exit(main())
