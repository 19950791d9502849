"""The report's sections: Plotly figures and small tables built from ReportData.

Charts are rendered as <div>s without plotly.js (the page inlines it once). Text that comes
from the data (rep names, channels, stages) is HTML-escaped before it reaches Plotly:
plotly.js reads a few tags in labels (<b>, <a href>, <br>), and a CRM export must not be
able to add a link or markup to the report. Tables are escaped by the template.

Why one module (~1,100 lines): the sections are in page order, each a function of
ReportData built on the formatters and the Block/Section/Table types at the top; one
module keeps the page's order and its look (number formats, escaping, empty states)
reviewable in one place. The data (data.py) and the template are apart.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from markupsafe import Markup

from orchestration.lib.report.data import ReportData
from orchestration.lib.summary import _METHOD_LABELS, SETTLED_MAX_OPEN_SHARE, _verdict

# Stages and series keep their colours from chart to chart.
STAGE_COLOURS = {
    "prospecting": "#9ecae1",
    "qualification": "#6baed6",
    "meeting": "#4292c6",
    "proposal": "#2171b5",
    "negotiation": "#08519c",
    "closed_won": "#31a354",
    "closed_lost": "#de2d26",
}
WON, LOST, CREATED, OPEN = "#31a354", "#de2d26", "#3182bd", "#756bb1"
CONFIGURED, LEARNED = "#fd8d3c", "#3182bd"
BOTTLENECK = "#e6550d"
NO_STAGE = "#bdbdbd"
# A bar chart stays readable up to about this many bars; its table lists every row.
MAX_BARS = 25
# The batch table lists the latest batches; a daily export adds one a day for years.
MAX_BATCHES = 30
_CONFIG = {"displaylogo": False, "responsive": True}
_MARGIN = {"l": 50, "r": 20, "t": 30, "b": 40}
_SPARK_MARGIN = {"l": 48, "r": 8, "t": 4, "b": 22}
# Every chart's look. Set on the figure, plotly validates and deep-copies the whole
# template for each chart (13 ms each, most of the report's time); added to the
# figure's JSON as it is written instead, once converted.
_TEMPLATE = pio.templates["plotly_white"].to_plotly_json()


def money(value: Any) -> str:
    return "n/a" if _missing(value) else f"{value:,.0f}"


def pct(value: Any) -> str:
    return "n/a" if _missing(value) else f"{value:.1%}"


def days(value: Any) -> str:
    return "n/a" if _missing(value) else f"{value:.1f} days"


def number(value: Any, digits: int = 0) -> str:
    return "n/a" if _missing(value) else f"{value:,.{digits}f}"


def ratio(value: Any) -> str:
    return "n/a" if _missing(value) else f"{value:.2f}×"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def label(text: Any) -> str:
    """A category from the data, safe as a Plotly label."""
    return html.escape("n/a" if _missing(text) else str(text))


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    # Columns numeric_from .. numeric_to - 1 are numbers: right-aligned.
    numeric_from: int = 1
    numeric_to: int | None = None

    def is_numeric(self, index: int) -> bool:
        return self.numeric_from <= index < (self.numeric_to or len(self.columns))


@dataclass
class Block:
    """One chart (or table) with its title and a line saying how to read it; ``empty``
    replaces it when the data is not there."""

    title: str
    note: str = ""
    chart: Markup | None = None
    table: Table | None = None
    empty: str | None = None
    wide: bool = False


@dataclass
class Section:
    id: str
    title: str
    intro: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Kpi:
    name: str
    value: str
    detail: str
    definition: str
    chart: Markup | None
    empty: str | None = None


def render(fig: go.Figure, div_id: str, height: int = 320, sparkline: bool = False) -> Markup:
    fig.update_layout(
        height=height,
        # A chart that set its own margin (long rotated labels) keeps it.
        margin=_SPARK_MARGIN if sparkline else {**_MARGIN, **fig.layout.margin.to_plotly_json()},
        showlegend=not sparkline,
        legend={"orientation": "h", "y": -0.18, **fig.layout.legend.to_plotly_json()},
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
    )
    # A fixed div id keeps the report the same from one build to the next.
    config = {**_CONFIG, "displayModeBar": False} if sparkline else _CONFIG
    figure = fig.to_plotly_json()
    figure["layout"]["template"] = _TEMPLATE
    return Markup(
        pio.to_html(
            figure, full_html=False, include_plotlyjs=False, div_id=div_id, config=config,
            validate=False,  # validated as the figure was built; the template is plotly's
        )
    )  # fmt: skip


def missing_text(data: ReportData, *marts: str) -> str | None:
    """Why a block has nothing to show, or None when its marts have rows."""
    absent = [m for m in marts if m not in data.marts]
    if absent:
        return (
            f"Not available: the warehouse has no marts.{', marts.'.join(absent)} (it was "
            f"built by an older version of the pipeline). Run the pipeline again to build it."
        )
    empty = [m for m in marts if m in data.empty_marts]
    if empty:
        return f"Nothing to show yet: marts.{', marts.'.join(empty)} has no rows."
    return None


def _empty_frame(frame: pd.DataFrame | None, what: str) -> str | None:
    if frame is not None and frame.empty:
        return f"Nothing to show: {what}."
    return None


def _block(
    data: ReportData,
    title: str,
    marts: Sequence[str],
    frame_name: str,
    build: Callable[[pd.DataFrame], tuple[Markup | None, Table | None]],
    note: str = "",
    empty_window: str = "no rows in the last 12 months",
    wide: bool = False,
) -> Block:
    reason = missing_text(data, *marts)
    frame = data.frame(frame_name)
    if reason is None:
        reason = _empty_frame(frame, empty_window)
    if reason is not None or frame is None:
        return Block(title, note, empty=reason or "Not available.", wide=wide)
    chart, table = build(frame)
    return Block(title, note, chart=chart, table=table, wide=wide)


def _months(frame: pd.DataFrame, column: str = "month") -> list[str]:
    return [f"{m:%Y-%m}" for m in pd.to_datetime(frame[column])]


# --- headline KPIs -------------------------------------------------------------------------

DEFINITIONS = {
    "win_rate": (
        "Deals won ÷ deals closed (won + lost), counted by the month they closed "
        "(closed_at). Headline: the deals closed over the three months shown; trend: the "
        "same over the three months ending with each month."
    ),
    "avg_deal_size": (
        "Won amount ÷ number of won deals, in the reporting currency, over the same three months."
    ),
    "avg_cycle_days": (
        "Average sales cycle of the won deals: days from created_at to closed_at (when the "
        "deal entered its final outcome), over the same three months."
    ),
    "velocity": (
        "Pipeline velocity, revenue per day: open deals at the end of the month × win "
        "rate × average deal size ÷ average sales cycle, the last three over the deals "
        "closed in the three months ending with that month (kpi_monthly)."
    ),
    "open_amount": (
        "Open pipeline: the opportunities open at the end of the month (at as_of for the "
        "current month) and the sum of their amounts in the reporting currency."
    ),
}


def headline(data: ReportData) -> list[Kpi]:
    h = data.headline
    reason = missing_text(data, "kpi_monthly", "fct_opportunities")
    if reason is not None or not h:
        return [
            Kpi(name, "n/a", "", DEFINITIONS[key], None, reason or "Not available.")
            for key, name in _KPI_NAMES.items()
        ]
    trend = data.frame("trend")
    window = (
        "n/a"
        if h["window_end"] is None
        else f"3 months to {h['window_end']:%Y-%m}"
        + ("" if h["window_end"] == h["month"] else ", the last with closed deals")
    )
    values = {
        "win_rate": (pct(h["win_rate"]), f"{h['won'] or 0:,} won, {h['lost'] or 0:,} lost"),
        "avg_deal_size": (money(h["avg_deal_size"]), f"won deals, {window}"),
        "avg_cycle_days": (days(h["avg_cycle_days"]), f"won deals, {window}"),
        "velocity": (f"{money(h['velocity'])} / day", f"month of {h['month']:%Y-%m}"),
        "open_amount": (money(h["open_amount"]), f"{h['open_count'] or 0:,} open deals"),
    }
    formats = {
        "win_rate": ".1%",
        "avg_deal_size": ",.0f",
        "avg_cycle_days": ".1f",
        "velocity": ",.0f",
        "open_amount": ",.0f",
    }
    kpis = []
    for key, name in _KPI_NAMES.items():
        value, detail = values[key]
        chart = None
        if trend is not None and not trend.empty:
            column = "open_amount_end" if key == "open_amount" else key
            fig = go.Figure(
                go.Scatter(
                    x=_months(trend),
                    y=trend[column],
                    mode="lines+markers",
                    line={"color": CREATED, "width": 2},
                    marker={"size": 4},
                    hovertemplate=f"%{{x}}: %{{y:{formats[key]}}}<extra></extra>",
                    connectgaps=False,
                )
            )
            fig.update_xaxes(showgrid=False, tickfont={"size": 9}, nticks=4)
            fig.update_yaxes(
                showgrid=False, tickfont={"size": 9}, nticks=4, tickformat=formats[key]
            )
            chart = render(fig, f"kpi-{key}", height=110, sparkline=True)
        kpis.append(Kpi(name, value, detail, DEFINITIONS[key], chart))
    return kpis


_KPI_NAMES = {
    "win_rate": "Win rate",
    "avg_deal_size": "Average deal size",
    "avg_cycle_days": "Sales cycle",
    "velocity": "Pipeline velocity",
    "open_amount": "Open pipeline",
}


# --- funnel --------------------------------------------------------------------------------


def funnel_section(data: ReportData) -> Section:
    section = Section(
        "funnel",
        "Funnel",
        "How deals move through the stages: conversion, time in each stage, regressions.",
    )

    def funnel(frame: pd.DataFrame) -> tuple[Markup, Table]:
        reached = frame["reached"].tolist()
        stages = [label(s) for s in frame["stage"]]
        fig = go.Figure(
            go.Funnel(
                y=stages,
                x=reached,
                textinfo="value+percent previous",
                textfont={"size": 13},
                showlegend=False,
                marker={"color": [STAGE_COLOURS.get(s, OPEN) for s in frame["stage"]]},
            )
        )
        rows = []
        for i, (stage, n) in enumerate(zip(frame["stage"], reached, strict=True)):
            nxt = reached[i + 1] if i + 1 < len(reached) else None
            rate = None if nxt is None or not n else nxt / n
            first = reached[0] if reached[0] else None
            rows.append(
                [
                    str(stage),
                    f"{int(n):,}",
                    "" if nxt is None else pct(rate),
                    pct(None if first is None else n / first),
                ]
            )
        table = Table(["stage", "reached", "to next stage", "from first stage"], rows)
        return render(fig, "chart-funnel", height=340), table

    section.blocks.append(
        _block(
            data,
            "Stage-to-stage conversion, cohorts of the last 12 months",
            ["fct_funnel"],
            "funnel",
            funnel,
            note="Opportunities created in the last 12 months (fct_funnel) that reached each "
            "stage; skipped stages count as passed, the last step is won. Recent cohorts "
            "still have open deals, so their later steps are still filling.",
        )
    )

    def cohorts(frame: pd.DataFrame) -> tuple[Markup, None]:
        pivot = frame.pivot_table(
            index="stage_order",
            columns="cohort_month",
            values="conversion_rate_to_next",
            aggfunc="first",
            dropna=False,
        )
        names = frame.drop_duplicates("stage_order").set_index("stage_order")["stage"]
        z = [[None if _missing(v) else float(v) for v in row] for row in pivot.to_numpy()]
        fig = go.Figure(
            go.Heatmap(
                z=z,
                x=[f"{m:%Y-%m}" for m in pd.to_datetime(pivot.columns)],
                y=[f"{label(names[o])} → next" for o in pivot.index],
                colorscale="Blues",
                zmin=0,
                zmax=1,
                texttemplate="%{z:.0%}",
                hovertemplate="cohort %{x}, %{y}: %{z:.1%}<extra></extra>",
                colorbar={"tickformat": ".0%"},
            )
        )
        fig.update_yaxes(autorange="reversed")
        return render(fig, "chart-funnel-cohorts", height=340), None

    section.blocks.append(
        _block(
            data,
            "Conversion to the next step, by cohort month",
            ["fct_funnel"],
            "funnel_cohorts",
            cohorts,
            note="conversion_rate_to_next of fct_funnel: reached of the next step ÷ reached "
            "of this one, for the deals created in each month. The latest cohorts still "
            "have open deals: their later steps are still filling.",
        )
    )

    def durations(frame: pd.DataFrame) -> tuple[Markup, Table]:
        stages = list(frame["stage"])
        colours = [BOTTLENECK if s in data.bottleneck else "#9ecae1" for s in stages]
        fig = go.Figure(
            [
                go.Bar(
                    x=[label(s) for s in stages],
                    y=frame["median_days"],
                    name="median days",
                    marker={"color": colours},
                    hovertemplate="%{x}: median %{y:.1f} days<extra></extra>",
                ),
                go.Scatter(
                    x=[label(s) for s in stages],
                    y=frame["p90_days"],
                    name="90th percentile",
                    mode="markers",
                    marker={"symbol": "line-ew-open", "size": 18, "color": "#636363"},
                    hovertemplate="%{x}: 90th percentile %{y:.1f} days<extra></extra>",
                ),
            ]
        )
        fig.update_yaxes(title_text="days in stage")
        rows = [
            [
                str(r.stage) + (" (bottleneck)" if r.stage in data.bottleneck else ""),
                f"{int(r.completed_intervals):,}",
                number(r.median_days, 1),
                number(r.avg_days, 1),
                number(r.p90_days, 1),
                f"{int(r.current_count):,}",
                number(r.avg_current_age_days, 1),
            ]
            for r in frame.itertuples()
        ]
        table = Table(
            [
                "stage",
                "completed",
                "median days",
                "average",
                "90th pct",
                "in it now",
                "their age (days)",
            ],
            rows,
        )
        return render(fig, "chart-stage-duration"), table

    bottleneck = (
        f"The bottleneck, in orange, is {', '.join(data.bottleneck)}: the open stage with "
        f"the highest median time, over stages with at least 10 completed intervals."
        if data.bottleneck
        else "No bottleneck is named yet: no open stage has 10 completed intervals."
    )
    section.blocks.append(
        _block(
            data,
            "Time in stage",
            ["kpi_stage_duration", "fct_stage_history"],
            "durations",
            durations,
            note=f"Days spent in each open stage by completed intervals (kpi_stage_duration). "
            f"{bottleneck}",
            empty_window="no open stage in the stage history",
        )
    )

    def regressions(frame: pd.DataFrame) -> tuple[Markup, Table]:
        moves = [
            f"{label(a)} → {label(b)}"
            for a, b in zip(frame["from_stage"], frame["to_stage"], strict=True)
        ]
        fig = go.Figure(
            go.Bar(
                y=moves,
                x=frame["regressions"],
                orientation="h",
                marker={"color": LOST},
                hovertemplate="%{y}: %{x:,}<extra></extra>",
                showlegend=False,
            )
        )
        fig.update_yaxes(autorange="reversed")
        fig.update_xaxes(title_text="regressions")
        height = max(200, 40 + 28 * len(moves))
        rows = [
            [str(r.from_stage), str(r.to_stage), f"{int(r.regressions):,}"]
            for r in frame.itertuples()
        ]
        return render(fig, "chart-regressions", height=height), Table(
            ["from", "to", "regressions"], rows, numeric_from=2
        )

    section.blocks.append(
        _block(
            data,
            "Regressions in the last 12 months",
            ["fct_stage_history"],
            "regressions",
            regressions,
            note="Moves from an open stage back to an earlier open stage (is_regression in "
            "fct_stage_history), by the time of the move.",
            empty_window="no deal moved back to an earlier stage in the last 12 months",
        )
    )
    return section


# --- pipeline ------------------------------------------------------------------------------


def pipeline_section(data: ReportData) -> Section:
    section = Section(
        "pipeline",
        "Pipeline",
        "What is open, day by day, and how it moved each month.",
    )

    def daily(frame: pd.DataFrame) -> tuple[Markup, None]:
        fig = go.Figure()
        for stage, rows in frame.groupby("stage", sort=False):
            name, colour = label(stage), STAGE_COLOURS.get(str(stage), NO_STAGE)
            if data.open_stages is not None and stage not in data.open_stages | {"no stage"}:
                # Open then, in a closed stage: a deal lost and later revived (or won and
                # later lost). Not the stage's own colour: it is not lost (won) pipeline.
                name, colour = f"{name} (reopened later)", NO_STAGE
            fig.add_trace(
                go.Scatter(
                    x=rows["snapshot_date"],
                    y=rows["open_amount"],
                    name=name,
                    stackgroup="open",
                    mode="lines",
                    line={"width": 0.5, "color": colour},
                    hovertemplate=f"{name}: %{{y:,.0f}}<extra></extra>",
                )
            )
        fig.update_layout(hovermode="x unified")
        fig.update_yaxes(title_text="open amount")
        return render(fig, "chart-daily-pipeline", height=360), None

    section.blocks.append(
        _block(
            data,
            "Open pipeline by stage, daily (last 365 days)",
            ["fct_pipeline_daily_snapshot"],
            "daily",
            daily,
            note="Amount of the opportunities open at the end of each day, under the stage "
            "they held then (fct_pipeline_daily_snapshot). A deal lost and later revived "
            "counts as open while it sat in closed_lost (one won and later lost, in "
            "closed_won): shown in grey, “reopened later”.",
            wide=True,
        )
    )

    def waterfall(frame: pd.DataFrame) -> tuple[Markup, None]:
        first, last = frame.iloc[0], frame.iloc[-1]
        steps = [
            (f"open {_prev_month(first.month):%Y-%m}", first.opening_amount, "absolute"),
            ("created", frame.created_amount.sum(), "relative"),
            ("won", -frame.won_amount.sum(), "relative"),
            ("lost", -frame.lost_amount.sum(), "relative"),
            (f"open {pd.Timestamp(last.month):%Y-%m}", last.closing_amount, "total"),
        ]
        fig = go.Figure(
            go.Waterfall(
                x=[name for name, _, _ in steps],
                y=[float(v) for _, v, _ in steps],
                measure=[m for _, _, m in steps],
                increasing={"marker": {"color": CREATED}},
                decreasing={"marker": {"color": LOST}},
                totals={"marker": {"color": OPEN}},
                texttemplate="%{y:,.0f}",
                hovertemplate="%{x}: %{y:,.0f}<extra></extra>",
                showlegend=False,
            )
        )
        return render(fig, "chart-waterfall", height=360), None

    section.blocks.append(
        _block(
            data,
            "Pipeline waterfall, last 12 months",
            ["kpi_pipeline_waterfall"],
            "waterfall",
            waterfall,
            note="Open amount at the start of the window, plus deals created, minus deals "
            "won and lost, equals the open amount at its end (kpi_pipeline_waterfall; "
            "opening + created − won − lost = closing holds every month).",
        )
    )

    def monthly(frame: pd.DataFrame) -> tuple[Markup, Table]:
        months = _months(frame)
        fig = go.Figure(
            [
                go.Bar(
                    x=months, y=frame["created_amount"], name="created", marker={"color": CREATED}
                ),
                go.Bar(x=months, y=-frame["won_amount"], name="won", marker={"color": WON}),
                go.Bar(x=months, y=-frame["lost_amount"], name="lost", marker={"color": LOST}),
                go.Scatter(
                    x=months,
                    y=frame["closing_amount"],
                    name="open at month end",
                    mode="lines+markers",
                    line={"color": OPEN},
                ),
            ]
        )
        fig.update_layout(barmode="relative")
        rows = [
            [
                f"{pd.Timestamp(r.month):%Y-%m}",
                money(r.opening_amount),
                money(r.created_amount),
                money(r.won_amount),
                money(r.lost_amount),
                money(r.closing_amount),
                f"{int(r.closing_count):,}",
            ]
            for r in frame.itertuples()
        ]
        table = Table(
            ["month", "opening", "+ created", "− won", "− lost", "= closing", "open deals"],
            rows,
        )
        return render(fig, "chart-waterfall-monthly"), table

    section.blocks.append(
        _block(
            data,
            "Month by month",
            ["kpi_pipeline_waterfall"],
            "waterfall",
            monthly,
            note="Amount created (up), won and lost (down) each month, and what stayed open.",
        )
    )
    return section


def _prev_month(month: Any) -> date:
    m = pd.Timestamp(month)
    return date(m.year - 1, 12, 1) if m.month == 1 else date(m.year, m.month - 1, 1)


# --- forecast ------------------------------------------------------------------------------


def forecast_section(data: ReportData) -> Section:
    section = Section(
        "forecast",
        "Forecast",
        "Won amount expected by close month, with the configured stage probabilities and "
        "with those learned from the deals closed in the lookback window, beside how each "
        "method did at past month-ends.",
    )

    def forecast(frame: pd.DataFrame) -> tuple[Markup, Table]:
        months = _months(frame)
        fig = go.Figure(
            [
                go.Bar(
                    x=months,
                    y=frame["forecast_configured"],
                    name="configured",
                    marker={"color": CONFIGURED},
                    hovertemplate="%{x} configured: %{y:,.0f}<extra></extra>",
                ),
                go.Bar(
                    x=months,
                    y=frame["forecast_learned"],
                    name="learned",
                    marker={"color": LEARNED},
                    hovertemplate="%{x} learned: %{y:,.0f}<extra></extra>",
                ),
            ]
        )
        fig.update_layout(barmode="group")
        fig.update_yaxes(title_text="won amount expected")
        rows = [
            [
                f"{pd.Timestamp(r.month):%Y-%m}",
                money(r.forecast_configured),
                money(r.forecast_learned),
                money(r.won_amount_to_date),
                f"{int(r.open_count):,}",
                money(r.open_amount),
            ]
            for r in frame.itertuples()
        ]
        table = Table(
            ["month", "configured", "learned", "won so far", "open deals", "open amount"], rows
        )
        return render(fig, "chart-forecast"), table

    section.blocks.append(
        _block(
            data,
            "Forecast by expected close month",
            ["kpi_forecast_monthly"],
            "forecast",
            forecast,
            note="Won so far plus the open deals expected to close in the month, weighted by "
            "the probability of the stage they hold (kpi_forecast_monthly). An overdue close "
            "date counts in the month of as_of.",
            empty_window="no open deal and nothing won this month",
        )
    )

    def backtest(frame: pd.DataFrame) -> tuple[Markup, Table]:
        fig = go.Figure()
        for method, colour in (("configured", CONFIGURED), ("empirical", LEARNED)):
            rows = frame[frame["method"] == method]
            fig.add_trace(
                go.Scatter(
                    x=pd.to_datetime(rows["month"]),
                    y=rows["abs_pct_error"],
                    name=_METHOD_LABELS[method],
                    mode="lines+markers",
                    line={"color": colour},
                    hovertemplate=f"%{{x}} {_METHOD_LABELS[method]}: %{{y:.1%}}<extra></extra>",
                )
            )
        fig.update_yaxes(title_text="absolute % error", tickformat=".0%", rangemode="tozero")
        settled = frame["still_open_amount"] <= SETTLED_MAX_OPEN_SHARE * frame["open_amount"]
        unsettled = frame[~settled]
        if not unsettled.empty:
            # Their deals are still being decided: shown, but not what to judge by.
            start = pd.Timestamp(unsettled["month"].min()) - pd.Timedelta(days=15)
            end = pd.Timestamp(frame["month"].max()) + pd.Timedelta(days=15)
            fig.add_vrect(
                x0=start,
                x1=end,
                fillcolor="#bbbbbb",
                opacity=0.2,
                line_width=0,
                annotation_text="not settled yet",
                annotation_position="top left",
            )
        mape = data.frame("backtest_mape")
        rows = []
        mapes: dict[str, float] = {}
        by_method = {} if mape is None else {r.method: r for r in mape.itertuples()}
        for method, name in _METHOD_LABELS.items():
            r = by_method.get(method)
            months = 0 if r is None else int(r[3])
            value = None if r is None or not months else float(r[2])
            if value is not None:
                mapes[name] = value
            rows.append([name, pct(value), f"{months:,}"])
        table = Table(
            ["method", "mean absolute % error", "settled months"],
            rows,
            caption=_verdict(mapes),
        )
        return render(fig, "chart-backtest"), table

    section.blocks.append(
        _block(
            data,
            "Backtest: error of each method at past month-ends",
            ["kpi_forecast_backtest"],
            "backtest",
            backtest,
            note=f"For each past month, the forecast made at its end against what those deals "
            f"brought by as_of (kpi_forecast_backtest; abs_pct_error). The mean counts only "
            f"settled months, whose month-end pipeline is at most "
            f"{SETTLED_MAX_OPEN_SHARE:.0%} still open: later months are still filling and "
            f"every method looks as if it over-predicted. The table's mean is over every "
            f"settled month of the history, as in the run summary; the chart shows the last "
            f"12 months.",
            empty_window="no past month-end to test against yet",
        )
    )
    return section


# --- reps ----------------------------------------------------------------------------------


def reps_section(data: ReportData) -> Section:
    section = Section(
        "reps",
        "Reps",
        "Each rep's deals closed over the last 12 months, quota attainment over the same "
        "months, and whether the open pipeline covers what is left of this month's quota.",
    )

    def reps(frame: pd.DataFrame) -> tuple[Markup, Table]:
        top = frame.head(MAX_BARS)  # by won amount
        names = [label(r) for r in top["rep"]]
        fig = go.Figure(
            [
                go.Bar(
                    x=names,
                    y=top["attainment"],
                    name="attainment (12 months)",
                    marker={"color": WON},
                    hovertemplate="%{x}: attainment %{y:.0%}<extra></extra>",
                ),
                go.Bar(
                    x=names,
                    y=top["win_rate"],
                    name="win rate",
                    marker={"color": CREATED},
                    hovertemplate="%{x}: win rate %{y:.0%}<extra></extra>",
                ),
            ]
        )
        fig.update_layout(barmode="group")
        fig.update_yaxes(tickformat=".0%")
        # Rotated names reach left of the first bar: room for them.
        fig.update_layout(margin={"l": 110}, legend={"y": 1.15})
        fig.update_xaxes(tickangle=-35, automargin=True)
        rows = [
            [
                str(r.rep),
                f"{int(r.won):,} / {int(r.won + r.lost):,}",
                pct(r.win_rate),
                money(r.avg_deal_size),
                number(r.avg_cycle_days, 1),
                number(r.touchpoints_per_win, 1),
                pct(r.attainment),
                _coverage(r.coverage_ratio, r.remaining_quota),
                _coverage(r.weighted_coverage_ratio, r.remaining_quota),
            ]
            for r in frame.itertuples()
        ]
        table = Table(
            [
                "rep",
                "won / closed",
                "win rate",
                "avg deal size",
                "cycle (days)",
                "touchpoints per win",
                "attainment",
                "coverage",
                "weighted coverage",
            ],
            rows,
        )
        return render(fig, "chart-reps", height=360), table

    section.blocks.append(
        _block(
            data,
            "Rep performance",
            ["kpi_rep_monthly", "kpi_pipeline_coverage"],
            "reps",
            reps,
            note="From kpi_rep_monthly and kpi_pipeline_coverage. Attainment: won amount ÷ "
            "quota over the quota months of the window. Coverage (month of as_of): open "
            "amount expected to close this month ÷ the quota still to win (“quota "
            "met” when nothing is left to win); weighted: the "
            f"expected (probability-weighted) amount ÷ the same. The chart shows the "
            f"{MAX_BARS} reps with the largest won amount, the table every rep.",
            empty_window="no rep closed, held or was given a quota for a deal in the last "
            "12 months",
            wide=True,
        )
    )
    return section


def _coverage(value: Any, remaining_quota: Any) -> str:
    """A coverage ratio, or why there is none: the month's quota is already won, or the
    rep has no quota this month."""
    if not _missing(value):
        return ratio(value)
    if _missing(remaining_quota):
        return "no quota"
    return "quota met" if remaining_quota == 0 else "n/a"


# --- leads and after-sales -----------------------------------------------------------------


def leads_section(data: ReportData) -> Section:
    section = Section(
        "leads",
        "Leads and after-sales",
        "Where deals come from, and whether won customers are looked after.",
    )

    def leads(frame: pd.DataFrame) -> tuple[Markup, Table]:
        top = frame.head(MAX_BARS)  # by leads
        channels = [label(c) for c in top["channel"]]
        fig = go.Figure(
            [
                go.Bar(x=channels, y=top["leads"], name="leads", marker={"color": "#bdd7e7"}),
                go.Bar(
                    x=channels, y=top["qualified"], name="qualified", marker={"color": "#6baed6"}
                ),
                go.Bar(
                    x=channels, y=top["converted"], name="converted", marker={"color": "#2171b5"}
                ),
                go.Bar(x=channels, y=top["won"], name="won", marker={"color": WON}),
            ]
        )
        fig.update_layout(barmode="group")
        rows = [
            [
                str(r.channel),
                f"{int(r.leads):,}",
                pct(r.qualification_rate),
                pct(r.conversion_rate),
                f"{int(r.won):,}",
                money(r.won_amount),
            ]
            for r in frame.itertuples()
        ]
        table = Table(
            [
                "channel",
                "leads",
                "qualified (% of leads)",
                "converted (% of leads)",
                "won deals",
                "won amount",
            ],
            rows,
        )
        return render(fig, "chart-leads"), table

    section.blocks.append(
        _block(
            data,
            "Leads by channel, cohorts of the last 12 months",
            ["kpi_lead_funnel"],
            "leads",
            leads,
            note="Leads created in the last 12 months by channel, and how many were qualified "
            "and converted by as_of and became won deals (kpi_lead_funnel). The chart shows "
            f"the {MAX_BARS} channels with the most leads, the table every channel.",
        )
    )

    def post_sale(frame: pd.DataFrame) -> tuple[Markup, Table]:
        months = _months(frame)
        fig = go.Figure(
            [
                go.Bar(
                    x=months, y=frame["won_count"], name="won deals", marker={"color": "#c7e9c0"}
                ),
                go.Bar(
                    x=months,
                    y=frame["followed_up_count"],
                    name="followed up",
                    marker={"color": WON},
                ),
                go.Scatter(
                    x=months,
                    y=frame["followed_up_share"],
                    name="share followed up",
                    yaxis="y2",
                    mode="lines+markers",
                    line={"color": "#636363"},
                    hovertemplate="%{x}: %{y:.0%}<extra></extra>",
                ),
            ]
        )
        fig.update_layout(
            barmode="overlay",
            yaxis2={
                "overlaying": "y",
                "side": "right",
                "tickformat": ".0%",
                "range": [0, 1],
                "dtick": 0.25,
                "showgrid": False,
            },
        )
        rows = [
            [
                f"{pd.Timestamp(r.month):%Y-%m}",
                f"{int(r.won_count):,}",
                pct(r.followed_up_share),
                number(r.median_days_to_first_activity, 1),
                f"{int(r.onboarding_count):,}",
                f"{int(r.renewal_count):,}",
            ]
            for r in frame.itertuples()
        ]
        table = Table(
            [
                "month",
                "won",
                "share followed up",
                "median days to first activity",
                "onboarded",
                "renewed",
            ],
            rows,
        )
        return render(fig, "chart-post-sale"), table

    section.blocks.append(
        _block(
            data,
            "After-sales follow-up by month of the win",
            ["kpi_post_sale"],
            "post_sale",
            post_sale,
            note="Won deals with an activity on the deal within the follow-up window after "
            "the win (forecast.follow_up_days, default 30), from kpi_post_sale. The latest "
            "wins are still inside their window, so the last month's share can still rise.",
        )
    )
    return section


# --- data quality --------------------------------------------------------------------------


def quality_section(data: ReportData) -> Section:
    section = Section(
        "quality",
        "Data quality",
        "What the hygiene gate and the dbt tests checked in the run, what the gate set "
        "aside, and which export batches the numbers include.",
    )
    checks = data.frame("checks")
    if checks is None:
        section.blocks.append(
            Block("Checks of the run", empty="No run has recorded its checks in this warehouse.")
        )
    else:
        failed = checks[~checks["passed"].astype(bool)]
        rows = [
            [
                str(r.entity),
                str(r.rule),
                "passed" if r.passed else ("failed" if r.severity == "error" else "warning"),
                str(r.severity),
                f"{int(r.failing_rows):,}",
                "" if _missing(r.message) else str(r.message),
            ]
            for r in pd.concat([failed, checks[checks["passed"].astype(bool)]]).itertuples()
        ]
        passed = len(checks) - len(failed)
        nothing_new = (
            " This run found no new export file, so only the landing checks ran; each "
            "batch's rules ran in the run that loaded it (quality.validation_results)."
            if data.run_files == 0
            else ""
        )
        section.blocks.append(
            Block(
                "Checks of the run",
                note=f"{passed:,} of {len(checks):,} rules passed in run {data.run.run_id} "
                f"(quality.validation_results); failures first. A failed error rule "
                f"quarantines its rows, or rejects its batch.{nothing_new}",
                table=Table(
                    ["entity", "rule", "status", "severity", "failing rows", "message"],
                    rows,
                    numeric_from=4,
                    numeric_to=5,
                ),
                wide=True,
            )
        )
    section.blocks.append(_dbt_tests_block(data))
    section.blocks.append(_quarantine_block(data))
    section.blocks.append(_batches_block(data))
    return section


# dbt's statuses of a test, the worst first.
_DBT_ORDER = {"error": 0, "fail": 1, "warn": 2, "skipped": 3, "pass": 4}


def _dbt_tests_block(data: ReportData) -> Block:
    title = "dbt tests of the models"
    found = data.dbt_tests
    if found is None or not found.tests:
        return Block(
            title,
            wide=True,
            empty="No dbt test results beside the warehouse: dbt_target/run_results.json is "
            "missing (no run has reached dbt with this warehouse yet) or unreadable.",
        )
    tests = sorted(found.tests, key=lambda t: (_DBT_ORDER.get(t.status, 0), t.name))
    counts = {status: sum(t.status == status for t in tests) for status in _DBT_ORDER}
    others = [f"{counts[s]:,} {s}" for s in ("warn", "fail", "error", "skipped") if counts[s]]
    when = "" if found.generated_at is None else f" at {found.generated_at:%Y-%m-%d %H:%M} UTC"
    note = (
        f"{counts['pass']:,} of {len(tests):,} dbt tests passed"
        + (f" ({', '.join(others)})" if others else "")
        + f" in the latest dbt build{when} (dbt_target/run_results.json). A failing test "
        "stops the marts downstream of it; a warning (severity warn) does not."
        + (
            " The tests of the staging views were not rerun: no batch was published, and "
            "the stage map and the dbt project are unchanged, since a build passed them."
            if found.staging_not_rerun
            else ""
        )
    )
    problems = [t for t in tests if t.status != "pass"]
    if not problems:
        return Block(title, note=note, wide=True, empty="Every dbt test passed.")
    rows = [
        [
            t.name,
            t.status,
            "" if t.failures is None else f"{int(t.failures):,}",
            "" if not t.message else str(t.message).strip().splitlines()[0],
        ]
        for t in problems
    ]
    return Block(
        title,
        note=note + " Tests that did not pass:",
        table=Table(
            ["test", "status", "failing rows", "message"], rows, numeric_from=2, numeric_to=3
        ),
        wide=True,
    )


def _quarantine_block(data: ReportData) -> Block:
    frame = data.frame("quarantine")
    title = "Quarantined rows by rule"
    if frame is None:
        return Block(title, empty="The warehouse has no quality.quarantine table.")
    if frame.empty:
        return Block(
            title,
            note="quality.quarantine",
            empty="No row has been quarantined: every row of every published batch passed "
            "the row-level error rules.",
        )
    names = [f"{label(e)}: {label(r)}" for e, r in zip(frame["entity"], frame["rule"], strict=True)]
    fig = go.Figure(
        go.Bar(
            y=names,
            x=frame["rows"],
            orientation="h",
            marker={"color": LOST},
            hovertemplate="%{y}: %{x:,} rows<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_yaxes(autorange="reversed")
    rows = [
        [str(r.entity), str(r.rule), f"{int(r.rows):,}", f"{int(r.rows_this_run):,}"]
        for r in frame.itertuples()
    ]
    return Block(
        title,
        note="Rows held back in quality.quarantine with the rules they failed (a row failing "
        "two rules counts under each): select * from quality.quarantine.",
        chart=render(fig, "chart-quarantine", height=max(200, 40 + 28 * len(names))),
        table=Table(["entity", "rule", "rows", "in this run"], rows, numeric_from=2),
    )


def _batches_block(data: ReportData) -> Block:
    frame = data.frame("batches")
    title = "Batches included"
    if frame is None or frame.empty:
        return Block(title, empty="No batch has been loaded into this warehouse.")
    freshness = data.frame("freshness")
    note = "Export batches loaded (quality.ingestion_log); the marts include the published ones."
    if len(frame) > MAX_BATCHES:
        note += f" The latest {MAX_BATCHES} of {len(frame):,} are listed."
        frame = frame.tail(MAX_BATCHES)
    if freshness is not None and not freshness.empty:
        f = freshness.iloc[0]
        state = "passed" if f.success else f"failed ({f.severity})"
        note += f" Freshness at as_of: {f.observed} — {state}."
    rows = [
        [
            str(r.batch_id),
            f"{int(r.files_published):,}",
            f"{int(r.files_rejected):,}",
            f"{int(r.loaded_rows):,}",
            f"{int(r.quarantined_rows):,}",
            f"{pd.Timestamp(r.first_loaded_at):%Y-%m-%d %H:%M}",
        ]
        for r in frame.itertuples()
    ]
    return Block(
        title,
        note=note,
        table=Table(
            [
                "batch",
                "files published",
                "files rejected",
                "rows loaded",
                "quarantined",
                "loaded at (UTC)",
            ],
            rows,
        ),
    )


def sections(data: ReportData) -> list[Section]:
    return [
        funnel_section(data),
        pipeline_section(data),
        forecast_section(data),
        reps_section(data),
        leads_section(data),
        quality_section(data),
    ]


__all__ = ["Block", "Kpi", "Section", "Table", "headline", "sections"]
