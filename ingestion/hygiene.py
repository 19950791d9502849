"""Data-hygiene suites run with Great Expectations 1.x on data frames.

GX 1.x has no working DuckDB SQL datasource, so the rows are read from DuckDB into pandas
and validated there. GX costs seconds to import: it is imported inside the functions that
validate, never at module import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from ingestion.stages import normalize_label
from ingestion.warehouse import RAW_SCHEMA

_EXAMPLES = 5


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, in plain values (no GX objects leak out)."""

    suite: str
    expectation: str
    column: str
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_examples: tuple[Any, ...]
    fix: str

    @property
    def name(self) -> str:
        return f"{self.suite}.{self.expectation}({self.column})"

    def describe(self) -> str:
        if self.success:
            return f"{self.name}: passed on {self.element_count:,} rows"
        shown = ", ".join(repr(v) for v in self.unexpected_examples)
        return (
            f"{self.name}: {self.unexpected_count:,} of {self.element_count:,} rows fail "
            f"(e.g. {shown}). {self.fix}"
        )


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


def opportunities_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The columns the opportunities suite needs, straight from raw via Arrow."""
    return con.execute(f"SELECT opportunity_id, amount, stage FROM {RAW_SCHEMA}.opportunities").df()


def mapped_labels(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The labels of raw.stage_map: the one stage definition the marts use too."""
    rows = con.execute(f"SELECT source_label FROM {RAW_SCHEMA}.stage_map").fetchall()
    return [r[0] for r in rows]


def validate_opportunities(frame: pd.DataFrame, labels: Iterable[str]) -> SuiteResult:
    """The first-cut opportunities suite: ids present and unique, amounts ≥ 0, stages
    mapped (``labels``: the normalised labels that map to a canonical stage)."""
    import great_expectations as gx

    frame = frame.assign(
        stage_label=frame["stage"].map(normalize_label, na_action="ignore"),
    )
    labels = sorted(labels)
    context = _ephemeral_context(gx)
    suite = gx.ExpectationSuite(name="opportunities")
    fixes: dict[tuple[str, str], str] = {}

    def add(expectation: Any, fix: str) -> None:
        suite.add_expectation(expectation)
        fixes[(expectation.expectation_type, expectation.column)] = fix

    add(
        gx.expectations.ExpectColumnValuesToNotBeNull(column="opportunity_id"),
        "Every opportunity needs an opportunity_id; fix the export.",
    )
    add(
        gx.expectations.ExpectColumnValuesToBeUnique(column="opportunity_id"),
        "Each opportunity_id must identify one opportunity.",
    )
    add(
        gx.expectations.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
        "Amounts must be zero or positive; correct the deals in the CRM or the export.",
    )
    add(
        gx.expectations.ExpectColumnValuesToBeInSet(column="stage_label", value_set=labels),
        "Map these stage labels to a canonical stage under stage_labels: in the config "
        "file (e.g. stage_labels: {'Demo Booked': meeting}).",
    )
    result = _validate(context, suite, frame)
    outcomes = []
    for r in result.results:
        cfg = r.expectation_config
        column = cfg.kwargs["column"]
        info = r.result or {}
        examples = info.get("partial_unexpected_counts") or []
        if column == "stage_label":
            # Show the labels as the CRM wrote them, not normalised.
            bad = {v["value"] for v in examples}
            raw = frame.loc[frame["stage_label"].isin(bad), "stage"].drop_duplicates()
            shown = tuple(sorted(raw.tolist()))[:_EXAMPLES]
        else:
            shown = tuple(v["value"] for v in examples[:_EXAMPLES])
        outcomes.append(
            ExpectationOutcome(
                suite="opportunities",
                expectation=cfg.type,
                column="stage" if column == "stage_label" else column,
                success=bool(r.success),
                element_count=int(info.get("element_count", len(frame))),
                unexpected_count=int(info.get("unexpected_count", 0) or 0),
                unexpected_examples=shown,
                fix=fixes[(cfg.type, column)],
            )
        )
    return SuiteResult("opportunities", tuple(outcomes))


def _ephemeral_context(gx: Any) -> Any:
    # No analytics calls home, no progress bars in a scheduled run's logs.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    return context


def _validate(context: Any, suite: Any, frame: pd.DataFrame) -> Any:
    source = context.data_sources.add_pandas(name="crm")
    asset = source.add_dataframe_asset(name=suite.name)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": frame}
    )
    return batch.validate(
        suite,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
    )
