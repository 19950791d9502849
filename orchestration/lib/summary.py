"""The short KPI summary printed after a run, read from the published marts."""

from __future__ import annotations

from pathlib import Path

from ingestion.warehouse import connect

# The trailing window matches the one pipeline velocity uses (KPIS.md): three months
# ending with the month of as_of.
_SUMMARY_SQL = """
with last_month as (select max(month) as m from marts.kpi_monthly),
window_months as (
    select k.* from marts.kpi_monthly k, last_month
    where k.month > last_month.m - interval 3 month
)
select
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


def quality_summary(warehouse: Path, run_id: str) -> str | None:
    """One line on what the hygiene gate held back in this run, if anything."""
    con = connect(warehouse, read_only=True)
    try:
        quarantined, rejected = con.execute(
            "select coalesce(sum(quarantined_rows), 0), "
            "count(*) filter (status = 'rejected') "
            "from quality.ingestion_log where run_id = ?",
            [run_id],
        ).fetchone()
    finally:
        con.close()
    if not quarantined and not rejected:
        return None
    return (
        f"{quarantined:,} row(s) quarantined with their reasons: "
        f"select * from quality.quarantine where run_id = '{run_id}'"
    )


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def kpi_summary(warehouse: Path) -> str:
    con = connect(warehouse, read_only=True)
    try:
        row = con.execute(_SUMMARY_SQL).fetchone()
        bottleneck = con.execute(
            "select stage, median_days from marts.kpi_stage_duration where is_bottleneck"
        ).fetchone()
        (opportunities,) = con.execute("select count(*) from marts.fct_opportunities").fetchone()
    finally:
        con.close()
    month, won, lost, win_rate, deal, cycle, velocity, open_now, open_amount = row
    start = "n/a" if month is None else f"3 months to {month:%Y-%m}"
    lines = [
        f"KPI summary ({opportunities:,} opportunities; closed deals over the {start}):",
        f"  win rate             {_fmt(win_rate, '{:.1%}')}"
        f"  ({won or 0:,} won, {lost or 0:,} lost)",
        f"  average deal size    {_fmt(deal, '{:,.0f}')}",
        f"  sales cycle          {_fmt(cycle, '{:.1f}')} days (average, won deals)",
        f"  open pipeline        {open_now or 0:,} deals, {_fmt(open_amount, '{:,.0f}')}",
        f"  pipeline velocity    {_fmt(velocity, '{:,.0f}')} per day",
        "  bottleneck stage     "
        + (f"{bottleneck[0]} (median {bottleneck[1]:.1f} days)" if bottleneck else "n/a"),
        f"Warehouse: {warehouse}  (query the marts.* tables with any DuckDB client)",
    ]
    return "\n".join(lines)
