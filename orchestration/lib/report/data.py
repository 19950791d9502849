"""What the pipeline report shows, read from the warehouse (read-only) into data frames.

Every query reads a published mart or one of the gate's own tables (quality.*); a mart
that is missing (a warehouse built before it existed) or empty is recorded as such, so the
report can say why a chart is absent instead of drawing a broken one. The one thing read
from beside the warehouse is dbt's run_results.json of the latest build, for its tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ingestion.errors import ConfigError
from ingestion.warehouse import QUALITY_SCHEMA, connect
from orchestration.lib.summary import (
    _BACKTEST_SQL,
    STAGE_DURATION_SQL,
    bottleneck_stages,
    headline_kpis,
)
from orchestration.lib.unchanged import STAGING_SELECTOR

# Trends, cohorts and rep tables cover the twelve months ending with the month of as_of.
WINDOW_MONTHS = 12

# The marts the report reads; a missing one gets an explanation in its section.
MARTS = (
    "fct_opportunities",
    "fct_stage_history",
    "fct_funnel",
    "kpi_monthly",
    "kpi_rep_monthly",
    "kpi_stage_duration",
    "fct_pipeline_daily_snapshot",
    "kpi_pipeline_waterfall",
    "kpi_forecast_monthly",
    "kpi_forecast_backtest",
    "kpi_lead_funnel",
    "kpi_post_sale",
    "kpi_pipeline_coverage",
)


class ReportError(ConfigError):
    """The warehouse cannot give a report: missing, unreadable, or no marts built yet."""


@dataclass(frozen=True)
class RunInfo:
    """The run the report describes: its id and as_of (None when no run recorded one)."""

    run_id: str | None
    as_of: datetime | None


@dataclass(frozen=True)
class DbtTest:
    """One dbt test of a build: its name, pass / warn / fail / error / skipped, the rows
    that failed it and dbt's message."""

    name: str
    status: str
    failures: int | None
    message: str | None


@dataclass(frozen=True)
class DbtTests:
    """The tests of the latest dbt build beside the warehouse (dbt_target/run_results.json,
    rewritten by every run that reaches dbt) and when dbt wrote them (UTC)."""

    generated_at: datetime | None
    tests: list[DbtTest]
    # The build left out the staging views and their tests: nothing they read had changed
    # since a build passed them (orchestration.lib.unchanged).
    staging_not_rerun: bool = False


@dataclass
class ReportData:
    """Everything the report draws. A frame is None when its mart is missing."""

    warehouse: Path
    run: RunInfo
    marts: set[str]
    empty_marts: set[str]
    window_start: date | None
    last_month: date | None
    headline: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    bottleneck: list[str] = field(default_factory=list)
    marts_last_day: date | None = None
    # The stages of category open (fct_stage_history); None when that mart is missing.
    open_stages: set[str] | None = None
    # The dbt tests of the latest dbt build beside the warehouse; None without its results.
    dbt_tests: DbtTests | None = None
    # Export files the run loaded (quality.ingestion_log); None when unknown.
    run_files: int | None = None

    def frame(self, name: str) -> pd.DataFrame | None:
        return self.frames.get(name)


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ?", [schema]
    ).fetchall()
    return {name for (name,) in rows}


def open_warehouse(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only, with an error that says what to do when it cannot be."""
    if not warehouse.is_file():
        raise ReportError(
            f"No warehouse at {warehouse}. Run the pipeline first (`crm-pipeline run`, or "
            f"`make run`), or point --warehouse at an existing DuckDB file."
        )
    con = connect(warehouse, read_only=True)
    if not (_tables(con, "marts") & set(MARTS)):
        con.close()
        raise ReportError(
            f"The warehouse {warehouse} holds no marts yet: no run has built them. Run "
            f"`crm-pipeline run --warehouse {warehouse}` first; a run blocked by the hygiene "
            f"gate builds none."
        )
    return con


def last_run(con: duckdb.DuckDBPyConnection) -> RunInfo:
    """The latest run recorded in the warehouse and its as_of: every run records its
    landing freshness check at as_of (ingestion.landing_checks.record)."""
    if "validation_results" not in _tables(con, QUALITY_SCHEMA):
        return RunInfo(None, None)
    row = con.execute(
        f"select run_id, validated_at from {QUALITY_SCHEMA}.validation_results "
        f"where rule = 'landing.freshness' order by rowid desc limit 1"
    ).fetchone()
    return RunInfo(*row) if row else RunInfo(None, None)


def _df(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


# Trailing three-month win rate, deal size and cycle per month, as the summary computes them
# for its window (closed deals of the three months ending with the month), so the last
# point of each trend is the headline number.
_TREND_SQL = """
with m as (
    select month, won_count, lost_count, won_amount, avg_sales_cycle_days,
        pipeline_velocity_per_day, open_count_end, open_amount_end
    from marts.kpi_monthly
),
trail as (
    select
        month,
        sum(won_count) over w as won,
        sum(won_count + lost_count) over w as closed,
        sum(won_amount) over w as won_amount,
        sum(avg_sales_cycle_days * won_count) over w as cycle_weighted,
        pipeline_velocity_per_day,
        open_count_end,
        open_amount_end
    from m
    window w as (order by month rows between 2 preceding and current row)
)
select
    month,
    won / nullif(closed, 0) as win_rate,
    won_amount / nullif(won, 0) as avg_deal_size,
    cycle_weighted / nullif(won, 0) as avg_cycle_days,
    pipeline_velocity_per_day as velocity,
    open_count_end,
    open_amount_end
from trail
where month >= ?
order by month
"""

_FUNNEL_SQL = """
select stage, stage_order, sum(reached_count) as reached
from marts.fct_funnel
where cohort_month >= ?
group by stage, stage_order
order by stage_order
"""

_FUNNEL_COHORTS_SQL = """
select cohort_month, stage, stage_order, reached_count, conversion_rate_to_next
from marts.fct_funnel
where cohort_month >= ? and next_stage is not null
order by cohort_month, stage_order
"""

_DURATION_SQL = """
select stage, stage_order, completed_intervals, avg_days, median_days, p90_days,
    current_count, avg_current_age_days
from marts.kpi_stage_duration
where stage in (select stage from marts.fct_stage_history where stage_category = 'open')
order by stage_order
"""

# Regressions whose move happened in the window: the interval that regressed ended then.
_REGRESSIONS_SQL = """
select stage as from_stage, next_stage as to_stage, count(*) as regressions
from marts.fct_stage_history
where is_regression and exited_at >= ?
group by stage, stage_order, next_stage
order by regressions desc, stage_order, next_stage
"""

_DAILY_SQL = """
select snapshot_date, coalesce(stage, 'no stage') as stage, stage_order, open_count,
    open_amount
from marts.fct_pipeline_daily_snapshot
where snapshot_date >= ?
order by snapshot_date, stage_order
"""

_WATERFALL_SQL = """
select month, opening_count, opening_amount, created_count, created_amount, won_count,
    won_amount, lost_count, lost_amount, closing_count, closing_amount, excluded_count
from marts.kpi_pipeline_waterfall
where month >= ?
order by month
"""

_FORECAST_SQL = """
select expected_close_month as month, open_count, open_amount,
    won_amount_to_date + expected_amount_configured as forecast_configured,
    forecast_amount as forecast_learned, won_amount_to_date
from marts.kpi_forecast_monthly
order by expected_close_month
"""

_BACKTEST_MONTHS_SQL = """
select month, method, predicted_won_amount, actual_won_amount, abs_pct_error,
    open_amount, still_open_amount
from marts.kpi_forecast_backtest
where month >= ?
order by month, method
"""

# Reps over the window: sums of their months, so each ratio is over all their deals (not
# an average of monthly ratios). Attainment over the quota months of the window up to the
# month of as_of; coverage for the month of as_of.
_REPS_SQL = """
with window_months as (
    select owner_id,
        sum(won_count) as won,
        sum(lost_count) as lost,
        sum(won_amount) as won_amount,
        sum(avg_sales_cycle_days * won_count) as cycle_weighted,
        sum(avg_touchpoints_per_won * won_count) as touchpoints_weighted,
        sum(open_count_end) filter (where month = ?) as open_now
    from marts.kpi_rep_monthly
    where month >= ? and month <= ?
    group by owner_id
),
quota as (
    select owner_id,
        sum(quota_amount) as quota,
        sum(won_amount) as quota_won
    from marts.kpi_pipeline_coverage
    where month >= ? and month <= ?
    group by owner_id
),
coverage as (
    select owner_id, coverage_ratio, weighted_coverage_ratio, remaining_quota
    from marts.kpi_pipeline_coverage
    where month = ?
)
select
    w.owner_id,
    {name} as rep,
    w.won,
    w.lost,
    w.won / nullif(w.won + w.lost, 0) as win_rate,
    w.won_amount,
    w.won_amount / nullif(w.won, 0) as avg_deal_size,
    w.cycle_weighted / nullif(w.won, 0) as avg_cycle_days,
    w.touchpoints_weighted / nullif(w.won, 0) as touchpoints_per_win,
    q.quota_won / nullif(q.quota, 0) as attainment,
    c.coverage_ratio,
    c.weighted_coverage_ratio,
    c.remaining_quota
from window_months w
left join quota q using (owner_id)
left join coverage c using (owner_id)
{users_join}
where w.won + w.lost > 0 or coalesce(w.open_now, 0) > 0 or q.quota is not null
order by w.won_amount desc, w.owner_id
"""

_LEADS_SQL = """
select channel,
    sum(leads_created) as leads,
    sum(qualified_count) as qualified,
    sum(converted_count) as converted,
    sum(won_count) as won,
    sum(won_amount) as won_amount,
    sum(qualified_count) / nullif(sum(leads_created), 0) as qualification_rate,
    sum(converted_count) / nullif(sum(leads_created), 0) as conversion_rate
from marts.kpi_lead_funnel
where cohort_month >= ?
group by channel
order by leads desc, channel
"""

_POST_SALE_SQL = """
select month, won_count, followed_up_count, followed_up_share,
    median_days_to_first_activity, onboarding_count, follow_up_count, renewal_count
from marts.kpi_post_sale
where month >= ?
order by month
"""

# Data quality: the checks of the run the report describes, one row per entity and rule,
# failing when any file failed it.
_CHECKS_SQL = f"""
select entity, rule, any_value(severity) as severity, bool_and(success) as passed,
    sum(coalesce(unexpected_count, 0)) as failing_rows,
    count(*) as files,
    min(message) filter (where not success) as message
from {QUALITY_SCHEMA}.validation_results
where run_id = ?
group by entity, rule
order by passed, entity, rule
"""

_QUARANTINE_SQL = f"""
select entity, rule, count(*) as rows, count(*) filter (where run_id = ?) as rows_this_run
from (
    select entity, run_id, unnest(from_json(failed_rules, '["VARCHAR"]')) as rule
    from {QUALITY_SCHEMA}.quarantine
)
group by entity, rule
order by rows desc, entity, rule
"""

_BATCHES_SQL = f"""
select batch_id,
    count(*) filter (where status = 'published') as files_published,
    count(*) filter (where status = 'rejected') as files_rejected,
    sum(loaded_rows) as loaded_rows,
    sum(quarantined_rows) as quarantined_rows,
    min(ingested_at) as first_loaded_at
from {QUALITY_SCHEMA}.ingestion_log
group by batch_id
order by batch_id
"""

_FRESHNESS_SQL = f"""
select success, severity, observed, message
from {QUALITY_SCHEMA}.validation_results
where run_id = ? and rule = 'landing.freshness'
"""


def read_report_data(
    warehouse: Path, run_id: str | None = None, as_of: datetime | None = None
) -> ReportData:
    """Read everything the report shows. ``run_id`` / ``as_of`` name the run that built
    the marts (the Dagster asset knows them); without them, the latest recorded run."""
    warehouse = Path(warehouse)
    con = open_warehouse(warehouse)
    try:
        return _read(con, warehouse, run_id, as_of)
    finally:
        con.close()


def _read(
    con: duckdb.DuckDBPyConnection,
    warehouse: Path,
    run_id: str | None,
    as_of: datetime | None,
) -> ReportData:
    recorded = last_run(con)
    run = RunInfo(run_id or recorded.run_id, as_of or recorded.as_of)
    marts = _tables(con, "marts")
    empty = {
        name
        for name in marts & set(MARTS)
        if con.execute(f"select count(*) from marts.{name}").fetchone()[0] == 0
    }
    last_month = None
    if "kpi_monthly" in marts:
        (last_month,) = con.execute("select max(month) from marts.kpi_monthly").fetchone()
    if last_month is None and run.as_of is not None:
        last_month = date(run.as_of.year, run.as_of.month, 1)
    window_start = _add_months(last_month, -(WINDOW_MONTHS - 1)) if last_month else None
    data = ReportData(warehouse, run, marts, empty, window_start, last_month)

    def read(name: str, needs: tuple[str, ...], sql: str, params: list[Any]) -> None:
        data.frames[name] = (
            _df(con, sql, params) if set(needs) <= marts and window_start is not None else None
        )

    start = window_start
    if "kpi_monthly" in marts and "fct_opportunities" in marts:
        keys = ("window_end", "month", "won", "lost", "win_rate", "avg_deal_size")
        keys += ("avg_cycle_days", "velocity", "open_count", "open_amount")
        data.headline = dict(zip(keys, headline_kpis(con), strict=True))
    read("trend", ("kpi_monthly",), _TREND_SQL, [start])
    read("funnel", ("fct_funnel",), _FUNNEL_SQL, [start])
    read("funnel_cohorts", ("fct_funnel",), _FUNNEL_COHORTS_SQL, [start])
    read("durations", ("kpi_stage_duration", "fct_stage_history"), _DURATION_SQL, [])
    if data.frames["durations"] is not None:
        durations = con.execute(STAGE_DURATION_SQL).fetchall()
        data.bottleneck = bottleneck_stages(durations)[0]
    read("regressions", ("fct_stage_history",), _REGRESSIONS_SQL, [start])
    if "fct_stage_history" in marts:
        data.open_stages = {
            stage
            for (stage,) in con.execute(
                "select distinct stage from marts.fct_stage_history where stage_category = 'open'"
            ).fetchall()
        }
    if "fct_pipeline_daily_snapshot" in marts:
        (data.marts_last_day,) = con.execute(
            "select max(snapshot_date) from marts.fct_pipeline_daily_snapshot"
        ).fetchone()
    # The last 365 days, the last one included.
    daily_start = data.marts_last_day and data.marts_last_day - timedelta(days=364)
    data.frames["daily"] = (
        _df(con, _DAILY_SQL, [daily_start])
        if "fct_pipeline_daily_snapshot" in marts and daily_start
        else None
    )
    read("waterfall", ("kpi_pipeline_waterfall",), _WATERFALL_SQL, [start])
    read("forecast", ("kpi_forecast_monthly",), _FORECAST_SQL, [])
    read("backtest", ("kpi_forecast_backtest",), _BACKTEST_MONTHS_SQL, [start])
    data.frames["backtest_mape"] = (
        _df(con, _BACKTEST_SQL) if "kpi_forecast_backtest" in marts else None
    )
    users = "users" in _tables(con, "raw")
    reps_sql = _REPS_SQL.format(
        name="coalesce(u.name, w.owner_id)" if users else "w.owner_id",
        users_join="left join raw.users u on u.user_id = w.owner_id" if users else "",
    )
    read(
        "reps",
        ("kpi_rep_monthly", "kpi_pipeline_coverage"),
        reps_sql,
        [last_month, start, last_month, start, last_month, last_month],
    )
    read("leads", ("kpi_lead_funnel",), _LEADS_SQL, [start])
    read("post_sale", ("kpi_post_sale",), _POST_SALE_SQL, [start])
    _read_quality(con, data)
    return data


def dbt_run_results(warehouse: Path) -> Path:
    """Where each run's dbt build leaves its results (orchestration.defs.transform)."""
    return Path(warehouse).resolve().parent / "dbt_target" / "run_results.json"


def read_dbt_tests(warehouse: Path) -> DbtTests | None:
    """The dbt tests of the latest build, or None when no build left readable results."""
    try:
        results = json.loads(dbt_run_results(warehouse).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict):
        return None
    generated = (results.get("metadata") or {}).get("generated_at")
    try:
        generated_at = datetime.fromisoformat(generated.replace("Z", "+00:00")).replace(
            tzinfo=None, microsecond=0
        )
    except (AttributeError, ValueError):
        generated_at = None
    tests = [
        DbtTest(
            # test.<project>.<name>.<hash>: the name is what dbt prints.
            name=r["unique_id"].split(".")[2] if r["unique_id"].count(".") >= 2 else r["unique_id"],
            status=str(r.get("status")),
            failures=r.get("failures"),
            message=r.get("message"),
        )
        for r in results.get("results", [])
        if str(r.get("unique_id", "")).startswith("test.")
    ]
    excluded = (results.get("args") or {}).get("exclude") or []
    return DbtTests(generated_at, tests, STAGING_SELECTOR in excluded)


def _read_quality(con: duckdb.DuckDBPyConnection, data: ReportData) -> None:
    quality = _tables(con, QUALITY_SCHEMA)
    run_id = data.run.run_id
    has = {"validation_results", "quarantine", "ingestion_log"} <= quality
    data.frames["checks"] = _df(con, _CHECKS_SQL, [run_id]) if has and run_id else None
    data.frames["quarantine"] = _df(con, _QUARANTINE_SQL, [run_id]) if has else None
    data.frames["batches"] = _df(con, _BATCHES_SQL) if has else None
    data.frames["freshness"] = _df(con, _FRESHNESS_SQL, [run_id]) if has and run_id else None
    data.dbt_tests = read_dbt_tests(data.warehouse)
    if has and run_id:
        (data.run_files,) = con.execute(
            f"select count(*) from {QUALITY_SCHEMA}.ingestion_log where run_id = ?", [run_id]
        ).fetchone()
