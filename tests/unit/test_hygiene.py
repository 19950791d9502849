"""The hygiene rule catalog: every rule passes on a clean batch and fails on its defect.

Each entity has a tiny hand-made clean frame in the frame contract (ingestion.hygiene's
docstring). For every rule of the catalog, a copy of it carries one defect that must fail
exactly that rule, on exactly the expected (file, row) pairs, with masked examples. One
GX context serves the whole module (built on the first validation).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ingestion.errors import ConfigError
from ingestion.hygiene import (
    HygieneError,
    Outcome,
    arrow_backed,
    catalog,
    check_severities,
    frame_columns,
    mask_value,
    required_flag_columns,
    row_reference,
    rules_for,
    validate_batch,
)
from ingestion.hygiene import gx as hygiene_gx
from ingestion.schema import ENTITIES
from ingestion.stages import StageMap

LABELS = set(StageMap(labels={"Demo Booked": "meeting"}).label_map())
T0 = pd.Timestamp("2026-01-05 09:00:00")
DAY = pd.Timedelta(days=1)


def ts(*offsets_in_days: float | None) -> list[Any]:
    return [None if d is None else T0 + d * DAY for d in offsets_in_days]


# One clean batch per entity: three rows, every rule satisfied (including edge values:
# zero amounts, a probability of exactly 1, a stage change at its opportunity's creation).
CLEAN: dict[str, dict[str, list[Any]]] = {
    "accounts": {
        "account_id": ["a1", "a2", "a3"],
        "name": ["Acme", "Beta", "Gamma"],
        "industry": ["Software", None, "Retail"],
        "country": ["DE", "US", None],
        "employee_count": pd.array([10, 0, None], dtype="Int64"),
        "annual_revenue": [1e6, 0.0, None],
        "created_at": ts(0, 1, 2),
        "updated_at": ts(3, 3, None),
        "is_deleted": [False, False, True],
    },
    "users": {
        "user_id": ["u1", "u2", "u3"],
        "name": ["Ann", "Bob", "Cy"],
        "email": ["ann@acme.com", "bob.smith@acme.co.uk", None],
        "team": ["EMEA", "NA", None],
        "manager_id": [None, "u1", "u1"],
        "region": ["EMEA", "NA", "APAC"],
        "is_active": [True, True, False],
        "created_at": ts(0, 0, 1),
        "updated_at": ts(1, 1, 1),
    },
    "contacts": {
        "contact_id": ["c1", "c2", "c3"],
        "account_id": ["a1", "a1", None],
        "first_name": ["Ann", "Bob", "Cy"],
        "last_name": ["Lee", "Roe", None],
        "email": ["ann@acme.com", "Bob@Acme.com", None],
        "phone": ["+49 170 1234 5612", "(555) 123-4567 x12", None],
        "title": ["CTO", None, "Buyer"],
        "created_at": ts(0, 1, 2),
        "updated_at": ts(0, 1, 2),
        "is_deleted": [False, False, None],
        "email__seen_before": [False, False, None],
    },
    "leads": {
        "lead_id": ["l1", "l2", "l3"],
        "created_at": ts(0, 1, 2),
        "email": ["x@acme.com", None, "z@beta.io"],
        "company": ["Acme", "Beta", None],
        "channel": ["email", " Referral ", "other"],
        "status": ["New", "qualified", "CONVERTED"],
        "score": [0.0, 55.5, 100.0],
        "owner_id": ["u1", None, "u2"],
        "qualified_at": ts(None, 1, 3),
        "converted_at": ts(None, None, 2),
        "converted_opportunity_id": [None, None, "o1"],
        "updated_at": ts(0, 2, 3),
        "is_deleted": [False, False, False],
        "converted_opportunity_id__known": [True, True, True],
    },
    "opportunities": {
        "opportunity_id": ["o1", "o2", "o3"],
        "created_at": ts(0, 1, 2.5),
        "stage": ["meeting", " Closed_Won ", "Demo Booked"],
        "owner_id": ["u1", "u2", None],
        "account_id": ["a1", None, "a2"],
        "name": ["Deal 1", "Deal 2", "Deal 3"],
        "amount": [0.0, 12500.0, None],
        "currency": ["USD", "EUR", None],
        "probability": [0.2, 1.0, None],
        "lead_source": ["email", None, "partner"],
        # An open deal's close date is its expected date, unchecked; a closed deal may
        # close on the day it was created.
        "close_date": [dt.date(2025, 12, 1), dt.date(2026, 1, 6), dt.date(2026, 1, 7)],
        "is_closed": [False, True, True],
        "is_won": [False, True, False],
        "lost_reason": [None, None, "price"],
        "updated_at": ts(1, 2, 3),
        "is_deleted": [False, False, False],
        "account_id__known": [True, True, True],
        "owner_id__known": [True, True, True],
    },
    "stage_changes": {
        "opportunity_id": ["o1", "o1", "o2"],
        "stage": ["prospecting", "Demo Booked", "negotiation"],
        "changed_at": ts(0, 1, 2),
        "change_id": ["s1", "s2", None],
        "amount": [0.0, 100.0, None],
        "changed_by": ["u1", None, "u2"],
        "opportunity_created_at": ts(0, 0, None),
        "opportunity_id__known": [True, True, True],
    },
    "activities": {
        "activity_id": ["t1", "t2", "t3"],
        "activity_type": ["Call", "email", " follow_up "],
        "occurred_at": ts(0, 1, 2),
        "owner_id": ["u1", "u1", None],
        "opportunity_id": ["o1", None, "o2"],
        "lead_id": [None, "l1", None],
        "contact_id": ["c1", None, None],
        "account_id": ["a1", None, None],
        "subject": ["Intro call", None, "Follow-up"],
        "is_completed": [True, False, None],
        "opportunity_id__known": [True, True, True],
    },
    "stages": {
        "stage": ["prospecting", "closed_won", "closed_lost"],
        "stage_order": [1, 6, 7],
        "category": ["open", "Won", "lost"],
        "probability": [0.05, 1.0, None],
        "source_label": ["Prospecting", None, "Lost"],
    },
    "quotas": {
        "owner_id": ["u1", "u1", "u2"],
        "month": [dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 1, 1)],
        "amount": [50000.0, 0.0, 75000.0],
        "currency": ["USD", "USD", None],
        "owner_id__known": [True, True, True],
        "key__conflicting": [False, False, False],
    },
    "fx_rates": {
        "currency": ["EUR", "EUR", "GBP"],
        "rate_date": [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 1)],
        "rate_to_reporting": [1.08, 1.09, 1.27],
    },
}


def file_of(entity: str) -> str:
    return f"2026-01-08T0600/{entity}.csv"


def clean(entity: str) -> pd.DataFrame:
    frame = pd.DataFrame(CLEAN[entity])
    for col in ENTITIES[entity].columns:
        if col.type == "timestamp":
            frame[col.name] = pd.to_datetime(frame[col.name])
        if col.type != "string":
            frame[f"{col.name}__parses"] = True
    if "opportunity_created_at" in frame:
        frame["opportunity_created_at"] = pd.to_datetime(frame["opportunity_created_at"])
    frame["_source_file"] = file_of(entity)
    frame["_source_row"] = [1, 2, 3]
    return frame


def run(entity: str, frame: pd.DataFrame, **kwargs: Any) -> dict[str, Outcome]:
    return {o.rule.name: o for o in validate_batch(entity, frame, labels=LABELS, **kwargs)}


def failing(outcomes: dict[str, Outcome]) -> set[str]:
    return {name for name, o in outcomes.items() if not o.success}


# --- one defect per rule -----------------------------------------------------------------

# A defect: (mutation of the clean frame, failing rows (1-based), expected examples).
Defect = tuple[Callable[[pd.DataFrame], None], list[int], tuple[str, ...]]


def setv(column: str, row: int, value: Any) -> Callable[[pd.DataFrame], None]:
    def mutate(frame: pd.DataFrame) -> None:
        frame[column] = frame[column].astype(object)
        frame.at[row - 1, column] = value
        if pd.api.types.is_datetime64_any_dtype(CLEAN_DTYPES.get(column)):
            frame[column] = pd.to_datetime(frame[column])

    return mutate


CLEAN_DTYPES: dict[str, Any] = {
    c: pd.Series(v).dtype for cols in CLEAN.values() for c, v in cols.items()
}
CLEAN_DTYPES.update(
    {
        c.name: np.dtype("datetime64[ns]")
        for e in ENTITIES.values()
        for c in e.columns
        if c.type == "timestamp"
    }
)
CLEAN_DTYPES["opportunity_created_at"] = np.dtype("datetime64[ns]")


def both(*mutations: Callable[[pd.DataFrame], None]) -> Callable[[pd.DataFrame], None]:
    def mutate(frame: pd.DataFrame) -> None:
        for m in mutations:
            m(frame)

    return mutate


def text(value: Any) -> str:
    return "NULL" if value is None else str(value)


def generic_defects() -> dict[str, Defect]:
    out: dict[str, Defect] = {}
    for name, entity in ENTITIES.items():
        key = entity.key
        values = CLEAN[name]
        for c in entity.required_columns:
            example = () if c == key[0] else (f"{key[0]}={values[key[0]][1]}",)
            out[f"{name}.{c}_not_null"] = (setv(c, 2, None), [2], example)
        dup = both(*(setv(k, 2, values[k][0]) for k in key))
        if len(key) == 1:
            out[f"{name}.{key[0]}_unique"] = (dup, [1, 2], (values[key[0]][0],))
        else:
            shown = ", ".join(f"{k}={text(values[k][0])}" for k in key)
            out[f"{name}.key_unique"] = (dup, [1, 2], (shown,))
        for col in entity.columns:
            if col.type != "string":
                out[f"{name}.{col.name}_parses"] = (
                    setv(f"{col.name}__parses", 3, False),
                    [3],
                    (f"{key[0]}={values[key[0]][2]}",),
                )
    return out


SPECIFIC: dict[str, Defect] = {
    "accounts.employee_count_non_negative": (setv("employee_count", 1, -1), [1], ("-1.0",)),
    "accounts.annual_revenue_non_negative": (setv("annual_revenue", 2, -0.01), [2], ("-0.01",)),
    "users.email_format": (setv("email", 2, "bob(at)acme.com"), [2], ("b***",)),
    "contacts.email_format": (setv("email", 1, "ann@acme"), [1], ("a***@acme",)),
    "contacts.phone_format": (setv("phone", 1, "+49 12"), [1], ("+49 *** 12",)),
    "contacts.email_not_duplicated": (
        setv("email", 3, "ANN@acme.com"),
        [1, 3],
        ("a***@acme.com", "A***@acme.com"),
    ),
    "leads.email_format": (setv("email", 3, "z@beta"), [3], ("z***@beta",)),
    "leads.channel_in_value_set": (setv("channel", 2, "Webinar"), [2], ("Webinar",)),
    "leads.status_in_value_set": (setv("status", 1, "Open"), [1], ("Open",)),
    "leads.score_between_0_and_100": (setv("score", 3, 100.5), [3], ("100.5",)),
    "leads.qualified_at_not_before_created": (
        setv("qualified_at", 2, T0 + 0.5 * DAY),
        [2],
        ("qualified_at=2026-01-05 21:00:00 < created_at=2026-01-06 09:00:00",),
    ),
    "leads.converted_at_not_before_created": (
        setv("converted_at", 3, T0),
        [3],
        ("converted_at=2026-01-05 09:00:00 < created_at=2026-01-07 09:00:00",),
    ),
    "leads.converted_opportunity_id_exists": (
        setv("converted_opportunity_id__known", 3, False),
        [3],
        ("o1",),
    ),
    "opportunities.stage_mapped": (setv("stage", 2, "Nurture"), [], ("Nurture",)),
    "opportunities.amount_non_negative": (setv("amount", 1, -5.0), [1], ("-5.0",)),
    "opportunities.probability_between_0_and_1": (
        setv("probability", 2, 50.0),
        [2],
        ("50.0",),
    ),
    "opportunities.close_date_not_before_created": (
        setv("close_date", 2, dt.date(2026, 1, 5)),
        [2],
        ("close_date=2026-01-05 < created_at=2026-01-06 09:00:00",),
    ),
    "opportunities.account_id_exists": (setv("account_id__known", 1, False), [1], ("a1",)),
    "opportunities.owner_id_exists": (setv("owner_id__known", 2, False), [2], ("u2",)),
    "stage_changes.stage_mapped": (setv("stage", 3, "Demo Scheduled"), [], ("Demo Scheduled",)),
    "stage_changes.amount_non_negative": (setv("amount", 2, -100.0), [2], ("-100.0",)),
    "stage_changes.changed_at_not_before_opportunity_created": (
        setv("opportunity_created_at", 1, T0 + pd.Timedelta(seconds=1)),
        [1],
        ("changed_at=2026-01-05 09:00:00 < opportunity_created_at=2026-01-05 09:00:01",),
    ),
    "stage_changes.opportunity_id_exists": (
        setv("opportunity_id__known", 3, False),
        [3],
        ("o2",),
    ),
    "activities.activity_type_in_value_set": (setv("activity_type", 2, "lunch"), [2], ("lunch",)),
    "activities.opportunity_id_exists": (setv("opportunity_id__known", 1, False), [1], ("o1",)),
    "stages.category_in_value_set": (setv("category", 1, "pending"), [1], ("pending",)),
    "stages.probability_between_0_and_1": (setv("probability", 2, 1.01), [2], ("1.01",)),
    "quotas.amount_non_negative": (setv("amount", 3, -1.0), [3], ("-1.0",)),
    "quotas.owner_id_exists": (setv("owner_id__known", 3, False), [3], ("u2",)),
    # The 15th is not moved to the 1st: the row fails, naming the date.
    "quotas.month_first_day": (setv("month", 2, dt.date(2026, 2, 15)), [2], ("2026-02-15",)),
    # Row 2 becomes u1's January quota too, with 0 instead of row 1's 50000: the loader
    # flags both versions, both fail, and key_unique skips them (no batch rejection).
    "quotas.key_not_conflicting": (
        both(
            setv("month", 2, dt.date(2026, 1, 1)),
            setv("key__conflicting", 1, True),
            setv("key__conflicting", 2, True),
        ),
        [1, 2],
        (
            "owner_id=u1, month=2026-01-01, amount=50000.0, currency=USD",
            "owner_id=u1, month=2026-01-01, amount=0.0, currency=USD",
        ),
    ),
    "fx_rates.rate_to_reporting_positive": (setv("rate_to_reporting", 2, 0.0), [2], ("0.0",)),
}

DEFECTS: dict[str, Defect] = {**generic_defects(), **SPECIFIC}
RULES = {r.name: r for r in catalog()}


def test_every_rule_has_a_defect_fixture():
    assert set(DEFECTS) == set(RULES)


def as_loaded(frame: pd.DataFrame, representation: str) -> pd.DataFrame:
    """The frame as built here (numpy, text as Python objects) or as the loader hands it
    over (through Arrow: text columns Arrow-backed)."""
    if representation == "numpy":
        return frame
    return arrow_backed(pa.Table.from_pandas(frame, preserve_index=False))


REPRESENTATIONS = ["numpy", "arrow"]


@pytest.mark.parametrize("representation", REPRESENTATIONS)
@pytest.mark.parametrize("entity", list(ENTITIES))
def test_clean_batch_passes_every_rule(entity, representation):
    outcomes = run(entity, as_loaded(clean(entity), representation))
    assert [o.describe() for o in outcomes.values() if not o.success] == []
    assert set(outcomes) == {r.name for r in rules_for(entity)}
    for o in outcomes.values():
        assert (o.element_count, o.unexpected_count, o.unexpected_rows) == (3, 0, ())


@pytest.mark.parametrize("representation", REPRESENTATIONS)
@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_rule_fails_on_its_defect(name, representation):
    rule = RULES[name]
    mutate, rows, examples = DEFECTS[name]
    frame = clean(rule.entity)
    mutate(frame)
    # Only the columns the rules read: proves frame_columns() is enough.
    frame = as_loaded(frame[list(frame_columns(rule.entity))], representation)
    outcomes = run(rule.entity, frame)
    assert failing(outcomes) == {name}
    o = outcomes[name]
    assert (o.success, o.severity) == (False, rule.severity)
    assert o.unexpected_rows == tuple((file_of(rule.entity), r) for r in rows)
    assert o.unexpected_count == (len(rows) or 1)  # a stage-label failure lists no rows
    assert o.examples == examples
    assert rule.fix in o.describe()


# --- the catalog -------------------------------------------------------------------------


def test_catalog_names_levels_and_defaults():
    names = [r.name for r in catalog()]
    assert len(names) == len(set(names))
    for r in catalog():
        assert r.name.startswith(f"{r.entity}.")
        assert r.level in ("row", "batch") and r.severity in ("error", "warn")
        assert r.expectation.startswith("expect_") and r.description and r.fix
    assert {r.name for r in catalog() if r.level == "batch"} == {
        *(f"{e}.{ENTITIES[e].key[0]}_unique" for e in ENTITIES if len(ENTITIES[e].key) == 1),
        *(f"{e}.key_unique" for e in ENTITIES if len(ENTITIES[e].key) > 1),
        "opportunities.stage_mapped",
        "stage_changes.stage_mapped",
    }
    assert {r.name for r in catalog() if r.severity == "warn"} == {
        "users.email_format",
        "contacts.email_format",
        "leads.email_format",
        "contacts.phone_format",
        "contacts.email_not_duplicated",
        "opportunities.close_date_not_before_created",
        "opportunities.account_id_exists",
        "opportunities.owner_id_exists",
        "activities.opportunity_id_exists",
        "leads.converted_opportunity_id_exists",
        "quotas.owner_id_exists",  # like every owner reference: the rep may come later
    }
    assert required_flag_columns("quotas") == ("owner_id__known", "key__conflicting")
    assert required_flag_columns("stage_changes") == (
        "opportunity_id__known",
        "opportunity_created_at",
    )
    with pytest.raises(ValueError, match="unknown entity"):
        rules_for("deals")


def test_severity_override_changes_the_effective_severity_only():
    frame = clean("opportunities")
    frame.at[0, "amount"] = -1.0
    o = run("opportunities", frame, severities={"opportunities.amount_non_negative": "warn"})[
        "opportunities.amount_non_negative"
    ]
    assert (o.success, o.severity, o.rule.severity) == (False, "warn", "error")
    assert "(warn, row)" in o.describe()


def test_unknown_rule_name_is_a_config_error_listing_valid_names():
    with pytest.raises(ConfigError) as exc:
        check_severities({"opportunities.amount_nonnegative": "warn"})
    message = str(exc.value)
    assert "'opportunities.amount_nonnegative'" in message
    assert "did you mean 'opportunities.amount_non_negative'" in message
    assert all(name in message for name in RULES)
    with pytest.raises(ConfigError, match="unknown rule"):
        validate_batch(
            "opportunities", clean("opportunities"), labels=LABELS, severities={"x.y": "warn"}
        )


def test_bad_severity_value_and_locked_rule_are_config_errors():
    with pytest.raises(ConfigError, match="use error or warn"):
        check_severities({"leads.email_format": "info"})
    with pytest.raises(ConfigError, match="cannot be lowered"):
        check_severities({"opportunities.stage_mapped": "warn"})
    with pytest.raises(ConfigError) as exc:
        check_severities({"quotas.key_not_conflicting": "warn"})
    assert str(exc.value) == (
        "quality.severity.quotas.key_not_conflicting cannot be lowered to warn: two quotas "
        "rows of one batch with the same key (owner_id, month) and different values cannot "
        "both be stored, and keeping either would be a guess. Correct the export so that "
        "it holds one row per key."
    )
    assert check_severities({"leads.email_format": "ERROR"}) == {"leads.email_format": "error"}


# --- messages ----------------------------------------------------------------------------


def test_describe_has_counts_examples_rows_and_fix():
    frame = clean("opportunities")
    frame["amount"] = [-5.0, -0.5, -5.0]
    o = run("opportunities", frame)["opportunities.amount_non_negative"]
    text = o.describe()
    assert "opportunities.amount_non_negative (error, row): 3 of 3 rows fail" in text
    assert "Examples: -5.0, -0.5." in text
    assert f"Rows: {file_of('opportunities')}:1, {file_of('opportunities')}:2, " in text
    assert "Observed: failing values from -5.0 to -0.5." in text
    assert o.rule.fix in text
    passed = run("opportunities", clean("opportunities"))["opportunities.amount_non_negative"]
    assert passed.describe() == "opportunities.amount_non_negative: passed on 3 rows."


def test_unmapped_labels_message_lists_every_label_and_the_config_lines():
    frame = pd.concat([clean("opportunities")] * 3, ignore_index=True)
    frame["_source_row"] = range(1, 10)
    frame["stage"] = ["Nurture", "meeting", "Demo Held", "nurture ", "Pilot", "A", "B", "C", "D"]
    o = run("opportunities", frame)["opportunities.stage_mapped"]
    assert (o.success, o.rule.level, o.unexpected_count) == (False, "batch", 8)
    assert o.observed == "7 unmapped labels: Nurture, Demo Held, nurture , Pilot, A, B, C, D"
    assert o.examples == ("Nurture", "Demo Held", "nurture ", "Pilot", "A")
    text = o.describe()
    assert 'stage_labels:\n  "Nurture": <canonical stage>\n  "Demo Held": <canonical stage>' in text
    assert '  "D": <canonical stage>' in text
    assert text.count("<canonical stage>") == 7  # "nurture " maps with "Nurture"


def test_configured_label_passes_and_labels_are_compared_normalised():
    frame = clean("opportunities")
    frame.at[0, "stage"] = "  NURTURE  stage"
    assert not run("opportunities", frame)["opportunities.stage_mapped"].success
    labels = set(StageMap(labels={"Nurture Stage": "prospecting"}).label_map()) | LABELS
    outcomes = validate_batch("opportunities", frame, labels=labels)
    assert all(o.success for o in outcomes)


@pytest.mark.parametrize(
    ("column", "value", "masked"),
    [
        ("email", "john.doe@example.com", "j***@example.com"),
        ("email", "no-at-sign", "n***"),
        ("phone", "+49 170 1234 5612", "+49 *** *** 12"),
        ("phone", "(555) 123-4567", "*** 67"),
        ("phone", "5551234567", "*** 67"),
        ("name", "Ann", "Ann"),
    ],
)
def test_masking(column, value, masked):
    assert mask_value(column, value) == masked


def test_email_seen_before_is_a_duplicate_and_its_examples_are_masked():
    frame = clean("contacts")
    frame.at[1, "email__seen_before"] = True
    o = run("contacts", frame)["contacts.email_not_duplicated"]
    assert (o.success, o.severity, o.unexpected_rows) == (
        False,
        "warn",
        ((file_of("contacts"), 2),),
    )
    assert o.examples == ("B***@Acme.com",)


def test_parse_failure_shows_the_raw_text_when_given():
    frame = clean("opportunities")
    frame["amount__raw"] = ["0", "12500", "12,5 k"]
    frame.at[2, "amount__parses"] = False
    assert run("opportunities", frame)["opportunities.amount_parses"].examples == ("12,5 k",)


# --- the frame contract, tolerated variations --------------------------------------------


def test_tolerant_dtypes_and_missing_optional_columns():
    frame = clean("opportunities").drop(columns=["lost_reason", "probability__parses"])
    frame["created_at"] = frame["created_at"].dt.tz_localize("UTC")
    frame["close_date"] = pd.to_datetime(frame["close_date"])
    frame["amount"] = pd.array([0, 5, None], dtype="Int64")
    frame["is_closed"] = pd.array([False, True, None], dtype="boolean")
    frame["account_id__known"] = pd.array([True, None, True], dtype="boolean")
    frame.index = [10, 20, 30]
    frame.at[20, "close_date"] = pd.Timestamp("2026-01-01")
    outcomes = run("opportunities", frame)
    assert failing(outcomes) == {"opportunities.close_date_not_before_created"}
    rows = outcomes["opportunities.close_date_not_before_created"].unexpected_rows
    assert rows == ((file_of("opportunities"), 2),)


def test_rows_of_several_files_are_reported_in_file_and_row_order():
    frame = pd.concat([clean("fx_rates"), clean("fx_rates")], ignore_index=True)
    frame["currency"] = ["EUR", "EUR", "GBP", "USD", "USD", "CHF"]
    frame["_source_file"] = ["b2/fx.csv"] * 3 + ["b1/fx.csv"] * 3
    frame["rate_to_reporting"] = [-1.0, 1.0, -2.0, 1.0, -3.0, 1.0]
    o = run("fx_rates", frame)["fx_rates.rate_to_reporting_positive"]
    assert o.unexpected_rows == (("b1/fx.csv", 2), ("b2/fx.csv", 1), ("b2/fx.csv", 3))
    assert o.examples == ("-1.0", "-2.0", "-3.0")


def test_without_source_file_rows_are_paired_with_none():
    frame = clean("quotas").drop(columns=["_source_file"])
    frame.at[0, "amount"] = -1.0
    assert run("quotas", frame)["quotas.amount_non_negative"].unexpected_rows == ((None, 1),)


def test_empty_batch_passes():
    frame = clean("stage_changes").iloc[0:0]
    outcomes = run("stage_changes", frame)
    assert all(o.success and o.element_count == 0 for o in outcomes.values())


def test_frame_off_the_contract_raises():
    with pytest.raises(HygieneError, match="opportunity_created_at"):
        validate_batch(
            "stage_changes",
            clean("stage_changes").drop(columns=["opportunity_created_at"]),
            labels=LABELS,
        )
    with pytest.raises(HygieneError, match="_source_row"):
        validate_batch("quotas", clean("quotas").drop(columns=["_source_row"]), labels=LABELS)


def test_a_rule_gx_could_not_evaluate_raises_instead_of_passing():
    # GX reports an expectation that raised as success False with an empty result; it
    # must not read as "no failing rows". Here the check frame lacks a column.
    check_frame = pd.DataFrame({"owner_id": ["u1"]})
    with pytest.raises(HygieneError, match=r"could not evaluate the rule: .*does not exist"):
        hygiene_gx._run_suite("quotas", check_frame, {"stage_labels": ["x"]})


def test_one_gx_context_serves_every_validation():
    run("fx_rates", clean("fx_rates"))
    state = hygiene_gx._gx_state
    run("fx_rates", clean("fx_rates"))
    run("quotas", clean("quotas"))
    assert hygiene_gx._gx_state is state
    assert set(state.suites) >= {"fx_rates", "quotas"}


# --- quotas: the key, the month, the owner ------------------------------------------------


def test_rows_missing_a_key_part_are_quarantined_not_a_batch_rejection():
    # Two quotas without owner_id for January: each fails owner_id_not_null (row level);
    # they are not also "the same key twice", which would reject the whole batch.
    frame = clean("quotas")
    frame["owner_id"] = [None, None, "u2"]
    frame["month"] = [dt.date(2026, 1, 1)] * 3
    outcomes = run("quotas", frame)
    assert failing(outcomes) == {"quotas.owner_id_not_null"}
    rows = outcomes["quotas.owner_id_not_null"].unexpected_rows
    assert rows == ((file_of("quotas"), 1), (file_of("quotas"), 2))


def test_a_missing_month_fails_not_null_only():
    frame = clean("quotas")
    frame["month"] = pd.to_datetime(pd.Series([None, "2026-02-01", "2026-01-01"]))
    assert failing(run("quotas", frame)) == {"quotas.month_not_null"}


def test_conflicting_versions_do_not_hide_a_real_duplicate_key():
    # Rows 1-2: u1 January in two versions (flagged by the loader). Rows 3-4: u2 January
    # twice without the flag, which the loader never produces: key_unique still says so.
    frame = pd.concat([clean("quotas"), clean("quotas").iloc[[2]]], ignore_index=True)
    frame["_source_row"] = [1, 2, 3, 4]
    frame["month"] = [dt.date(2026, 1, 1)] * 4
    frame["key__conflicting"] = [True, True, False, False]
    outcomes = run("quotas", frame)
    assert failing(outcomes) == {"quotas.key_not_conflicting", "quotas.key_unique"}
    assert outcomes["quotas.key_not_conflicting"].unexpected_rows == (
        (file_of("quotas"), 1),
        (file_of("quotas"), 2),
    )
    assert outcomes["quotas.key_unique"].unexpected_rows == (
        (file_of("quotas"), 3),
        (file_of("quotas"), 4),
    )


def test_conflict_message_says_every_version_is_quarantined():
    frame = clean("quotas")
    frame["month"] = [dt.date(2026, 1, 1)] * 3
    frame["owner_id"] = ["u1", "u1", "u2"]
    frame["key__conflicting"] = [True, True, False]
    text = run("quotas", frame)["quotas.key_not_conflicting"].describe()
    assert text.startswith("quotas.key_not_conflicting (error, row): 2 of 3 rows fail")
    assert "Every version of the key is quarantined, none is guessed" in text
    assert "what an earlier batch stored for the key stays" in text


# --- row references ----------------------------------------------------------------------


def test_row_reference_prefers_the_export_file_and_line():
    assert row_reference("b/opportunities.csv", 5, "Opportunity.csv", "42") == (
        "Opportunity.csv:42"
    )
    assert row_reference(
        "b/accounts.csv", 3, "Account.csv", "record 3 (line 4 without multi-line values)"
    ) == ("Account.csv record 3 (line 4 without multi-line values)")
    # A row derived from one cell of a wide row (a date-entered column): the column too.
    assert row_reference(
        "b/stage_changes.csv", 9, "deals.csv", "17", "Date entered Closed Won"
    ) == ("deals.csv:17 (column Date entered Closed Won)")
    assert row_reference("b/stage_changes.csv", 9, "deals.csv", "17", None) == "deals.csv:17"
    # A canonical (crm) landing: the landing file's row, as before.
    assert row_reference("b/opportunities.csv", 5) == "b/opportunities.csv:5"
    assert row_reference("b/opportunities.csv", 5, None, None) == "b/opportunities.csv:5"
    assert row_reference(None, 5) == "row 5"


def test_a_failing_row_is_named_by_its_export_line_when_the_frame_has_it():
    frame = clean("opportunities")
    frame["_source_file"] = "b/opportunities.csv"
    frame["_export_file"] = "Opportunity.csv"
    frame["_export_line"] = [str(n + 1) for n in frame["_source_row"]]
    frame.loc[1, "opportunity_id"] = None
    outcome = run("opportunities", frame)["opportunities.opportunity_id_not_null"]
    assert outcome.unexpected_rows == (("b/opportunities.csv", int(frame.loc[1, "_source_row"])),)
    assert f"Rows: Opportunity.csv:{int(frame.loc[1, '_source_row']) + 1}." in outcome.describe()
