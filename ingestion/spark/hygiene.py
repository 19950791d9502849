"""The hygiene gate on Spark: the rule catalog of ingestion.hygiene, run by Great
Expectations' Spark execution engine on a Spark DataFrame.

The frame contract is the DuckDB runner's (ingestion.hygiene, module doc), as a Spark
DataFrame. The derived check columns (``<c>__norm``, ``<c>__if_closed``, ...) are the same
derivations written as Spark SQL expressions, so the suite (the same expectations with the
same arguments) sees the same check frame. Nothing is collected to the driver but what a
message needs: each failing row's lineage and example columns (GX's
``unexpected_index_column_names``) and the distinct stage labels.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

# The shared seam with the DuckDB gate, imported under the names this module's code uses.
from ingestion.hygiene.gx import GxState, expectation_class_name, raise_on_exception
from ingestion.hygiene.outcomes import Outcome, mask_value, row_reference
from ingestion.hygiene.rules import (
    CONFIG_HINT,
    EXAMPLES,
    LABELS_PARAMETER,
    Check,
    HygieneError,
    Severity,
    check_columns,
    check_severities,
    checks_for,
    required_flag_columns,
)
from ingestion.schema import ENTITIES, EXPORT_LINEAGE, Entity
from ingestion.stages import normalize_label

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_ROW_ID = ("_source_file", "_source_row")


def _q(name: str) -> str:
    return f"`{name}`"


def _label_sql(expr: str) -> str:
    """ingestion.stages.normalize_label in Spark SQL: lower case, runs of whitespace one
    space, trimmed."""
    return f"lower(trim(regexp_replace({expr}, '\\\\s+', ' ')))"


def _strip_sql(expr: str) -> str:
    """Python's str.strip(): whitespace off both ends."""
    return f"regexp_replace({expr}, '^\\\\s+|\\\\s+$', '')"


def _check_expr(entity: Entity, name: str, frame_columns: set[str]) -> str:
    """The Spark SQL of one check-frame column (ingestion.hygiene.frame._Source._derive)."""
    base, _, suffix = name.partition("__")

    def col(c: str) -> str:
        if c in frame_columns:
            return _q(c)
        type_ = {"string": "string", "timestamp": "timestamp", "date": "date"}.get(
            entity.column(c).type if c in entity.column_names else "string", "double"
        )
        return f"cast(null as {type_})"

    def flag(c: str, default: bool) -> str:
        return (
            f"coalesce({_q(c)}, {str(default).lower()})"
            if c in frame_columns
            else (str(default).lower())
        )

    if name == "_source_file":
        # Uniqueness is per landing file (a frame may hold several batches).
        return f"coalesce({col(name)}, '')"
    if not suffix:
        return col(name)
    if suffix == "in_file":
        return (
            f"CASE WHEN {col(base)} IS NULL THEN NULL ELSE "
            f"concat(coalesce({col('_source_file')}, ''), '\\u001f', {col(base)}) END"
        )
    if suffix in ("parses", "known"):
        return flag(name, True)
    if suffix == "conflicting":
        return flag(name, False)
    if suffix == "if_not_conflicting":
        return f"CASE WHEN {flag('key__conflicting', False)} THEN NULL ELSE {col(base)} END"
    if suffix == "first_day":
        return f"({col(base)} IS NULL OR dayofmonth({col(base)}) = 1)"
    if suffix == "norm":
        return f"lower({_strip_sql(col(base))})"
    if suffix == "lower":
        return f"lower({col(base)})"
    if suffix == "label":
        return _label_sql(col(base))
    if suffix == "if_closed":
        return f"CASE WHEN {flag('is_closed', False)} THEN {col(base)} END"
    if suffix == "date":
        return f"cast(date_trunc('DAY', {col(base)}) as timestamp)"
    if suffix == "not_duplicated":
        email = f"lower({_strip_sql(col(base))})"
        in_batch = f"({email} IS NOT NULL AND count(1) OVER (PARTITION BY {email}) > 1)"
        return f"NOT ({in_batch} OR {flag(f'{base}__seen_before', False)})"
    raise AssertionError(name)


_lock = threading.Lock()
_state: GxState | None = None


def _gx() -> GxState:
    """One ephemeral context with a Spark datasource per process (GX imports slowly)."""
    global _state
    if _state is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = {"globally": False}
        # persist=False: GX would cache each batch; the loader checkpoints its frames.
        datasource = context.data_sources.add_spark(name="crm_hygiene_spark", persist=False)
        _state = GxState(context, datasource)
    return _state


def validate_frame(
    entity: str,
    frame: DataFrame,
    *,
    labels: Collection[str],
    severities: Mapping[str, Severity] | None = None,
) -> tuple[Outcome, ...]:
    """Run ``entity``'s suite on one batch's Spark frame; outcomes as the DuckDB runner
    gives them (ingestion.hygiene.validate_batch)."""
    checks = checks_for(entity)
    overrides = check_severities(severities or {})
    columns = set(frame.columns)
    if "_source_row" not in columns:
        raise HygieneError(f"the {entity} frame has no _source_row column")
    missing = [c for c in required_flag_columns(entity) if c not in columns]
    if missing:
        raise HygieneError(f"the {entity} frame lacks {', '.join(missing)} (frame contract)")
    label_set = sorted({normalize_label(str(x)) for x in labels})
    if not label_set and any(c.rule.name.endswith(".stage_mapped") for c in checks):
        raise HygieneError("labels is empty: pass the stage map's labels")

    e = ENTITIES[entity]
    check_names = check_columns(checks)
    # What a failing row's message shows: lineage, the rule's and its examples' columns.
    shown = [c for c in (*_ROW_ID, *EXPORT_LINEAGE) if c in columns]
    for check in checks:
        for name in (check.rule.column, *check.examples, e.key[0]):
            if name in e.column_names or name == "opportunity_created_at":
                shown.append(name)
    shown = list(dict.fromkeys(shown))
    select = [f"{_check_expr(e, n, columns)} AS {_q(n)}" for n in check_names if n not in shown]
    select += [
        f"{_check_expr(e, n, columns) if n not in columns else _q(n)} AS {_q(n)}" for n in shown
    ]
    # Materialised once: GX computes each rule's metrics in jobs of their own, which
    # would otherwise each redo the loader's joins.
    check_frame = frame.selectExpr(*select).localCheckpoint(eager=True)

    # Two passes: every rule's counts first (GX bundles a frame's aggregate metrics into
    # a few Spark jobs), then the failing rows of the rules that failed, only. Asking every
    # rule for its failing rows at once costs each rule jobs of its own even when it
    # passes, which on small batches is most of the gate's time.
    with _lock:
        state = _gx()
        suite = state.suite(entity, f"{entity}_hygiene_spark")
        batch = state.batch_definitions[entity].get_batch(
            batch_parameters={"dataframe": check_frame}
        )
        parameters = {LABELS_PARAMETER: label_set or ["-"]}
        results = _results(
            batch.validate(
                suite,
                result_format={"result_format": "BASIC", "partial_unexpected_count": 0},
                expectation_parameters=parameters,
            )
        )
        failed = [
            c
            for c in checks
            if c.rule.name in results
            and not _passed(results[c.rule.name])
            and _lists_rows(c.rule.expectation)
        ]
        if failed:
            import great_expectations as gx

            again = gx.ExpectationSuite(name=f"{suite.name}_failing")
            for check in failed:
                cls = getattr(gx.expectations, expectation_class_name(check.rule.expectation))
                again.add_expectation(cls(**check.kwargs, meta={"rule": check.rule.name}))
            results |= _results(
                batch.validate(
                    again,
                    result_format={
                        "result_format": "COMPLETE",
                        "unexpected_index_column_names": shown,
                        "return_unexpected_index_query": False,
                        "partial_unexpected_count": 0,
                    },
                    expectation_parameters=parameters,
                )
            )

    outcomes = []
    for check in checks:
        result = results.get(check.rule.name)
        if result is None:
            raise HygieneError(f"GX returned no result for {check.rule.name}")
        severity = overrides.get(check.rule.name, check.rule.severity)
        if check.rule.expectation == "expect_column_distinct_values_to_be_in_set":
            outcomes.append(_label_outcome(check, severity, result, check_frame, set(label_set)))
        else:
            outcomes.append(_map_outcome(check, severity, result, e))
    return tuple(outcomes)


def _results(validation: Any) -> dict[str, Any]:
    """A validation's results by rule name; a rule GX could not evaluate raises."""
    results: dict[str, Any] = {}
    for r in validation.results:
        name = (r.expectation_config.meta or {}).get("rule")
        raise_on_exception(name, r)
        results[name] = r
    return results


def _passed(result: Any) -> bool:
    return bool(result.success) and int((result.result or {}).get("unexpected_count") or 0) == 0


def _lists_rows(expectation_type: str) -> bool:
    """Whether the rule's failing rows come from GX (the label rule's come from the
    frame: ``_label_outcome``)."""
    return expectation_type != "expect_column_distinct_values_to_be_in_set"


def _map_outcome(check: Check, severity: Severity, result: Any, entity: Entity) -> Outcome:
    info = result.result or {}
    count = int(info.get("unexpected_count") or 0)
    failing = list(info.get("unexpected_index_list") or [])
    if len(failing) != count:
        raise HygieneError(
            f"{check.rule.name}: GX reported {count} failing rows but listed {len(failing)}"
        )
    success = bool(result.success) and count == 0
    if not success and count == 0:
        raise HygieneError(f"{check.rule.name}: GX failed the rule without failing rows")
    failing.sort(key=lambda r: (r.get("_source_file") or "", int(r["_source_row"])))
    pairs = tuple((r.get("_source_file"), int(r["_source_row"])) for r in failing)
    refs = tuple(
        row_reference(
            r.get("_source_file"), int(r["_source_row"]), r.get("_export_file"),
            r.get("_export_line"), r.get("_export_column"),
        )
        for r in failing
    )  # fmt: skip
    return Outcome(
        rule=check.rule,
        severity=severity,
        success=success,
        element_count=int(info.get("element_count") or 0),
        unexpected_count=count,
        unexpected_rows=pairs,
        examples=_examples(check, entity, failing),
        observed=_observed(check, failing),
        row_refs=refs,
    )


def _text(value: Any) -> str:
    import datetime as dt

    if value is None or (isinstance(value, float) and value != value):
        return "NULL"
    if isinstance(value, dt.datetime):
        if value == value.replace(hour=0, minute=0, second=0, microsecond=0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _observed(check: Check, failing: list[dict[str, Any]]) -> str | None:
    if not failing or check.rule.expectation != "expect_column_values_to_be_between":
        return None
    values = [r[check.rule.column] for r in failing if r.get(check.rule.column) is not None]
    if not values:
        return None
    low, high = _text(min(values)), _text(max(values))
    return f"failing values {low}" if low == high else f"failing values from {low} to {high}"


def _examples(check: Check, entity: Entity, failing: list[dict[str, Any]]) -> tuple[str, ...]:
    """As ingestion.hygiene.outcomes._examples: up to five distinct failing values, from the first
    failing rows; another column's value as ``column=value``."""
    if not failing or not check.examples:
        return ()
    head = failing[:1000]
    main = check.rule.column
    columns: list[tuple[str, list[str]]] = []
    for name in check.examples:
        if name.endswith("__raw"):  # the raw text is not kept on Spark: show the key
            name = entity.key[0]
        texts = [_text(r.get(name)) for r in head]
        columns.append((name, [t if t == "NULL" else mask_value(name, t) for t in texts]))
    if len(columns) == 1:
        col, texts = columns[0]
        shown = texts if col in (main, f"{main}__raw") else [f"{col}={t}" for t in texts]
    elif check.rule.expectation == "expect_column_pair_values_a_to_be_greater_than_b":
        (a, ta), (b, tb) = columns
        shown = [f"{a}={x} < {b}={y}" for x, y in zip(ta, tb, strict=True)]
    else:
        shown = [
            ", ".join(f"{c}={v}" for (c, _), v in zip(columns, values, strict=True))
            for values in zip(*(texts for _, texts in columns), strict=True)
        ]
    return tuple(dict.fromkeys(shown))[:EXAMPLES]


def _label_outcome(
    check: Check, severity: Severity, result: Any, frame: DataFrame, labels: set[str]
) -> Outcome:
    """As ingestion.hygiene.outcomes._label_outcome: the distinct labels (few) come to the driver,
    the failing rows are counted in Spark."""
    from pyspark.sql import functions as F

    spellings_seen = [
        r[0]
        for r in frame.where(F.col("stage").isNotNull())
        .groupBy("stage")
        .agg(F.min("_source_row").alias("first"))
        .orderBy("first")
        .collect()
    ]
    unmapped = [s for s in spellings_seen if normalize_label(str(s)) not in labels]
    by_label: dict[str, str] = {}
    for s in unmapped:
        by_label.setdefault(normalize_label(str(s)), str(s))
    info = result.result or {}
    gx_count = int(info.get("unexpected_count") or 0)
    if gx_count != len(by_label) or bool(result.success) != (not unmapped):
        raise HygieneError(
            f"{check.rule.name}: GX found {gx_count} unmapped labels, the check frame "
            f"{len(by_label)}"
        )
    n = frame.count() if not unmapped else None
    if not unmapped:
        return Outcome(check.rule, severity, True, int(n or 0), 0, (), (), None)
    rows = frame.where(F.col("stage").isin(unmapped)).count()
    lines = "\n".join(f"  {json.dumps(s)}: <canonical stage>" for s in by_label.values())
    return Outcome(
        rule=check.rule,
        severity=severity,
        success=False,
        element_count=frame.count(),
        unexpected_count=int(rows),
        unexpected_rows=(),
        examples=tuple(unmapped[:EXAMPLES]),
        observed=(
            f"{len(by_label)} unmapped label{'s' if len(by_label) > 1 else ''}: "
            f"{', '.join(unmapped)}"
        ),
        detail=f"Add to {CONFIG_HINT}, each with its canonical stage:\nstage_labels:\n{lines}",
    )
