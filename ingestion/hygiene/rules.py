"""The rule catalog: every rule (name, level, default severity, the GX expectation that
evaluates it and its check-frame columns), the severities a user may set and the rules
that cannot be lowered, the columns the rules read (``required_flag_columns``,
``frame_columns``), and the names both runners share (``Check``, ``checks_for``, ...).
No Great Expectations here: the catalog is data.

Why one module (~670 lines): the catalog is one table written as code, the generic rules
derived from the schema and the specific ones per entity, read top to bottom when a rule
is added (CONTRIBUTING.md); what runs the rules and reports them is in gx.py and
outcomes.py.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb

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
from ingestion.stages import CATEGORIES
from ingestion.warehouse import RAW_SCHEMA

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
# Shared with the Spark runner: the suite parameter that carries the mapped stage labels,
# how many failing values an outcome shows, and how messages name the config file.
LABELS_PARAMETER = "stage_labels"
EXAMPLES = 5
_ROWS_IN_DESCRIPTION = 3
CONFIG_HINT = "the pipeline config file (see crm_pipeline.example.yaml)"


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


# ---------------------------------------------------------------------------------------
# The catalog
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
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
) -> Check:
    rule = Rule(f"{entity}.{what}", entity, level, severity, expectation, column, description, fix)
    if "column" in kwargs:
        cols: tuple[str, ...] = (kwargs["column"],)
    elif "column_list" in kwargs:
        cols = tuple(kwargs["column_list"])
    else:
        cols = (kwargs["column_A"], kwargs["column_B"])
    return Check(rule, kwargs, examples if examples is not None else (column,), cols)


def _entity_checks(e: Entity) -> list[Check]:
    n = e.name
    checks: list[Check] = []
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
) -> Check:
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
) -> Check:
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
) -> Check:
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


def _email_format(entity: str) -> Check:
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


def _stage_mapped(entity: str) -> Check:
    return _check(
        entity,
        "stage_mapped",
        level="batch",
        expectation="expect_column_distinct_values_to_be_in_set",
        column="stage",
        description="every stage label maps to a canonical stage",
        fix=(
            f"Map every listed label to a canonical stage (e.g. meeting) under "
            f"stage_labels: in {CONFIG_HINT}, then re-run."
        ),
        kwargs={"column": "stage__label", "value_set": {"$PARAMETER": LABELS_PARAMETER}},
    )


def _reference(entity: str, column: str, target: str, severity: Severity) -> Check:
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


def _key_not_conflicting(entity: str, values: str) -> Check:
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


def _specific_checks() -> dict[str, list[Check]]:
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


def _build_catalog() -> dict[str, tuple[Check, ...]]:
    specific = _specific_checks()
    out: dict[str, tuple[Check, ...]] = {}
    for name, entity in ENTITIES.items():
        refs = [_reference(name, c, t, s) for c, t, s in REFERENCE_FLAGS.get(name, ())]
        out[name] = tuple(_entity_checks(entity) + specific.get(name, []) + refs)
    names = [c.rule.name for checks in out.values() for c in checks]
    assert len(names) == len(set(names)), "rule names must be unique"
    return out


_CHECKS: dict[str, tuple[Check, ...]] = _build_catalog()
_RULES: dict[str, Rule] = {c.rule.name: c.rule for cs in _CHECKS.values() for c in cs}


def catalog() -> tuple[Rule, ...]:
    """Every rule of every entity."""
    return tuple(_RULES.values())


def rules_for(entity: str) -> tuple[Rule, ...]:
    return tuple(c.rule for c in checks_for(entity))


def checks_for(entity: str) -> tuple[Check, ...]:
    """The entity's checks, in catalog order (ValueError for an unknown entity)."""
    try:
        return _CHECKS[entity]
    except KeyError:
        raise ValueError(f"unknown entity {entity!r}; entities: {', '.join(ENTITIES)}") from None


def required_flag_columns(entity: str) -> tuple[str, ...]:
    """The columns beyond the contract and lineage that ``validate_batch`` requires."""
    checks_for(entity)
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
    for check in checks_for(entity):
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


def check_columns(checks: Iterable[Check]) -> list[str]:
    """The check-frame columns the checks read, each once, in first-use order."""
    return list(dict.fromkeys(c for check in checks for c in check.check_columns))
