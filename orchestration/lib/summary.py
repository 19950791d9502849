"""The short KPI summary printed after a run, read from the published marts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from ingestion.warehouse import connect

# The trailing window matches the one pipeline velocity uses (docs/kpis.md): three months,
# ending with the month of as_of, or, for a historical export whose last months closed
# nothing, with the last month that has closed deals (three empty months say nothing).
_SUMMARY_SQL = """
with last_month as (select max(month) as m from marts.kpi_monthly),
closed_month as (
    select max(month) as m from marts.kpi_monthly where won_count + lost_count > 0
),
anchor as (
    select coalesce(closed_month.m, last_month.m) as m from closed_month, last_month
),
window_months as (
    select k.* from marts.kpi_monthly k, anchor
    where k.month > anchor.m - interval 3 month and k.month <= anchor.m
)
select
    (select m from anchor) as window_end,
    (select m from last_month) as month,
    sum(won_count) as won,
    sum(lost_count) as lost,
    sum(won_count) / nullif(sum(won_count) + sum(lost_count), 0) as win_rate,
    sum(won_amount) / nullif(sum(won_count), 0) as avg_deal_size,
    sum(avg_sales_cycle_days * won_count) / nullif(sum(won_count), 0) as avg_cycle_days,
    (select pipeline_velocity_per_day from marts.kpi_monthly, last_month
        where month = last_month.m) as velocity,
    (select open_count_end from marts.kpi_monthly, last_month
        where month = last_month.m) as open_now,
    (select open_amount_end from marts.kpi_monthly, last_month
        where month = last_month.m) as open_amount_now
from window_months
"""

# The marts add up a missing amount as nothing, so a window whose won deals all lack an
# amount shows a deal size of 0: the summary says n/a instead. These count the known ones.
_KNOWN_AMOUNTS_SQL = """
select
    count(amount_reporting) filter (
        where status = 'won'
        and date_trunc('month', closed_at) > ?::date - interval 3 month
        and date_trunc('month', closed_at) <= ?::date
    ),
    count(amount_reporting) filter (where status = 'open')
from marts.fct_opportunities
where not is_deleted
"""

# A median over a handful of intervals names a bottleneck by chance.
BOTTLENECK_MIN_INTERVALS = 10
STAGE_DURATION_SQL = """
select stage, median_days, completed_intervals
from marts.kpi_stage_duration
where stage in (select stage from marts.fct_stage_history where stage_category = 'open')
order by stage_order
"""


# How many quarantined rows the quality line names before "and N more".
_QUARANTINED_SHOWN = 5
# The run's quarantined rows in the order a user reads their files: batch, file (the
# export's when the row came from one), line.
_QUARANTINED_SQL = f"""
select source_file, source_row, export_file, export_line, export_column
from quality.quarantine where run_id = ?
order by batch_id, coalesce(export_file, source_file),
    try_cast(regexp_extract(export_line, '\\d+') as bigint) nulls last, source_row,
    export_column
limit {_QUARANTINED_SHOWN}
"""


def quality_summary(warehouse: Path, run_id: str) -> str | None:
    """One line on what the hygiene gate held back in this run, if anything: how many rows
    were quarantined, the first few named by the user's own export file and line (or the
    landing file's), and the query that lists them with their reasons."""
    from ingestion.hygiene.outcomes import row_reference

    con = connect(warehouse, read_only=True)
    try:
        quarantined, rejected = con.execute(
            "select coalesce(sum(quarantined_rows), 0), "
            "count(*) filter (status = 'rejected') "
            "from quality.ingestion_log where run_id = ?",
            [run_id],
        ).fetchone()
        first = con.execute(_QUARANTINED_SQL, [run_id]).fetchall() if quarantined else []
    finally:
        con.close()
    if not quarantined and not rejected:
        return None
    rows = ", ".join(row_reference(*r) for r in first)
    more = quarantined - len(first)
    rows += f" and {more:,} more" if more > 0 else ""
    return (
        f"{quarantined:,} row(s) quarantined with their reasons"
        + (f" ({rows})" if rows else "")
        + f": select * from quality.quarantine where run_id = '{run_id}'"
    )


# How many set-aside reasons a source's line names before "…".
_REASONS_SHOWN = 3


def source_summary(warehouse: Path, run_id: str) -> list[str]:
    """One line per CRM source loaded in this run: its export files' rows read, converted
    and set aside, with the main reasons (quality.source_reconciliation)."""
    con = connect(warehouse, read_only=True)
    try:
        rows = con.execute(
            "select source, batch_id, export_file, rows_read, rows_emitted, set_aside "
            "from quality.source_reconciliation where run_id = ? "
            "order by source, batch_id, export_file, rows_emitted desc",
            [run_id],
        ).fetchall()
    except duckdb.CatalogException:  # a warehouse no run has loaded yet
        rows = []
    finally:
        con.close()
    # A file feeding two entities (a mapping file) is one file: its rows count once, as
    # converted when they became rows of any of them (the first row: most emitted).
    files: dict[tuple[str, str, str], tuple[int, int, dict[str, int]]] = {}
    for source, batch, name, read, emitted, aside in rows:
        files.setdefault((source, batch, name), (read, emitted, json.loads(aside or "{}")))
    lines = []
    for source in dict.fromkeys(key[0] for key in files):
        mine = [v for k, v in files.items() if k[0] == source]
        read = sum(r for r, _, _ in mine)
        converted = sum(e for _, e, _ in mine)
        reasons: dict[str, int] = {}
        for _, _, aside in mine:
            for reason, n in aside.items():
                reasons[reason] = reasons.get(reason, 0) + n
        line = (
            f"{source}: {len(mine):,} export file{'' if len(mine) == 1 else 's'}, "
            f"{read:,} row{'' if read == 1 else 's'} read, {converted:,} converted, "
            f"{read - converted:,} set aside"
        )
        shown = sorted(reasons.items(), key=lambda kv: -abs(kv[1]))
        if shown:
            named = [f"{n:,} {reason}" for reason, n in shown[:_REASONS_SHOWN]]
            if len(shown) > _REASONS_SHOWN:
                named.append(f"{len(shown) - _REASONS_SHOWN} more reasons")
            line += f" ({', '.join(named)})"
        lines.append(
            f"{line}: select * from quality.source_reconciliation where run_id = '{run_id}'"
        )
    return lines


def publish_summary(events: Iterable[Any]) -> list[str]:
    """One line per target this run published the marts to (serving file, Parquet,
    PostgreSQL), from the publish assets' materializations."""
    lines = []
    for event in events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.path[0] != "publish":
            continue
        text = materialization.metadata.get("published")
        if text is not None:
            lines += str(text.value).splitlines()
    return lines


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


# The forecast covers the month of as_of and the two after it: the quarter a sales leader
# commits to, and the horizon over which open deals' close dates still mean something.
_FORECAST_MONTHS = 3
# How the summary names the backtest's methods: "empirical" means little to a sales leader.
_METHOD_LABELS = {"configured": "configured", "empirical": "learned"}
_NO_VERDICT = "Too little history yet to say which probabilities to trust."

_FORECAST_SQL = """
select
    date_trunc('month', expected_close_month)::date as month,
    sum(open_count),
    sum(won_amount_to_date),
    sum(expected_amount_configured),
    sum(forecast_amount)
from marts.kpi_forecast_monthly
where expected_close_month >= ? and expected_close_month < ?
group by 1
"""

# A month's error means something once its deals are decided: for the last months most of
# the pipeline is still open, their actual won amount is still growing, and every method
# looks as if it over-predicted. Only settled months count: at most this share of the
# month-end pipeline still open at as_of.
SETTLED_MAX_OPEN_SHARE = 0.10
# abs_pct_error is null for a month whose actual won amount is 0: no percentage exists, so
# avg and count skip it.
_BACKTEST_SQL = f"""
select method, avg(abs_pct_error), count(abs_pct_error)
from marts.kpi_forecast_backtest
where still_open_amount <= {SETTLED_MAX_OPEN_SHARE} * open_amount
group by method
"""


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _marts_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts'"
    ).fetchall()
    return {name for (name,) in rows}


def _forecast_lines(first_month: date | None, rows: list[tuple[Any, ...]]) -> list[str]:
    """A line per month: won so far plus what open deals are expected to bring, forecast
    once with the configured stage probabilities and once with the learned ones."""
    lines = ["Won-amount forecast by expected close month (configured vs learned probabilities):"]
    if first_month is None:
        return [*lines, "  n/a (marts.kpi_monthly has no month yet)"]
    by_month = {row[0]: row[1:] for row in rows}
    table = []
    for i in range(_FORECAST_MONTHS):
        month = _add_months(first_month, i)
        # A month without a row has no open deal expected to close in it and nothing won.
        open_count, won, expected_configured, forecast = by_month.get(month, (0, 0, 0, 0))
        table.append(
            (
                f"{month:%Y-%m}",
                f"{(won or 0) + (expected_configured or 0):,.0f}",
                f"{forecast or 0:,.0f}",
                f"{won or 0:,.0f}",
                open_count or 0,
            )
        )
    configured_width = max(len(r[1]) for r in table)
    learned_width = max(len(r[2]) for r in table)
    for label, configured, learned, won, open_count in table:
        deals = "open deal" if open_count == 1 else "open deals"
        lines.append(
            f"  {label}   configured {configured:>{configured_width}}"
            f"   learned {learned:>{learned_width}}"
            f"   (won so far {won}; {open_count:,} {deals})"
        )
    return lines


def _backtest_lines(rows: list[tuple[Any, ...]]) -> list[str]:
    """Each method's mean absolute percentage error at past month-ends, and which
    probabilities that says to trust."""
    lines = [
        "Backtest at past month-ends (mean absolute % error of the forecast won amount, "
        f"months whose deals are at least {1 - SETTLED_MAX_OPEN_SHARE:.0%} decided):"
    ]
    if not rows:
        return [*lines, "  n/a (no settled past month-end to test against yet)", f"  {_NO_VERDICT}"]
    by_method = {method: (mape, months) for method, mape, months in rows}
    if not any(months for _, months in by_method.values()):
        return [
            *lines,
            "  n/a (no deal open at a settled past month-end has been won yet)",
            f"  {_NO_VERDICT}",
        ]
    mapes: dict[str, float] = {}
    for method, label in _METHOD_LABELS.items():
        if method not in by_method:
            lines.append(f"  {label:<11} n/a (not in the backtest)")
            continue
        mape, months = by_method[method]
        if not months:
            lines.append(f"  {label:<11} n/a (no settled past month-end with a won deal)")
            continue
        mapes[label] = mape
        lines.append(f"  {label:<11} {mape:>6.1%} over {months} month{'' if months == 1 else 's'}")
    return [*lines, f"  {_verdict(mapes)}"]


def _verdict(mapes: dict[str, float]) -> str:
    if len(mapes) < len(_METHOD_LABELS):
        return _NO_VERDICT
    (label_a, mape_a), (label_b, mape_b) = mapes.items()
    # Compared as printed: a difference the 0.1% shown does not reveal is no reason to
    # prefer one set of probabilities.
    if f"{mape_a:.1%}" == f"{mape_b:.1%}":
        return f"A tie at {mape_a:.1%}: neither set of probabilities forecast better."
    best, other = (label_a, label_b) if mape_a < mape_b else (label_b, label_a)
    return f"Trust the {best} probabilities: their forecasts erred less than the {other} ones."


def bottleneck_stages(durations: list[tuple[Any, ...]]) -> tuple[list[str], float | None]:
    """The open stage with the highest median time in it, over completed intervals, when
    enough of them back it (every stage that shares the top median), and that median.
    ``durations`` are the rows of STAGE_DURATION_SQL."""
    enough = [(stage, median) for stage, median, n in durations if n >= BOTTLENECK_MIN_INTERVALS]
    if not enough:
        return [], None
    top = max(median for _, median in enough)
    return [stage for stage, median in enough if median == top], top


def _bottleneck(durations: list[tuple[Any, ...]]) -> str:
    stages, top = bottleneck_stages(durations)
    if not stages:
        return f"n/a (no open stage has {BOTTLENECK_MIN_INTERVALS} completed intervals yet)"
    if len(stages) > 1:
        return f"a tie between {', '.join(stages)} (median {top:.1f} days each)"
    return f"{stages[0]} (median {top:.1f} days)"


def headline_kpis(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The summary's headline row (the report shows the same numbers): window_end, month,
    won, lost, win_rate, avg_deal_size, avg_cycle_days, velocity, open_now, open_amount."""
    row = con.execute(_SUMMARY_SQL).fetchone()
    window_end, month, won, lost, win_rate, deal, cycle, velocity, open_now, open_amount = row
    won_known, open_known = con.execute(_KNOWN_AMOUNTS_SQL, [window_end, window_end]).fetchone()
    if not won_known:
        # Without a known amount there is no deal size, hence no velocity either.
        deal = velocity = None
    if not open_known and open_now:
        open_amount = None
    return window_end, month, won, lost, win_rate, deal, cycle, velocity, open_now, open_amount


def kpi_summary(warehouse: Path) -> str:
    """The headline KPIs, the forecast and its backtest, as printed after a run."""
    con = connect(warehouse, read_only=True)
    try:
        row = headline_kpis(con)
        durations = con.execute(STAGE_DURATION_SQL).fetchall()
        (opportunities,) = con.execute("select count(*) from marts.fct_opportunities").fetchone()
        # A warehouse built before the forecast marts existed lacks them: skip their lines.
        tables = _marts_tables(con)
        month = row[1]
        first_month = None if month is None else date(month.year, month.month, 1)
        forecast = backtest = None
        if "kpi_forecast_monthly" in tables:
            forecast = (
                []
                if first_month is None
                else con.execute(
                    _FORECAST_SQL, [first_month, _add_months(first_month, _FORECAST_MONTHS)]
                ).fetchall()
            )
        if "kpi_forecast_backtest" in tables:
            backtest = con.execute(_BACKTEST_SQL).fetchall()
    finally:
        con.close()
    window_end, month, won, lost, win_rate, deal, cycle, velocity, open_now, open_amount = row
    if window_end is None:
        start = "n/a"
    elif window_end == month:
        start = f"3 months to {window_end:%Y-%m}"
    else:
        start = f"3 months to {window_end:%Y-%m}, the last with closed deals"
    lines = [
        f"KPI summary ({opportunities:,} opportunities; closed deals over the {start}):",
        f"  win rate             {_fmt(win_rate, '{:.1%}')}"
        f"  ({won or 0:,} won, {lost or 0:,} lost)",
        f"  average deal size    {_fmt(deal, '{:,.0f}')}",
        f"  sales cycle          {_fmt(cycle, '{:.1f}')} days (average, won deals)",
        f"  open pipeline        {open_now or 0:,} deals, {_fmt(open_amount, '{:,.0f}')}",
        f"  pipeline velocity    {_fmt(velocity, '{:,.0f}')} per day",
        f"  bottleneck stage     {_bottleneck(durations)}",
    ]
    if forecast is not None:
        lines += _forecast_lines(first_month, forecast)
    if backtest is not None:
        lines += _backtest_lines(backtest)
    lines.append(f"Warehouse: {warehouse}  (query the marts.* tables with any DuckDB client)")
    return "\n".join(lines)
