"""The data-hygiene rule catalog and its Great Expectations 1.x suites.

Every rule has a stable name (``<entity>.<what>``), a level and a default severity:

- ``row`` rules judge single rows: failing rows can be quarantined, the rest published;
- ``batch`` rules judge the batch as a whole: a failure rejects all of it (an unmapped
  stage label, a duplicated id after deduplication).

A user changes a rule's severity by name (``quality.severity`` in the config); ``error``
stops what fails, ``warn`` publishes it and reports it.

How it runs. GX 1.x has no working DuckDB SQL datasource, so the loader hands each batch's
staged rows over as a pandas frame (the *frame contract* below) and ``validate_batch``
runs the entity's suite on it: one ``ExpectationSuite`` per entity, one
``batch.validate`` call per frame, on one ephemeral context built once per process. GX
costs seconds to import, so it is imported on the first validation, never at module
import time.

The frame contract (one batch's staged rows of one entity, before publishing):

- every contract column of the entity (``ingestion.schema``), typed where it parsed and
  NULL where it was missing or did not parse; dtypes as DuckDB's ``.df()`` gives them
  (object strings, datetime64 or object dates, float64/Int64, bool/object booleans);
  a contract column absent from the frame is read as all NULL;
- ``_source_row`` (int) and ``_source_file`` (str, optional): the pair identifies a row,
  and failing rows are reported as ``(source_file, source_row)`` pairs (file ``None``
  when the frame has no ``_source_file``);
- ``_export_file`` and ``_export_line`` (str, optional): the CRM export file and line a
  converted row came from; a failing row is then named by them (``row_reference``);
- ``<c>__parses`` (bool) for each non-string contract column ``c`` the file had: False
  where the raw text did not parse (absent: every value parsed); optionally ``<c>__raw``
  (the raw text), shown as the example of a parse failure;
- ``<c>__known`` (bool, True when ``c`` is NULL or the referenced row exists), required
  for each reference in ``REFERENCE_FLAGS``;
- ``stage_changes.opportunity_created_at`` (timestamp, NaT when unknown) and
  ``contacts.email__seen_before`` (bool, True when another contact already in raw has
  the same e-mail, case-insensitive), required; ``contacts.email__seen_in_batch``
  (bool, True when another row of the batch has it), optional: without it the frame is
  the whole batch and the duplicates are found in it;
- ``key__conflicting`` (bool) for each entity of ``ONE_VERSION_PER_KEY`` (quotas), required:
  True when the batch's file holds another row with the same key and different values.
  The loader keeps every such version in the frame (one row per distinct version; an
  identical repeat is a duplicate), so that all of them fail
  ``<entity>.key_not_conflicting``; ``<entity>.key_unique`` skips them.

``required_flag_columns(entity)`` lists the required extra columns of an entity;
``frame_columns(entity)`` every column the rules read (select just those to save memory).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from ingestion.errors import ConfigError
from ingestion.schema import (
    ACTIVITY_TYPES,
    CHANNELS,
    ENTITIES,
    LEAD_STATUSES,
    ONE_VERSION_PER_KEY,
    REFERENCES,
    Entity,
)
from ingestion.stages import CATEGORIES, normalize_label
from ingestion.warehouse import RAW_SCHEMA

__all__ = [
    "ACTIVITY_TYPES",
    "CHANNELS",
    "LEAD_STATUSES",
    "REFERENCE_FLAGS",
    "HygieneError",
    "Level",
    "Outcome",
    "Rule",
    "Severity",
    "catalog",
    "check_severities",
    "frame_columns",
    "mapped_labels",
    "mask_value",
    "required_flag_columns",
    "rules_for",
    "validate_batch",
]

Severity = Literal["error", "warn"]
Level = Literal["row", "batch"]
SEVERITIES: tuple[Severity, ...] = ("error", "warn")

# entity → (column, referenced entity, default severity). Incremental exports may
# reference a row that arrives in a later batch, hence warn; a stage change without its
# opportunity cannot be placed in any funnel, hence error.
_ERROR_REFERENCES = {("stage_changes", "opportunity_id")}
REFERENCE_FLAGS: dict[str, tuple[tuple[str, str, Severity], ...]] = {
    entity: tuple(
        (column, target, "error" if (entity, column) in _ERROR_REFERENCES else "warn")
        for column, target, _key in refs
    )
    for entity, refs in REFERENCES.items()
}

EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# At least six digits; digits, spaces and ( ) . - / after an optional +; an extension.
PHONE_REGEX = r"(?i)^(?=(?:\D*\d){6})\+?[\d ().\-/]+(?:\s*(?:x|ext\.?)\s*\d+)?$"

# Rules that cannot be lowered to warn, and why (the ConfigError says it). The stage-label
# rules: docs/data-model.md makes an unmapped label blocking, because every mart reads
# stages through the map. A conflicting key: publishing both versions would break the key
# of the raw table, and publishing one would be a guess (the loader has no version order
# for rows of one file but their position, which an export does not promise).
_STAGE_LOCK = (
    "a stage label that maps to no stage must stop the batch (every mart reads stages "
    "through the map). Map the labels under stage_labels: instead."
)
_LOCKED: dict[str, str] = {
    "opportunities.stage_mapped": _STAGE_LOCK,
    "stage_changes.stage_mapped": _STAGE_LOCK,
    **{
        f"{entity}.key_not_conflicting": (
            f"two {entity} rows of one batch with the same key ({', '.join(ENTITIES[entity].key)}) "
            f"and different values cannot both be stored, and keeping either would be a "
            f"guess. Correct the export so that it holds one row per key."
        )
        for entity in ONE_VERSION_PER_KEY
    },
}
_LABELS_PARAMETER = "stage_labels"
_EXAMPLES = 5
_ROWS_IN_DESCRIPTION = 3
_CONFIG_HINT = "the pipeline config file (see crm_pipeline.example.yaml)"


class HygieneError(RuntimeError):
    """A rule could not be evaluated (a frame off the contract, or GX raised)."""


@dataclass(frozen=True)
class Rule:
    name: str  # stable id, "<entity>.<what>"; the config sets severities by this name
    entity: str
    level: Level
    severity: Severity  # the default
    expectation: str  # the GX expectation type used
    column: str  # the main column
    description: str  # what is expected
    fix: str  # what the user should do


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
) -> str:
    """How a message names a row: the CRM export's own file and line when the row was
    converted from one (``Opportunity.csv:42``, or ``Opportunity.csv record 41 (line 42
    without multi-line values)`` when the file has values spanning lines), else the
    landing file's (``<batch>/<entity>.csv:5``), else ``row 5``."""
    if _present(export_file) and _present(export_line):
        line = str(export_line).strip()
        return f"{export_file}:{line}" if line.isdigit() else f"{export_file} {line}"
    return f"{source_file}:{source_row}" if source_file is not None else f"row {source_row}"


def _present(value: Any) -> bool:
    return (
        value is not None
        and not (isinstance(value, float) and np.isnan(value))
        and (str(value).strip() not in ("", "<NA>", "nan", "None"))
    )


# ---------------------------------------------------------------------------------------
# The catalog
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    """A rule and the GX expectation that evaluates it on the check frame.

    ``kwargs`` name check-frame columns (``_Source.check_column`` derives them from the
    caller's frame); ``examples`` names the frame columns a failing row's example is
    rendered from: one value, "a < b" for a pair rule, "k1=.., k2=.." for a compound key.
    """

    rule: Rule
    kwargs: Mapping[str, Any]
    examples: tuple[str, ...] = ()
    check_columns: tuple[str, ...] = field(default=())


def _check(
    entity: str,
    what: str,
    *,
    level: Level = "row",
    severity: Severity = "error",
    expectation: str,
    column: str,
    description: str,
    fix: str,
    kwargs: Mapping[str, Any],
    examples: tuple[str, ...] | None = None,
) -> _Check:
    rule = Rule(f"{entity}.{what}", entity, level, severity, expectation, column, description, fix)
    if "column" in kwargs:
        cols: tuple[str, ...] = (kwargs["column"],)
    elif "column_list" in kwargs:
        cols = tuple(kwargs["column_list"])
    else:
        cols = (kwargs["column_A"], kwargs["column_B"])
    return _Check(rule, kwargs, examples if examples is not None else (column,), cols)


def _entity_checks(e: Entity) -> list[_Check]:
    n = e.name
    checks: list[_Check] = []
    for c in e.required_columns:
        checks.append(
            _check(
                n,
                f"{c}_not_null",
                expectation="expect_column_values_to_not_be_null",
                column=c,
                description=f"every {n} row has a {c}",
                fix=f"Fill {c} in the export (empty and unparseable values count as missing).",
                kwargs={"column": c},
                examples=(e.key[0],) if c != e.key[0] else (),
            )
        )
    if len(e.key) == 1:
        k = e.key[0]
        checks.append(
            _check(
                n,
                f"{k}_unique",
                level="batch",
                expectation="expect_column_values_to_be_unique",
                column=k,
                description=f"each {k} appears once after deduplication",
                fix=(
                    f"Two rows share a {k} after the loader's deduplication: report this "
                    f"batch (the loader should have kept one version per {k})."
                ),
                # Unique within each landing file: a frame may hold several batches (the
                # loader validates consecutive batches together), each with its version.
                kwargs={"column": f"{k}__in_file"},
                examples=(k,),
            )
        )
    else:
        # The versions of a conflicting key are all in the frame on purpose (each fails
        # <entity>.key_not_conflicting): this rule reads their key as missing.
        key_columns = [f"{k}__if_not_conflicting" if n in ONE_VERSION_PER_KEY else k for k in e.key]
        # Unique within each landing file (see above).
        kwargs: dict[str, Any] = {"column_list": ["_source_file", *key_columns]}
        if set(e.key) <= set(e.required_columns):
            # A row missing a key part fails <column>_not_null (row level, quarantined);
            # two such rows of one month must not also reject the whole batch here.
            kwargs["ignore_row_if"] = "any_value_is_missing"
        checks.append(
            _check(
                n,
                "key_unique",
                level="batch",
                expectation="expect_compound_columns_to_be_unique",
                column=e.key[0],
                description=f"each ({', '.join(e.key)}) appears once after deduplication",
                fix=(
                    f"Two rows share a key ({', '.join(e.key)}) after the loader's "
                    f"deduplication: report this batch."
                ),
                kwargs=kwargs,
                examples=e.key,
            )
        )
    for col in e.columns:
        if col.type == "string":
            continue
        c = col.name
        checks.append(
            _check(
                n,
                f"{c}_parses",
                expectation="expect_column_values_to_be_in_set",
                column=c,
                description=f"{c} parses as a {col.type}",
                fix=f"Write {c} as {_FORMATS[col.type]} in the export, or leave it empty.",
                kwargs={"column": f"{c}__parses", "value_set": [True]},
                examples=(f"{c}__raw",),
            )
        )
    return checks


_FORMATS = {
    "timestamp": "an ISO 8601 timestamp (2026-11-25T06:00:00Z)",
    "date": "an ISO date (2026-11-25)",
    "double": "a number with a dot as decimal separator",
    "bigint": "a whole number",
    "boolean": "true/false, 1/0 or yes/no",
}


def _in_set(
    entity: str, column: str, values: tuple[str, ...], *, normalize: str, hint: str
) -> _Check:
    how = "any case, surrounding spaces ignored" if normalize == "norm" else "any case"
    return _check(
        entity,
        f"{column}_in_value_set",
        expectation="expect_column_values_to_be_in_set",
        column=column,
        description=f"{column} is one of {', '.join(values)} ({how})",
        fix=f"Map {column} to one of {', '.join(values)} in the export or its adapter{hint}.",
        kwargs={"column": f"{column}__{normalize}", "value_set": list(values)},
    )


def _between(
    entity: str,
    column: str,
    what: str,
    description: str,
    fix: str,
    **bounds: Any,
) -> _Check:
    return _check(
        entity,
        f"{column}_{what}",
        expectation="expect_column_values_to_be_between",
        column=column,
        description=description,
        fix=fix,
        kwargs={"column": column, **bounds},
    )


def _not_before(
    entity: str,
    name: str,
    a: str,
    b: str,
    *,
    column: str,
    description: str,
    fix: str,
    severity: Severity = "error",
    examples: tuple[str, ...],
) -> _Check:
    return _check(
        entity,
        name,
        severity=severity,
        expectation="expect_column_pair_values_a_to_be_greater_than_b",
        column=column,
        description=description,
        fix=fix,
        kwargs={
            "column_A": a,
            "column_B": b,
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
        examples=examples,
    )


def _email_format(entity: str) -> _Check:
    return _check(
        entity,
        "email_format",
        severity="warn",
        expectation="expect_column_values_to_match_regex",
        column="email",
        description="email looks like an e-mail address (name@domain.tld)",
        fix="Correct the e-mail address in the CRM, or leave it empty.",
        kwargs={"column": "email", "regex": EMAIL_REGEX},
    )


def _stage_mapped(entity: str) -> _Check:
    return _check(
        entity,
        "stage_mapped",
        level="batch",
        expectation="expect_column_distinct_values_to_be_in_set",
        column="stage",
        description="every stage label maps to a canonical stage",
        fix=(
            f"Map every listed label to a canonical stage (e.g. meeting) under "
            f"stage_labels: in {_CONFIG_HINT}, then re-run."
        ),
        kwargs={"column": "stage__label", "value_set": {"$PARAMETER": _LABELS_PARAMETER}},
    )


def _reference(entity: str, column: str, target: str, severity: Severity) -> _Check:
    return _check(
        entity,
        f"{column}_exists",
        severity=severity,
        expectation="expect_column_values_to_be_in_set",
        column=column,
        description=f"{column} refers to {target} that exist (in raw or in this batch)",
        fix=(
            f"Export the referenced {target} (in this batch or an earlier one), or correct "
            f"{column}."
        ),
        kwargs={"column": f"{column}__known", "value_set": [True]},
    )


def _key_not_conflicting(entity: str, values: str) -> _Check:
    """Two rows of one batch with the same key and different values: every version fails
    (the loader keeps each in the frame). Locked at error (``_LOCKED``)."""
    e = ENTITIES[entity]
    key = ", ".join(e.key)
    return _check(
        entity,
        "key_not_conflicting",
        expectation="expect_column_values_to_be_in_set",
        column=e.key[0],
        description=(
            f"no other row of the batch has the same ({key}) with {values} of its own "
            f"(an identical repeat is a duplicate, not a conflict)"
        ),
        fix=(
            f"Every version of the key is quarantined, none is guessed (the file's row order "
            f"is no version order); what an earlier batch stored for the key stays. Correct "
            f"the export so that it holds one row per ({key}), and load it again in a later "
            f"batch."
        ),
        kwargs={"column": "key__conflicting", "value_set": [False]},
        examples=tuple(c.name for c in e.columns),
    )


def _specific_checks() -> dict[str, list[_Check]]:
    non_negative = "is zero or more"
    return {
        "accounts": [
            _between(
                "accounts",
                "employee_count",
                "non_negative",
                f"employee_count {non_negative}",
                "Correct the employee count in the CRM, or leave it empty.",
                min_value=0,
            ),
            _between(
                "accounts",
                "annual_revenue",
                "non_negative",
                f"annual_revenue {non_negative}",
                "Correct the annual revenue in the CRM, or leave it empty.",
                min_value=0,
            ),
        ],
        "users": [_email_format("users")],
        "contacts": [
            _email_format("contacts"),
            _check(
                "contacts",
                "phone_format",
                severity="warn",
                expectation="expect_column_values_to_match_regex",
                column="phone",
                description="phone has at least six digits and only + ( ) . - / spaces",
                fix="Correct the phone number in the CRM, or leave it empty.",
                kwargs={"column": "phone", "regex": PHONE_REGEX},
            ),
            _check(
                "contacts",
                "email_not_duplicated",
                severity="warn",
                expectation="expect_column_values_to_be_in_set",
                column="email",
                description=(
                    "no other contact (in this batch or already in raw) has the same "
                    "e-mail, ignoring case"
                ),
                fix="Merge the duplicate contacts in the CRM.",
                kwargs={"column": "email__not_duplicated", "value_set": [True]},
            ),
        ],
        "leads": [
            _email_format("leads"),
            _in_set("leads", "channel", CHANNELS, normalize="norm", hint=""),
            _in_set(
                "leads",
                "status",
                LEAD_STATUSES,
                normalize="lower",
                hint=" (Salesforce 'Open - Not Contacted' is new, 'Working - Contacted' "
                "is working, ...)",
            ),
            _between(
                "leads",
                "score",
                "between_0_and_100",
                "score is between 0 and 100",
                "Rescale the lead score to 0–100 in the export or its adapter.",
                min_value=0,
                max_value=100,
            ),
            _not_before(
                "leads",
                "qualified_at_not_before_created",
                "qualified_at",
                "created_at",
                column="qualified_at",
                description="qualified_at is not before created_at",
                fix="Correct qualified_at or created_at of the lead in the CRM.",
                examples=("qualified_at", "created_at"),
            ),
            _not_before(
                "leads",
                "converted_at_not_before_created",
                "converted_at",
                "created_at",
                column="converted_at",
                description="converted_at is not before created_at",
                fix="Correct converted_at or created_at of the lead in the CRM.",
                examples=("converted_at", "created_at"),
            ),
        ],
        "opportunities": [
            _stage_mapped("opportunities"),
            _between(
                "opportunities",
                "amount",
                "non_negative",
                f"amount {non_negative}",
                "Correct the deal amount in the CRM (a refund is not a negative deal).",
                min_value=0,
            ),
            _between(
                "opportunities",
                "probability",
                "between_0_and_1",
                "probability is a fraction between 0 and 1",
                "Give probability as a fraction (0.25, not 25): the adapter divides a "
                "percentage by 100.",
                min_value=0,
                max_value=1,
            ),
            _not_before(
                "opportunities",
                "close_date_not_before_created",
                "close_date__if_closed",
                "created_at__date",
                column="close_date",
                description="a closed deal's close_date is not before the day it was created",
                fix=(
                    "Usually a back-dated import in the CRM; correct close_date if it is "
                    "wrong, otherwise keep this rule at warn."
                ),
                severity="warn",
                examples=("close_date", "created_at"),
            ),
        ],
        "stage_changes": [
            _stage_mapped("stage_changes"),
            _between(
                "stage_changes",
                "amount",
                "non_negative",
                f"amount {non_negative}",
                "Correct the amount recorded with the stage change.",
                min_value=0,
            ),
            _not_before(
                "stage_changes",
                "changed_at_not_before_opportunity_created",
                "changed_at",
                "opportunity_created_at",
                column="changed_at",
                description="changed_at is not before its opportunity's created_at",
                fix="Correct changed_at, or the created_at of the opportunity, in the CRM.",
                examples=("changed_at", "opportunity_created_at"),
            ),
        ],
        "activities": [
            _in_set("activities", "activity_type", ACTIVITY_TYPES, normalize="norm", hint=""),
        ],
        "stages": [
            _in_set("stages", "category", CATEGORIES, normalize="norm", hint=""),
            _between(
                "stages",
                "probability",
                "between_0_and_1",
                "probability is a fraction between 0 and 1",
                "Give the stage's default probability as a fraction (0.25, not 25).",
                min_value=0,
                max_value=1,
            ),
        ],
        "quotas": [
            _between(
                "quotas",
                "amount",
                "non_negative",
                f"amount {non_negative}",
                "Correct the quota amount.",
                min_value=0,
            ),
            # Not normalised to the 1st: another day means the CRM's quota periods are not
            # calendar months (fiscal periods, weeks), and moving it would silently put
            # the quota on a month it may not cover (or merge two periods into one key).
            _check(
                "quotas",
                "month_first_day",
                expectation="expect_column_values_to_be_in_set",
                column="month",
                description="month is the first day of a month (2026-03-01 for March 2026)",
                fix=(
                    "Give the quota's calendar month as its first day (2026-03-01). A "
                    "mid-month date is not moved to the 1st: if the CRM's quota periods do "
                    "not start on the 1st (fiscal periods, weeks), convert them to calendar "
                    "months in the export or its adapter."
                ),
                kwargs={"column": "month__first_day", "value_set": [True]},
            ),
            _key_not_conflicting("quotas", "an amount or currency"),
        ],
        "fx_rates": [
            _between(
                "fx_rates",
                "rate_to_reporting",
                "positive",
                "rate_to_reporting is above 0",
                "Correct the exchange rate (units of reporting currency per unit of currency).",
                min_value=0,
                strict_min=True,
            ),
        ],
    }


def _build_catalog() -> dict[str, tuple[_Check, ...]]:
    specific = _specific_checks()
    out: dict[str, tuple[_Check, ...]] = {}
    for name, entity in ENTITIES.items():
        refs = [_reference(name, c, t, s) for c, t, s in REFERENCE_FLAGS.get(name, ())]
        out[name] = tuple(_entity_checks(entity) + specific.get(name, []) + refs)
    names = [c.rule.name for checks in out.values() for c in checks]
    assert len(names) == len(set(names)), "rule names must be unique"
    return out


_CHECKS: dict[str, tuple[_Check, ...]] = _build_catalog()
_RULES: dict[str, Rule] = {c.rule.name: c.rule for cs in _CHECKS.values() for c in cs}


def catalog() -> tuple[Rule, ...]:
    """Every rule of every entity."""
    return tuple(_RULES.values())


def rules_for(entity: str) -> tuple[Rule, ...]:
    return tuple(c.rule for c in _checks(entity))


def _checks(entity: str) -> tuple[_Check, ...]:
    try:
        return _CHECKS[entity]
    except KeyError:
        raise ValueError(f"unknown entity {entity!r}; entities: {', '.join(ENTITIES)}") from None


def required_flag_columns(entity: str) -> tuple[str, ...]:
    """The columns beyond the contract and lineage that ``validate_batch`` requires."""
    _checks(entity)
    cols = [f"{c}__known" for c, _, _ in REFERENCE_FLAGS.get(entity, ())]
    if entity in ONE_VERSION_PER_KEY:
        cols.append("key__conflicting")
    if entity == "stage_changes":
        cols.append("opportunity_created_at")
    if entity == "contacts":
        cols.append("email__seen_before")
    return tuple(cols)


def frame_columns(entity: str) -> tuple[str, ...]:
    """Every frame column ``validate_batch`` reads for ``entity``: lineage, the contract
    columns its rules and examples use, the flags. Selecting just these (instead of every
    column) keeps a large batch's frame small; an unread column may be left out."""
    e = ENTITIES[entity]
    cols = ["_source_file", "_source_row", e.key[0]]  # parse failures show the key
    for check in _checks(entity):
        for name in (*check.check_columns, *check.examples):
            cols += _frame_sources(name)
    return tuple(dict.fromkeys(cols))


def _frame_sources(name: str) -> list[str]:
    """The frame columns a check-frame column (or an example column) is made from."""
    base, _, suffix = name.partition("__")
    return {
        "": [name],
        "parses": [name],
        "raw": [],  # optional
        "known": [name, base],
        "conflicting": [name],
        "if_not_conflicting": [base, "key__conflicting"],
        "if_closed": [base, "is_closed"],
        "not_duplicated": [base, f"{base}__seen_before"],
        "in_file": [base],
    }.get(suffix, [base])


def check_severities(severities: Mapping[str, str]) -> dict[str, Severity]:
    """Validate severity overrides by rule name (the config's ``quality.severity``)."""
    out: dict[str, Severity] = {}
    unknown = [name for name in severities if name not in _RULES]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(_RULES), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"quality.severity names unknown rule(s): {', '.join(hints)}. Valid rule "
            f"names: {', '.join(sorted(_RULES))}."
        )
    for name, value in severities.items():
        sev = str(value).strip().lower()
        if sev not in SEVERITIES:
            raise ConfigError(f"quality.severity.{name} is {value!r}; use error or warn.")
        if name in _LOCKED and sev != "error":
            raise ConfigError(f"quality.severity.{name} cannot be lowered to warn: {_LOCKED[name]}")
        out[name] = sev  # type: ignore[assignment]
    return out


def mapped_labels(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The labels of raw.stage_map: the one stage definition the marts use too."""
    rows = con.execute(f"SELECT source_label FROM {RAW_SCHEMA}.stage_map").fetchall()
    return [r[0] for r in rows]


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
    checks = _checks(entity)
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
    check_frame = pd.DataFrame({name: source.check_column(name) for name in _check_columns(checks)})
    results = _run_suite(entity, check_frame, {_LABELS_PARAMETER: label_set or ["-"]})
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


def arrow_backed(table: Any) -> pd.DataFrame:
    """A pyarrow Table (DuckDB's ``to_arrow_table()``) as the frame ``validate_batch``
    reads fastest: text columns stay Arrow-backed (no Python object per value: a third
    of the memory and of the time to build), the other columns become numpy."""
    import pyarrow as pa

    def text(t: Any) -> Any:
        is_text = pa.types.is_string(t) or pa.types.is_large_string(t)
        return pd.ArrowDtype(t) if is_text or t == pa.string_view() else None

    return table.to_pandas(types_mapper=text)


def _check_columns(checks: Iterable[_Check]) -> list[str]:
    return list(dict.fromkeys(c for check in checks for c in check.check_columns))


class _Source:
    """The caller's frame, read tolerantly: contract columns coerced to one dtype per
    logical type, flags to numpy bool, derived check columns computed on demand."""

    def __init__(self, entity: Entity, frame: pd.DataFrame) -> None:
        self.entity = entity
        self.frame = frame
        self.n = len(frame)
        self._cache: dict[str, Any] = {}

    def column(self, name: str) -> Any:
        """A contract column, coerced: object (str/None), datetime64, or float64."""
        if name not in self._cache:
            self._cache[name] = self._coerce(name)
        return self._cache[name]

    def _coerce(self, name: str) -> Any:
        ctype = self.entity.column(name).type
        if name not in self.frame.columns:
            if ctype in ("timestamp", "date"):
                return np.full(self.n, np.datetime64("NaT"), dtype="datetime64[ns]")
            if ctype in ("double", "bigint"):
                return np.full(self.n, np.nan)
            return np.full(self.n, None, dtype=object)
        s = self.frame[name]
        if ctype in ("timestamp", "date"):
            return _as_datetime(s)
        if ctype in ("double", "bigint"):
            return pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        if s.dtype == object:
            return s.to_numpy()
        if isinstance(s.dtype, pd.ArrowDtype | pd.StringDtype):
            # Arrow-backed text stays Arrow: GX's null, set, regex and uniqueness checks
            # run on its buffers, with no Python string per value.
            return s.array
        return s.to_numpy(dtype=object, na_value=None)

    def raw(self, name: str, positions: np.ndarray) -> Any:
        """A frame column as it is (lineage, optional ``__raw`` text) at ``positions``,
        or None. Indexed first: converting all of a 10M-row column costs seconds."""
        if name not in self.frame.columns:
            return None
        return self.frame[name].iloc[positions].to_numpy(dtype=object)

    def flag(self, name: str, *, default: bool) -> np.ndarray:
        """A bool flag column where only an explicit False (or True for ``default``
        False) counts; NULL and an absent column read as ``default``."""
        if name not in self.frame.columns:
            return np.full(self.n, default)
        s = self.frame[name]
        hit = s.eq(not default)
        hit = hit.fillna(False) if hit.dtype != bool else hit
        return ~hit.to_numpy(dtype=bool) if default else hit.to_numpy(dtype=bool)

    def is_true(self, name: str) -> np.ndarray:
        return self.flag(name, default=False)

    def factorized(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes, distinct values) of a string column; code -1 is NULL."""
        key = f"{name}#factorized"
        if key not in self._cache:
            self._cache[key] = pd.factorize(self.column(name))
        return self._cache[key]

    def map_distinct(self, name: str, fn: Callable[[str], str]) -> np.ndarray:
        """``fn`` applied once per distinct value (such columns have few), NULL kept."""
        codes, uniques = self.factorized(name)
        mapped = np.array([fn(str(u)) for u in uniques] + [None], dtype=object)
        return mapped[codes]  # code -1 (NULL) picks the trailing None

    def check_column(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        value = self._derive(name)
        self._cache[name] = value
        return value

    def file_codes(self) -> np.ndarray:
        """Each row's landing file as a code (0 for all when the frame names none)."""
        if "_source_file" not in self.frame.columns:
            return np.zeros(self.n, dtype=np.int64)
        return pd.factorize(self.frame["_source_file"], use_na_sentinel=False)[0]

    def _derive(self, name: str) -> Any:
        base, _, suffix = name.partition("__")
        if name == "_source_file":
            return self.file_codes()
        if suffix == "in_file":
            # (file, value) as one number; NaN where the value is NULL (not judged).
            codes, uniques = self.factorized(base)
            pairs = self.file_codes() * (len(uniques) + 1) + codes
            return np.where(codes < 0, np.nan, pairs.astype(np.float64))
        if not suffix:
            if name == "opportunity_created_at":
                return _as_datetime(self.frame[name])
            return self.column(name)
        if suffix == "parses":
            return self.flag(name, default=True)
        if suffix == "known":
            return self.flag(name, default=True)
        if suffix == "conflicting":
            return self.is_true(name)
        if suffix == "if_not_conflicting":
            values = self.column(base).copy()
            missing = np.datetime64("NaT") if values.dtype.kind == "M" else None
            values[self.is_true("key__conflicting")] = missing
            return values
        if suffix == "first_day":
            days = pd.DatetimeIndex(self.column(base))
            return np.asarray(days.isna() | (days.day == 1))
        if suffix == "norm":
            return self.map_distinct(base, lambda v: v.strip().lower())
        if suffix == "lower":
            return self.map_distinct(base, str.lower)
        if suffix == "label":
            return self.map_distinct(base, normalize_label)
        if suffix == "if_closed":
            values = self.column(base).copy()
            values[~self.is_true("is_closed")] = np.datetime64("NaT")
            return values
        if suffix == "date":
            return pd.DatetimeIndex(self.column(base)).floor("D").to_numpy()
        if suffix == "not_duplicated":
            if f"{base}__seen_in_batch" in self.frame.columns:
                # Given by the loader, which validates a large batch in parts split by
                # contact: a duplicate's other row may sit in another part.
                in_batch = self.is_true(f"{base}__seen_in_batch")
            else:
                emails = pd.Series(self.map_distinct(base, lambda v: v.strip().lower()))
                in_batch = emails.duplicated(keep=False).to_numpy() & emails.notna().to_numpy()
            before = self.is_true(f"{base}__seen_before")
            return ~(in_batch | before)
        raise AssertionError(name)


def _as_datetime(s: pd.Series) -> np.ndarray:
    """datetime64 (naive UTC) from datetime64, tz-aware, date objects or text."""
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy()


# --- GX ----------------------------------------------------------------------------------


@dataclass
class _Gx:
    context: Any
    datasource: Any
    suites: dict[str, Any] = field(default_factory=dict)
    batch_definitions: dict[str, Any] = field(default_factory=dict)


_gx_lock = threading.Lock()
_gx_state: _Gx | None = None

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


def _gx() -> _Gx:
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
        _gx_state = _Gx(context, context.data_sources.add_pandas(name="crm_hygiene"))
    return _gx_state


def _suite(state: _Gx, entity: str) -> Any:
    if entity not in state.suites:
        import great_expectations as gx

        suite = gx.ExpectationSuite(name=f"{entity}_hygiene")
        for check in _CHECKS[entity]:
            cls = getattr(gx.expectations, _class_name(check.rule.expectation))
            suite.add_expectation(cls(**check.kwargs, meta={"rule": check.rule.name}))
        state.suites[entity] = suite
        asset = state.datasource.add_dataframe_asset(name=entity)
        state.batch_definitions[entity] = asset.add_batch_definition_whole_dataframe("batch")
    return state.suites[entity]


def _class_name(expectation: str) -> str:
    return "".join(part.capitalize() for part in expectation.split("_"))


def _run_suite(entity: str, frame: pd.DataFrame, parameters: dict[str, Any]) -> dict[str, Any]:
    """One ``batch.validate`` of the entity's suite; results by rule name."""
    with _gx_lock:
        state = _gx()
        suite = _suite(state, entity)
        batch = state.batch_definitions[entity].get_batch(batch_parameters={"dataframe": frame})
        try:
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
        _raise_on_exception(name, r)
        results[name] = r
    return results


def _raise_on_exception(name: str | None, result: Any) -> None:
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


def _map_outcome(
    check: _Check,
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


def _span(check: _Check, source: _Source, positions: np.ndarray) -> tuple[Any, Any] | None:
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
    names each: by the export file and line (optional ``_export_file`` and
    ``_export_line`` frame columns, set for rows an adapter converted), else the pair."""
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
            strict=True,
        ),
        key=lambda p: (p[0] or "", p[1]),
    )
    pairs = tuple((f, r) for f, r, _ef, _el in found)
    refs = tuple(row_reference(*p) for p in found)
    return pairs, refs


def _examples(
    check: _Check, source: _Source, positions: np.ndarray
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
        if len(first) == _EXAMPLES:
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
    return tuple(dict.fromkeys(e for _, e in seen))[:_EXAMPLES]


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
    check: _Check,
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
        examples=spellings[:_EXAMPLES],
        observed=(
            f"{len(by_label)} unmapped label{'s' if len(by_label) > 1 else ''}: "
            f"{', '.join(spellings)}"
        ),
        detail=f"Add to {_CONFIG_HINT}, each with its canonical stage:\nstage_labels:\n{lines}",
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
