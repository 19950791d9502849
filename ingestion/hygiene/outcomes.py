"""Outcomes and their messages: ``Outcome`` (what a rule found, and how it is
described), how a message names a row (``row_reference``) and masks a value
(``mask_value``), GX's results turned into outcomes (failing rows, examples, the unmapped
stage labels with the config lines to add), and ``merge_outcomes`` for a batch validated in
parts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ingestion.hygiene.frame import _Source
from ingestion.hygiene.rules import (
    _ROWS_IN_DESCRIPTION,
    CONFIG_HINT,
    EXAMPLES,
    Check,
    HygieneError,
    Rule,
    Severity,
)
from ingestion.stages import normalize_label


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    severity: Severity  # effective, after the overrides
    success: bool
    element_count: int
    unexpected_count: int
    # (source_file, source_row) of every failing row; empty for the stage-label rules,
    # whose failure is about labels, not rows.
    unexpected_rows: tuple[tuple[str | None, int], ...]
    examples: tuple[str, ...]  # up to five failing values, e-mails and phones masked
    observed: str | None
    # Lines the message ends with: for unmapped stage labels, the config lines to add.
    detail: str | None = None
    # How the message names each of ``unexpected_rows`` (same order): the CRM export's
    # file and line when the row came from one (row_reference); empty: from the pairs.
    row_refs: tuple[str, ...] = ()
    # What merging the outcomes of a batch validated in parts needs (merge_outcomes):
    # a range rule's lowest and highest failing value, the unmapped label spellings.
    span: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)
    labels: tuple[str, ...] = field(default=(), repr=False, compare=False)
    # Where each of ``examples`` was first seen, (source_file, source_row).
    example_rows: tuple[tuple[str | None, int], ...] = field(default=(), repr=False, compare=False)

    def describe(self) -> str:
        r = self.rule
        if self.success:
            return f"{r.name}: passed on {self.element_count:,} rows."
        parts = [
            f"{r.name} ({self.severity}, {r.level}): {self.unexpected_count:,} of "
            f"{self.element_count:,} rows fail; expected: {r.description}."
        ]
        if self.examples:
            parts.append(f"Examples: {', '.join(self.examples)}.")
        if self.unexpected_rows:
            refs = self.row_refs or tuple(row_reference(f, r) for f, r in self.unexpected_rows)
            shown = ", ".join(refs[:_ROWS_IN_DESCRIPTION])
            more = len(self.unexpected_rows) - _ROWS_IN_DESCRIPTION
            parts.append(f"Rows: {shown}{f' and {more:,} more' if more > 0 else ''}.")
        if self.observed:
            parts.append(f"Observed: {self.observed}.")
        parts.append(f"Fix: {r.fix}")
        return " ".join(parts) + (f"\n{self.detail}" if self.detail else "")


def row_reference(
    source_file: str | None,
    source_row: int,
    export_file: str | None = None,
    export_line: str | None = None,
    export_column: str | None = None,
) -> str:
    """How a message names a row: the CRM export's own file and line when the row was
    converted from one (``Opportunity.csv:42``, or ``Opportunity.csv record 41 (line 42
    without multi-line values)`` when the file has values spanning lines), with the
    column when the row came from one cell of it (``deals.csv:17 (column Date entered
    Won)``), else the landing file's (``<batch>/<entity>.csv:5``), else ``row 5``."""
    if _present(export_file) and _present(export_line):
        line = str(export_line).strip()
        ref = f"{export_file}:{line}" if line.isdigit() else f"{export_file} {line}"
        return f"{ref} (column {export_column})" if _present(export_column) else ref
    return f"{source_file}:{source_row}" if source_file is not None else f"row {source_row}"


def _present(value: Any) -> bool:
    return (
        value is not None
        and not (isinstance(value, float) and np.isnan(value))
        and (str(value).strip() not in ("", "<NA>", "nan", "None"))
    )


# ---------------------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------------------


def mask_value(column: str, value: str) -> str:
    """E-mails and phone numbers never leave the gate whole (logs, alerts, results)."""
    lowered = column.lower()
    if "email" in lowered:
        return _mask_email(value)
    if "phone" in lowered:
        return _mask_phone(value)
    return value


def _mask_email(value: str) -> str:
    local, at, domain = value.strip().partition("@")
    if not at:
        return f"{local[:1]}***"
    return f"{local[:1]}***@{domain}"


def _mask_phone(value: str) -> str:
    tokens = value.split()
    digits = re.sub(r"\D", "", value)
    tail = digits[-2:]
    if len(tokens) >= 2 and tokens[0].startswith("+") and len(tokens[0]) <= 4:
        middle = ["***"] * max(len(tokens) - 2, 1)
        return " ".join([tokens[0], *middle, tail])
    return f"*** {tail}"


def _map_outcome(
    check: Check,
    severity: Severity,
    result: Any,
    source: _Source,
    rows: np.ndarray | None = None,
) -> Outcome:
    """The rule's outcome on the frame, or on its ``rows`` (a mask: one file's rows)."""
    info = result.result or {}
    count = int(info.get("unexpected_count") or 0)
    positions = np.asarray(info.get("unexpected_index_list") or [], dtype=np.int64)
    if len(positions) != count:
        raise HygieneError(
            f"{check.rule.name}: GX reported {count} failing rows but listed "
            f"{len(positions)} of them"
        )
    # A failing row is a failure even if GX's verdict were to say otherwise.
    success = bool(result.success) and count == 0
    if not success and count == 0:
        raise HygieneError(f"{check.rule.name}: GX failed the rule without failing rows")
    elements = int(info.get("element_count", source.n))
    if rows is not None:
        positions = positions[rows[positions]]
        count, elements = len(positions), int(rows.sum())
        success = count == 0
    rows, refs = _row_ids(source, positions)
    span = _span(check, source, positions)
    examples, example_rows = _examples(check, source, positions)
    return Outcome(
        rule=check.rule,
        severity=severity,
        success=success,
        element_count=elements,
        unexpected_count=count,
        unexpected_rows=rows,
        examples=examples,
        observed=_span_text(span),
        row_refs=refs,
        span=span,
        example_rows=example_rows,
    )


def _span(check: Check, source: _Source, positions: np.ndarray) -> tuple[Any, Any] | None:
    """For a range rule, the lowest and highest failing value; other rules show examples."""
    if not len(positions) or check.rule.expectation != "expect_column_values_to_be_between":
        return None
    values = source.column(check.rule.column)[positions]
    return values.min(), values.max()


def _span_text(span: tuple[Any, Any] | None) -> str | None:
    if span is None:
        return None
    low, high = _text(span[0]), _text(span[1])
    return f"failing values {low}" if low == high else f"failing values from {low} to {high}"


def _row_ids(
    source: _Source, positions: np.ndarray
) -> tuple[tuple[tuple[str | None, int], ...], tuple[str, ...]]:
    """The failing rows' (source_file, source_row) pairs, sorted, and how the message
    names each: by the export file and line (optional ``_export_file``, ``_export_line``
    and ``_export_column`` frame columns, set for rows an adapter converted), else the
    pair."""
    if not len(positions):
        return (), ()
    rows = source.frame["_source_row"].to_numpy()[positions].tolist()

    def column(name: str) -> list[Any]:
        values = source.raw(name, positions)
        return values.tolist() if values is not None else [None] * len(rows)

    found = sorted(
        zip(
            column("_source_file"),
            (int(r) for r in rows),
            column("_export_file"),
            column("_export_line"),
            column("_export_column"),
            strict=True,
        ),
        key=lambda p: (p[0] or "", p[1]),
    )
    pairs = tuple((f, r) for f, r, *_export in found)
    refs = tuple(row_reference(*p) for p in found)
    return pairs, refs


def _examples(
    check: Check, source: _Source, positions: np.ndarray
) -> tuple[tuple[str, ...], tuple[tuple[str | None, int], ...]]:
    """Up to five distinct failing values, from the first failing rows, and the row each
    was first seen in. A value from a column other than the rule's own is shown as
    ``column=value``."""
    if not len(positions) or not check.examples:
        return (), ()
    head = positions[:1000]
    main = check.rule.column
    columns: list[tuple[str, list[str]]] = []
    for name in check.examples:
        if name.endswith("__raw"):
            values = source.raw(name, head)
            if values is None:  # no raw text: show the row's key instead
                name = source.entity.key[0]
                values = source.column(name)[head]
        elif name == "opportunity_created_at":
            values = source.check_column(name)[head]
        else:
            values = source.column(name)[head]
        texts = [_text(v) for v in values]
        columns.append((name, [t if t == "NULL" else mask_value(name, t) for t in texts]))
    if len(columns) == 1:
        col, texts = columns[0]
        shown: Iterable[str] = (
            texts if col in (main, f"{main}__raw") else (f"{col}={t}" for t in texts)
        )
    elif check.rule.expectation == "expect_column_pair_values_a_to_be_greater_than_b":
        (a, ta), (b, tb) = columns
        shown = (f"{a}={x} < {b}={y}" for x, y in zip(ta, tb, strict=True))
    else:  # a compound key
        shown = (
            ", ".join(f"{c}={v}" for (c, _), v in zip(columns, values, strict=True))
            for values in zip(*(texts for _, texts in columns), strict=True)
        )
    first: dict[str, int] = {}
    for i, text in enumerate(shown):
        first.setdefault(text, i)
        if len(first) == EXAMPLES:
            break
    at = head[list(first.values())]
    rows = source.frame["_source_row"].to_numpy()[at].tolist()
    files = source.raw("_source_file", at)
    files = files.tolist() if files is not None else [None] * len(rows)
    return tuple(first), tuple((f, int(r)) for f, r in zip(files, rows, strict=True))


def _first_examples(parts: Sequence[Outcome]) -> tuple[str, ...]:
    """The examples of one rule over several parts, as the whole frame gives them: the
    first five distinct in file and row order of where each was first seen."""
    seen = sorted(
        ((f or "", r), e)
        for o in parts
        for e, (f, r) in zip(
            o.examples, o.example_rows or [(None, 0)] * len(o.examples), strict=True
        )
    )
    return tuple(dict.fromkeys(e for _, e in seen))[:EXAMPLES]


def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "NULL"
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return "NULL"
        ts = pd.Timestamp(value)
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat(sep=" ")
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def _label_outcome(
    check: Check,
    severity: Severity,
    result: Any,
    source: _Source,
    labels: set[str],
    rows: np.ndarray | None = None,
) -> Outcome:
    """The stage-label rule: GX decides on the distinct labels; the message names every
    unmapped label as the CRM wrote it, and the config lines that map it. On ``rows``
    (one file's), the labels of those rows."""
    codes, uniques = source.factorized("stage")
    unmapped = [i for i, u in enumerate(uniques) if normalize_label(str(u)) not in labels]
    info = result.result or {}
    gx_count = int(info.get("unexpected_count") or 0)
    # GX counts distinct normalised labels; spellings that differ only in case or spaces
    # are one label.
    by_label: dict[str, str] = {}
    for i in unmapped:
        by_label.setdefault(normalize_label(str(uniques[i])), str(uniques[i]))
    if gx_count != len(by_label) or bool(result.success) != (not unmapped):
        raise HygieneError(
            f"{check.rule.name}: GX found {gx_count} unmapped labels, the check frame "
            f"{len(by_label)}"
        )
    n = source.n
    if rows is not None:
        codes, n = codes[rows], int(rows.sum())
        # Each label where the file first has it: the order a file validated alone gives.
        present, first = np.unique(codes, return_index=True)
        at = dict(zip(present.tolist(), first.tolist(), strict=True))
        unmapped = sorted((i for i in unmapped if i in at), key=at.__getitem__)
    if not unmapped:
        return Outcome(check.rule, severity, True, n, 0, (), (), None)
    failing = np.isin(codes, unmapped)
    spellings = [str(uniques[i]) for i in unmapped]  # as the CRM wrote them, first seen first
    return _unmapped_labels_outcome(check.rule, severity, n, int(failing.sum()), tuple(spellings))


def _unmapped_labels_outcome(
    rule: Rule, severity: Severity, rows: int, failing: int, spellings: tuple[str, ...]
) -> Outcome:
    by_label: dict[str, str] = {}
    for spelling in spellings:
        by_label.setdefault(normalize_label(spelling), spelling)
    lines = "\n".join(f"  {json.dumps(s)}: <canonical stage>" for s in by_label.values())
    return Outcome(
        rule=rule,
        severity=severity,
        success=False,
        element_count=rows,
        unexpected_count=failing,
        unexpected_rows=(),
        examples=spellings[:EXAMPLES],
        observed=(
            f"{len(by_label)} unmapped label{'s' if len(by_label) > 1 else ''}: "
            f"{', '.join(spellings)}"
        ),
        detail=f"Add to {CONFIG_HINT}, each with its canonical stage:\nstage_labels:\n{lines}",
        labels=spellings,
    )


def merge_outcomes(parts: Sequence[Sequence[Outcome]]) -> tuple[Outcome, ...]:
    """The outcomes of one batch validated in parts (each part a separate frame of whole
    keys: the loader splits a large batch by a hash of its key, so that no key spans two
    parts and every rule, uniqueness included, judges each row with all it needs), as if
    validated whole: counts added, failing rows in file order, examples and labels in
    order of first appearance, a range rule's span over every part."""
    if len(parts) == 1:
        return tuple(parts[0])
    merged = []
    for same in zip(*parts, strict=True):
        first = same[0]
        if any(o.rule != first.rule for o in same):
            raise HygieneError("merge_outcomes: the parts list different rules")
        elements = sum(o.element_count for o in same)
        failing = sum(o.unexpected_count for o in same)
        if all(o.success for o in same):
            merged.append(replace(first, element_count=elements))
            continue
        if first.rule.expectation == "expect_column_distinct_values_to_be_in_set":
            spellings = tuple(dict.fromkeys(s for o in same for s in o.labels))
            merged.append(
                _unmapped_labels_outcome(first.rule, first.severity, elements, failing, spellings)
            )
            continue
        rows = sorted(
            (
                (pair, ref)
                for o in same
                for pair, ref in zip(
                    o.unexpected_rows,
                    o.row_refs or [row_reference(*p) for p in o.unexpected_rows],
                    strict=True,
                )
            ),
            key=lambda pr: (pr[0][0] or "", pr[0][1]),
        )
        spans = [o.span for o in same if o.span is not None]
        span = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
        merged.append(
            replace(
                first,
                success=False,
                element_count=elements,
                unexpected_count=failing,
                unexpected_rows=tuple(pair for pair, _ in rows),
                row_refs=tuple(ref for _, ref in rows),
                examples=_first_examples(same),
                observed=_span_text(span),
                span=span,
            )
        )
    return tuple(merged)
