"""Great Expectations execution: ``validate_batch`` runs an entity's suite on one
batch's frame, on one ephemeral GX context per process, built on first use (GX is imported
there, never at module import time: it costs seconds). The Spark runner shares the
expectation naming and the check for rules GX could not evaluate.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ingestion.hygiene.frame import _Source
from ingestion.hygiene.outcomes import Outcome, _label_outcome, _map_outcome
from ingestion.hygiene.rules import (
    LABELS_PARAMETER,
    HygieneError,
    Severity,
    check_columns,
    check_severities,
    checks_for,
    required_flag_columns,
)
from ingestion.schema import ENTITIES
from ingestion.stages import normalize_label

# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------


def validate_batch(
    entity: str,
    frame: pd.DataFrame,
    *,
    labels: Collection[str],
    severities: Mapping[str, Severity] | None = None,
    by_file: bool = False,
) -> Any:
    """Run ``entity``'s suite on one batch's frame (the frame contract: module doc).

    ``labels``: the normalised stage labels that map to a canonical stage.
    ``severities``: rule name → severity, overriding the defaults (ConfigError on
    unknown names).
    ``by_file``: the frame holds the rows of several landing files (consecutive batches
    validated in one pass): the outcomes of each file, by ``_source_file``, each as if
    its rows had been validated alone (uniqueness is judged within a file already).
    """
    checks = checks_for(entity)
    overrides = check_severities(severities or {})
    if "_source_row" not in frame.columns:
        raise HygieneError(f"the {entity} frame has no _source_row column")
    missing = [c for c in required_flag_columns(entity) if c not in frame.columns]
    if missing:
        raise HygieneError(f"the {entity} frame lacks {', '.join(missing)} (frame contract)")
    label_set = sorted({normalize_label(str(x)) for x in labels})
    if not label_set and any(c.rule.name.endswith(".stage_mapped") for c in checks):
        raise HygieneError("labels is empty: pass the stage map's labels")

    source = _Source(ENTITIES[entity], frame)
    check_frame = pd.DataFrame({name: source.check_column(name) for name in check_columns(checks)})
    results = _run_suite(entity, check_frame, {LABELS_PARAMETER: label_set or ["-"]})
    del check_frame

    judged = []
    for check in checks:
        result = results.get(check.rule.name)
        if result is None:
            raise HygieneError(f"GX returned no result for {check.rule.name}")
        judged.append((check, overrides.get(check.rule.name, check.rule.severity), result))

    def outcomes(rows: np.ndarray | None) -> tuple[Outcome, ...]:
        found = []
        for check, severity, result in judged:
            if check.rule.expectation == "expect_column_distinct_values_to_be_in_set":
                found.append(_label_outcome(check, severity, result, source, set(label_set), rows))
            else:
                found.append(_map_outcome(check, severity, result, source, rows))
        return tuple(found)

    whole = outcomes(None)
    if not by_file:
        return whole
    codes = source.file_codes()
    files = source.frame["_source_file"].unique() if "_source_file" in frame.columns else [None]
    return {str(f): outcomes(codes == k) for k, f in enumerate(files)}


# --- GX ----------------------------------------------------------------------------------


@dataclass
class GxState:
    """One ephemeral GX context and its datasource (pandas here, Spark in
    ``ingestion.spark.hygiene``), with each entity's suite and batch definition built on
    first use from the rule catalog."""

    context: Any
    datasource: Any
    suites: dict[str, Any] = field(default_factory=dict)
    batch_definitions: dict[str, Any] = field(default_factory=dict)

    def suite(self, entity: str, name: str) -> Any:
        """The entity's suite (named ``name``) and its whole-frame batch definition."""
        if entity not in self.suites:
            import great_expectations as gx

            suite = gx.ExpectationSuite(name=name)
            for check in checks_for(entity):
                cls = getattr(gx.expectations, expectation_class_name(check.rule.expectation))
                suite.add_expectation(cls(**check.kwargs, meta={"rule": check.rule.name}))
            self.suites[entity] = suite
            asset = self.datasource.add_dataframe_asset(name=entity)
            self.batch_definitions[entity] = asset.add_batch_definition_whole_dataframe("batch")
        return self.suites[entity]


_gx_lock = threading.Lock()
_gx_state: GxState | None = None

_RESULT_FORMAT = {
    "result_format": "COMPLETE",
    # Failing rows come back as positions in the check frame (a RangeIndex), mapped to
    # (_source_file, _source_row) here with numpy. GX's unexpected_index_column_names
    # gives the same pairs but builds them in a Python loop of .at lookups per failing
    # row (~35 µs each: +56 s for 1.5M failing rows in 10M, measured).
    "return_unexpected_index_query": False,
    # The examples are taken here; skips GX's Counter over every unexpected value.
    "partial_unexpected_count": 0,
}


def _gx() -> GxState:
    """One ephemeral context and pandas datasource per process, built on first use."""
    global _gx_state
    if _gx_state is None:
        # No analytics calls home, no progress bars in a scheduled run's logs.
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every pandas batch below 1 GB by hashing all of its rows — twice
        # per validate (get_batch, then again inside validate) — for a batch marker we
        # never read: seconds per million rows. A threshold of 0 skips it.
        pandas_execution_engine.HASH_THRESHOLD = 0
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = {"globally": False}
        _gx_state = GxState(context, context.data_sources.add_pandas(name="crm_hygiene"))
    return _gx_state


def warm_up_in_background() -> None:
    """Import GX and build its context on a thread while the caller goes on: the loader
    starts this before it reads the landing files, which DuckDB does without the GIL, so
    GX's seconds of import overlap the reading instead of following it. Validation waits
    for it (the same lock)."""

    def warm() -> None:
        # A failure here is raised again, with its context, by validation's own call.
        with _gx_lock, contextlib.suppress(Exception):
            _gx()

    if _gx_state is None:
        threading.Thread(target=warm, name="gx-warm-up", daemon=True).start()


def expectation_class_name(expectation: str) -> str:
    """GX's class for an expectation type: expect_column_values_to_be_unique →
    ExpectColumnValuesToBeUnique."""
    return "".join(part.capitalize() for part in expectation.split("_"))


def _run_suite(entity: str, frame: pd.DataFrame, parameters: dict[str, Any]) -> dict[str, Any]:
    """One ``batch.validate`` of the entity's suite; results by rule name."""
    with _gx_lock:
        state = _gx()
        suite = state.suite(entity, f"{entity}_hygiene")
        try:
            # Copy-on-write while GX runs: each column rule's domain is the frame's rows
            # where that column is not null, taken with ``df[mask]``, which deep-copies
            # every column of the frame even when no row is null (most flags and keys);
            # with copy-on-write that copy is lazy and nothing is copied: 15% less CPU
            # on a first load's parts (bench/RESULTS.md). GX only reads the frame.
            with pd.option_context("mode.copy_on_write", True):
                batch = state.batch_definitions[entity].get_batch(
                    batch_parameters={"dataframe": frame}
                )
                validation = batch.validate(
                    suite, result_format=_RESULT_FORMAT, expectation_parameters=parameters
                )
        finally:
            # The engine caches each batch's frame until the next one: drop it now.
            engine = state.datasource.get_execution_engine()
            engine.batch_manager.batch_data_cache.clear()
            engine.batch_manager.reset_batch_cache()
    results: dict[str, Any] = {}
    for r in validation.results:
        name = (r.expectation_config.meta or {}).get("rule")
        raise_on_exception(name, r)
        results[name] = r
    return results


def raise_on_exception(name: str | None, result: Any) -> None:
    """GX reports a rule it could not evaluate as ``success: False`` with an empty
    result; that must not read as "0 failing rows"."""
    info = result.exception_info or {}
    entries = info.values() if "raised_exception" not in info else [info]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            raise HygieneError(
                f"{name}: Great Expectations could not evaluate the rule: "
                f"{entry.get('exception_message')}"
            )
