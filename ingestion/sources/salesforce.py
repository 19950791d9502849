"""Salesforce: the CSVs of the weekly Data Export (or Data Loader) → canonical entities.

One file per object, named after it in any case (``Opportunity.csv``, ``opportunity.csv``),
with the standard API field names: Opportunity, OpportunityHistory, Account, User, Lead,
Contact, Task, Event, for exchange rates DatedConversionRate or CurrencyType, and for
quotas ForecastingQuota (with Period, when the export has it, to tell monthly periods). Every
file is optional (an incremental export holds only what changed); what a batch lacks is
listed in the conversion notes. Fields the adapter does not map, custom fields ``*__c``
included, are carried along as attributes.

Salesforce specifics handled here:
- Probability is a percentage (0–100); the contract wants a fraction.
- OpportunityHistory has a row per change of stage, amount or close date; a stage entry is
  a row whose stage differs from the opportunity's previous row (the first row counts). The
  previous row may sit in an earlier batch of an incremental export, so earlier batches'
  history files are read for context; only this batch's rows are emitted.
- Ids carry their object in a three-character prefix: Task/Event WhatId ``006`` is an
  opportunity and ``001`` an account, WhoId ``00Q`` a lead and ``003`` a contact.
- DatedConversionRate gives units of a currency per unit of the corporate currency (taken
  to be the reporting currency), so the rate to the reporting currency is its inverse.
- Timestamps like ``2026-02-23T20:55:00.000+0000`` get a colon in the offset (ISO 8601
  extended form) so every reader parses them, not only DuckDB.
- ForecastingQuota holds more than money quotas per owner and month: quantity quotas,
  product-family quotas, quotas of quarterly periods. Those are set aside, counted in the
  notes; a quota's StartDate gives its month (the first day of the month it starts in).

Why one module (~650 lines): it is one CRM's adapter, a ``convert`` and one SQL builder
per Salesforce object, each used only here and sharing the id-prefix, timestamp and
lookup helpers; a reader follows an export from object to canonical entity in one place.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from ingestion.config import SourceSpec
from ingestion.landing.layout import batch_folders
from ingestion.schema import ENTITIES
from ingestion.sources.export import (
    Conversion,
    Export,
    ExportBatch,
    date_sql,
    quote,
    sql_str,
    timestamp_sql,
)
from ingestion.sources.reconcile import BLOCKING_ENTITIES

# Salesforce's standard opportunity stage picklist → canonical stages.
DEFAULT_STAGE_LABELS: dict[str, str] = {
    "Prospecting": "prospecting",
    "Qualification": "qualification",
    "Needs Analysis": "meeting",
    "Value Proposition": "proposal",
    "Id. Decision Makers": "proposal",
    "Perception Analysis": "proposal",
    "Proposal/Price Quote": "proposal",
    "Negotiation/Review": "negotiation",
    "Closed Won": "closed_won",
    "Closed Lost": "closed_lost",
}

# Lead.LeadSource → channel. The current default picklist (Web, Phone Inquiry, Partner
# Referral, Purchased List, Other) and the classic one older orgs still use; canonical
# channel names match themselves. Any other value becomes "other" (a note lists them; the
# raw value stays in the attribute ``leadsource``).
LEAD_SOURCE_CHANNELS: dict[str, str] = {
    "web": "website",
    "website": "website",
    "phone inquiry": "other",
    "partner referral": "partner",
    "partner": "partner",
    "purchased list": "paid",
    "advertisement": "paid",
    "employee referral": "referral",
    "external referral": "referral",
    "word of mouth": "referral",
    "trade show": "event",
    "seminar - internal": "event",
    "seminar - partner": "event",
    "webinar": "event",
    "social media": "social",
    "public relations": "other",
    "other": "other",
    **{c: c for c in ("email", "social", "paid", "referral", "event", "outbound")},
}

# Lead.Status → lead status: the classic default statuses, the Lightning defaults, and the
# canonical names. Any other status passes unchanged: the hygiene gate names it (an org's
# own status cannot be guessed as open or closed).
LEAD_STATUSES: dict[str, str] = {
    "open - not contacted": "new",
    "working - contacted": "working",
    "closed - converted": "converted",
    "closed - not converted": "disqualified",
    "open": "new",
    "contacted": "working",
    "nurturing": "working",
    "unqualified": "disqualified",
    **{s: s for s in ("new", "working", "qualified", "disqualified", "converted")},
}

# Task.TaskSubtype / Task.Type / Event.Type → activity type. Values not listed are
# "other" for tasks and "meeting" for events (an event is a calendar entry).
ACTIVITY_TYPES: dict[str, str] = {
    "email": "email",
    "list email": "email",
    "listemail": "email",
    "call": "call",
    "meeting": "meeting",
    "demo": "demo",
    "product demo": "demo",
    "demonstration": "demo",
    "proposal": "proposal",
    "send quote": "proposal",
    "quote": "proposal",
    "follow_up": "follow_up",
    "follow up": "follow_up",
    "follow-up": "follow_up",
    "followup": "follow_up",
    "onboarding": "onboarding",
    "kickoff": "onboarding",
    "task": "other",
    "cadence": "other",
    "send letter": "other",
    "other": "other",
}

# Why an OpportunityHistory row is no stage entry (reconciliation reason).
NO_STAGE_CHANGE = "history rows without a stage change (an amount or close-date change)"

# Salesforce id prefixes (the object an id belongs to). Case matters in Salesforce ids.
_OPPORTUNITY, _ACCOUNT, _LEAD, _CONTACT = "006", "001", "00Q", "003"


def convert(batch: ExportBatch, spec: SourceSpec) -> Conversion:
    """One Salesforce export batch as canonical queries, with notes on what it lacks."""
    conversion = Conversion()
    builders = (
        (("Opportunity", "Opportunities"), _opportunities),
        (("Account", "Accounts"), _accounts),
        (("User", "Users"), _users),
        (("Contact", "Contacts"), _contacts),
        (("Lead", "Leads"), _leads),
    )
    for names, build in builders:
        export = batch.read(*names)
        if export is None:
            conversion.notes.append(f"no {names[0]} file: no {names[1].lower()} in this batch")
            continue
        entity, sql = build(batch.con, export, conversion.notes)
        conversion.entities[entity] = sql
        conversion.feed(export, entity)  # one row each

    history = batch.read("OpportunityHistory", "OpportunityHistories")
    if history is None:
        conversion.notes.append(
            "no OpportunityHistory file: no stage changes in this batch (a deal without "
            "any history is taken to be in its current stage since its creation)"
        )
    else:
        conversion.entities["stage_changes"] = _stage_changes(batch, history, conversion.notes)
        # The only rows it leaves out (see _stage_changes): the amount and close-date
        # changes, which repeat the deal's stage.
        conversion.feed(history, "stage_changes", rest=NO_STAGE_CHANGE)

    activities = _activities(batch, conversion)
    if activities is not None:
        conversion.entities["activities"] = activities

    rates = _fx_rates(batch, conversion)
    if rates is not None:
        conversion.entities["fx_rates"] = rates

    quotas = _quotas(batch, conversion)
    if quotas is not None:
        conversion.entities["quotas"] = quotas
    return conversion


# --- helpers -------------------------------------------------------------------------


def _ts(expr: str, date_order: str) -> str:
    """A timestamp as the loader reads it, with ``+0000``-style offsets given a colon."""
    pattern = r"'^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?[+-]\d{2})(\d{2})$'"
    return f"regexp_replace({timestamp_sql(expr, date_order)}, {pattern}, '\\1:\\2')"


def _norm_sql(expr: str) -> str:
    """A picklist value compared like stage labels: lower case, single spaces."""
    return f"regexp_replace(lower(trim({expr})), '\\s+', ' ', 'g')"


def _lookup(expr: str, mapping: Mapping[str, str]) -> str:
    """The mapped value of a picklist column, NULL when the value is not in ``mapping``."""
    whens = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in mapping.items())
    return f"(CASE {_norm_sql(expr)} {whens} END)"


def _percent(expr: str) -> str:
    """A percentage as a fraction; a value that is not a number passes to the gate."""
    number = f"TRY_CAST({expr} AS DOUBLE)"
    return f"CASE WHEN {number} IS NULL THEN {expr} ELSE CAST({number} / 100 AS VARCHAR) END"


def _prefixed(expr: str, prefix: str) -> str:
    return f"CASE WHEN starts_with({expr}, {sql_str(prefix)}) THEN {expr} END"


def _select(
    export: Export,
    entity: str,
    items: list[tuple[str, str, tuple[str, ...]]],
    notes: list[str],
    *,
    keep: tuple[str, ...] = (),
) -> str:
    """SELECT items ``canonical ← expression`` reading ``fields``, plus the extras.

    A canonical column none of whose fields the file has is noted; a required one is then
    left out, so the loader rejects the file naming the missing column instead of
    quarantining every row. ``keep``: fields read but also kept as attributes."""
    required = set(ENTITIES[entity].required_columns)
    selected, missing, blocking = [], [], []
    for canonical, expr, fields in items:
        if fields and not any(export.has(f) for f in fields):
            if canonical in required:
                blocking.append(f"{' or '.join(fields)} (for {canonical})")
                continue
            missing.append(" or ".join(fields))
        selected.append(f"{expr} AS {quote(canonical)}")
    if blocking:
        # Deals and their history block the batch; any other object is set aside whole by
        # the framework (ingestion.sources.reconcile), which notes what that costs.
        effect = (
            "the file cannot be loaded; export it with that field"
            if entity in BLOCKING_ENTITIES
            else "its rows are set aside"
        )
        notes.append(
            f"{export.path.name} has no {', '.join(blocking)} column, which the {entity} "
            f"contract requires: {effect}"
        )
    if missing:
        notes.append(f"{export.path.name} has no {', '.join(missing)} column: left empty")
    mapped = [f for _, _, fields in items for f in fields if f not in keep]
    return ", ".join(selected + export.extras(mapped, entity) + export.lineage())


# --- entities ------------------------------------------------------------------------


def _opportunities(con: duckdb.DuckDBPyConnection, e: Export, notes: list[str]) -> tuple[str, str]:
    o = e.date_order
    items = [
        ("opportunity_id", e.col("Id"), ("Id",)),
        ("created_at", _ts(e.col("CreatedDate"), o), ("CreatedDate",)),
        ("stage", e.col("StageName"), ("StageName",)),
        ("owner_id", e.col("OwnerId"), ("OwnerId",)),
        ("account_id", e.col("AccountId"), ("AccountId",)),
        ("name", e.col("Name"), ("Name",)),
        ("amount", e.col("Amount"), ("Amount",)),
        ("currency", e.col("CurrencyIsoCode"), ("CurrencyIsoCode",)),
        ("probability", _percent(e.col("Probability")), ("Probability",)),
        ("lead_source", e.col("LeadSource"), ("LeadSource",)),
        ("close_date", date_sql(e.col("CloseDate"), o), ("CloseDate",)),
        ("is_closed", e.bool("IsClosed"), ("IsClosed",)),
        ("is_won", e.bool("IsWon"), ("IsWon",)),
        (
            "updated_at",
            _ts(e.first("LastModifiedDate", "SystemModstamp"), o),
            ("LastModifiedDate", "SystemModstamp"),
        ),
        ("is_deleted", e.bool("IsDeleted"), ("IsDeleted",)),
    ]
    if not e.has("CurrencyIsoCode"):
        # A single-currency org exports no currency: amounts are then in the reporting one.
        notes.append(f"{e.path.name}: no CurrencyIsoCode, amounts taken as reporting currency")
        items = [i for i in items if i[0] != "currency"]
    return "opportunities", f"SELECT {_select(e, 'opportunities', items, notes)} FROM {e.view}"


def _accounts(con: duckdb.DuckDBPyConnection, e: Export, notes: list[str]) -> tuple[str, str]:
    o = e.date_order
    items = [
        ("account_id", e.col("Id"), ("Id",)),
        ("name", e.col("Name"), ("Name",)),
        ("industry", e.col("Industry"), ("Industry",)),
        ("country", e.col("BillingCountry"), ("BillingCountry",)),
        ("employee_count", e.col("NumberOfEmployees"), ("NumberOfEmployees",)),
        ("annual_revenue", e.col("AnnualRevenue"), ("AnnualRevenue",)),
        ("created_at", _ts(e.col("CreatedDate"), o), ("CreatedDate",)),
        ("updated_at", _ts(e.col("LastModifiedDate"), o), ("LastModifiedDate",)),
        ("is_deleted", e.bool("IsDeleted"), ("IsDeleted",)),
    ]
    return "accounts", f"SELECT {_select(e, 'accounts', items, notes)} FROM {e.view}"


def _users(con: duckdb.DuckDBPyConnection, e: Export, notes: list[str]) -> tuple[str, str]:
    o = e.date_order
    # Data Loader exports the compound Name; a Data Export file may hold only its parts.
    parts = f"nullif(trim(concat_ws(' ', {e.col('FirstName')}, {e.col('LastName')})), '')"
    role = ("UserRole.Name", "UserRoleName", "UserRole")
    items = [
        ("user_id", e.col("Id"), ("Id",)),
        ("name", f"coalesce({e.col('Name')}, {parts})", ("Name", "FirstName", "LastName")),
        ("email", e.col("Email"), ("Email",)),
        ("team", e.col("Department"), ("Department",)),
        ("manager_id", e.col("ManagerId"), ("ManagerId",)),
        ("region", e.first(*role), role),
        ("is_active", e.bool("IsActive"), ("IsActive",)),
        ("created_at", _ts(e.col("CreatedDate"), o), ("CreatedDate",)),
        ("updated_at", _ts(e.col("LastModifiedDate"), o), ("LastModifiedDate",)),
    ]
    return "users", f"SELECT {_select(e, 'users', items, notes)} FROM {e.view}"


def _contacts(con: duckdb.DuckDBPyConnection, e: Export, notes: list[str]) -> tuple[str, str]:
    o = e.date_order
    items = [
        ("contact_id", e.col("Id"), ("Id",)),
        ("account_id", e.col("AccountId"), ("AccountId",)),
        ("first_name", e.col("FirstName"), ("FirstName",)),
        ("last_name", e.col("LastName"), ("LastName",)),
        ("email", e.col("Email"), ("Email",)),
        ("phone", e.col("Phone"), ("Phone",)),
        ("title", e.col("Title"), ("Title",)),
        ("created_at", _ts(e.col("CreatedDate"), o), ("CreatedDate",)),
        ("updated_at", _ts(e.col("LastModifiedDate"), o), ("LastModifiedDate",)),
        ("is_deleted", e.bool("IsDeleted"), ("IsDeleted",)),
    ]
    return "contacts", f"SELECT {_select(e, 'contacts', items, notes)} FROM {e.view}"


def _leads(con: duckdb.DuckDBPyConnection, e: Export, notes: list[str]) -> tuple[str, str]:
    o = e.date_order
    created = _ts(e.col("CreatedDate"), o)
    converted = date_sql(e.col("ConvertedDate"), o)
    # ConvertedDate is a date (the converting user's day), CreatedDate a UTC time: a lead
    # converted the day it was created would read as converted before it was created. A
    # conversion on the creation day (or the day before, a time-zone difference) is taken
    # to be at creation; a date that does not parse passes to the gate unchanged.
    conv_day, created_day = (
        f"TRY_CAST({converted} AS DATE)",
        f"CAST(TRY_CAST({created} AS TIMESTAMPTZ) AS DATE)",
    )
    converted_at = (
        f"CASE WHEN {conv_day} BETWEEN {created_day} - 1 AND {created_day} "
        f"THEN {created} ELSE {converted} END"
    )
    source = e.col("LeadSource")
    channel = f"CASE WHEN {source} IS NULL THEN NULL ELSE coalesce({_lookup(source, LEAD_SOURCE_CHANNELS)}, 'other') END"  # noqa: E501
    status = e.col("Status")
    # Salesforce marks a converted lead with IsConverted whatever the org named the status.
    lead_status = (
        f"CASE WHEN lower({e.col('IsConverted')}) IN ('true', '1') THEN 'converted' "
        f"ELSE coalesce({_lookup(status, LEAD_STATUSES)}, {status}) END"
    )
    items = [
        ("lead_id", e.col("Id"), ("Id",)),
        ("created_at", created, ("CreatedDate",)),
        ("email", e.col("Email"), ("Email",)),
        ("company", e.col("Company"), ("Company",)),
        ("channel", channel, ("LeadSource",)),
        ("status", lead_status, ("Status",)),
        ("owner_id", e.col("OwnerId"), ("OwnerId",)),
        ("converted_at", converted_at, ("ConvertedDate",)),
        ("converted_opportunity_id", e.col("ConvertedOpportunityId"), ("ConvertedOpportunityId",)),
        ("updated_at", _ts(e.col("LastModifiedDate"), o), ("LastModifiedDate",)),
        ("is_deleted", e.bool("IsDeleted"), ("IsDeleted",)),
    ]
    # LeadSource stays as an attribute too: "other" may stand for an org's own source.
    sql = f"SELECT {_select(e, 'leads', items, notes, keep=('LeadSource',))} FROM {e.view}"
    _note_unmapped(con, e, source, LEAD_SOURCE_CHANNELS, "LeadSource", "channel other", notes)
    return "leads", sql


def _note_unmapped(
    con: duckdb.DuckDBPyConnection,
    e: Export,
    expr: str,
    mapping: Mapping[str, str],
    field: str,
    target: str,
    notes: list[str],
) -> None:
    """Note the values of a picklist that fell back to a default (kept as attributes)."""
    if expr == "NULL":
        return
    values = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT {expr} FROM {e.view} WHERE {expr} IS NOT NULL "
            f"AND {_lookup(expr, mapping)} IS NULL ORDER BY 1"
        ).fetchall()
    ]
    if values:
        notes.append(f"{e.path.name}: {field} {', '.join(values)} taken as {target}")


def _stage_changes(batch: ExportBatch, e: Export, notes: list[str]) -> str:
    """Stage entries: history rows whose stage differs from the opportunity's previous row
    (this batch's and earlier batches' history, ordered by CreatedDate, then Id)."""
    o = e.date_order
    items = [
        ("opportunity_id", e.col("OpportunityId"), ("OpportunityId",)),
        ("stage", e.col("StageName"), ("StageName",)),
        ("changed_at", _ts(e.col("CreatedDate"), o), ("CreatedDate",)),
        ("change_id", e.col("Id"), ("Id",)),
        ("amount", e.col("Amount"), ("Amount",)),
        ("changed_by", e.col("CreatedById"), ("CreatedById",)),
    ]
    select = _select(e, "stage_changes", items, notes)
    if not e.has("OpportunityId", "StageName", "CreatedDate"):
        # Entries cannot be told apart: the loader names the missing required column.
        return f"SELECT {select} FROM {e.view}"
    context = [f"SELECT {select}, true AS _current FROM {e.view}"]
    for folder in batch_folders(batch.folder.parent):
        if folder.name >= batch.batch_id:
            continue
        path = ExportBatch(batch.con, folder, o).file("OpportunityHistory", "OpportunityHistories")
        if path is None:
            continue
        p = batch.read_path(path)
        if not p.has("OpportunityId", "StageName", "CreatedDate"):
            continue
        context.append(
            f"SELECT {p.col('OpportunityId')} AS opportunity_id, {p.col('StageName')} AS stage, "
            f"{_ts(p.col('CreatedDate'), o)} AS changed_at, {p.col('Id')} AS change_id, "
            f"false AS _current FROM {p.view}"
        )
    rows = " UNION ALL BY NAME ".join(f"({c})" for c in context)
    return f"""
        WITH all_rows AS ({rows}),
        one_per_id AS (
            -- A full export repeats earlier rows: one copy per history Id, this batch's.
            SELECT * FROM all_rows
            QUALIFY change_id IS NULL
                OR row_number() OVER (PARTITION BY change_id ORDER BY _current DESC) = 1
        ),
        sequenced AS (
            SELECT *,
                TRY_CAST(changed_at AS TIMESTAMPTZ) AS _at,
                lag({_norm_sql("stage")}) OVER (
                    PARTITION BY opportunity_id
                    ORDER BY TRY_CAST(changed_at AS TIMESTAMPTZ) NULLS LAST, change_id
                ) AS _previous
            FROM one_per_id
        )
        SELECT * EXCLUDE (_current, _at, _previous)
        FROM sequenced
        -- A row whose time does not parse cannot be placed: kept, for the gate to name.
        WHERE _current
            AND (_at IS NULL OR _previous IS DISTINCT FROM {_norm_sql("stage")})
    """


def _activities(batch: ExportBatch, conversion: Conversion) -> str | None:
    """Tasks and Events, one activity each; deleted ones are left out (the activities
    contract has no is_deleted, and a deleted call is no touchpoint)."""
    notes = conversion.notes
    parts = []
    for names, is_event in ((("Task", "Tasks"), False), (("Event", "Events"), True)):
        e = batch.read(*names)
        if e is None:
            notes.append(f"no {names[0]} file: no {names[1].lower()} in this batch")
            continue
        o = e.date_order
        what, who, type_ = e.col("WhatId"), e.col("WhoId"), e.col("Type")
        if is_event:
            # A calendar entry is a meeting unless its Type says what kind (Demo ...).
            kind = f"coalesce(nullif({_lookup(type_, ACTIVITY_TYPES)}, 'other'), 'meeting')"
            when_fields: tuple[str, ...] = (
                "ActivityDateTime", "StartDateTime", "ActivityDate", "CreatedDate"
            )  # fmt: skip
            completed, completed_fields = "NULL", ()
        else:
            # TaskSubtype (Email, Call) is set by Salesforce itself; Type is the user's.
            subtype = _lookup(e.col("TaskSubtype"), ACTIVITY_TYPES)
            kind = (
                f"coalesce(nullif({subtype}, 'other'), "
                f"nullif({_lookup(type_, ACTIVITY_TYPES)}, 'other'), 'other')"
            )
            when_fields = ("ActivityDate", "CreatedDate")
            # IsClosed covers an org's own closed statuses; without it, Status Completed.
            completed = (
                f"coalesce({e.bool('IsClosed')}, CASE WHEN {e.col('Status')} IS NOT NULL "
                f"THEN CAST(lower({e.col('Status')}) = 'completed' AS VARCHAR) END)"
            )
            completed_fields = ("IsClosed", "Status")
        occurred = "coalesce(" + ", ".join(_ts(e.col(f), o) for f in when_fields) + ")"
        items = [
            ("activity_id", e.col("Id"), ("Id",)),
            ("activity_type", kind, ()),
            ("occurred_at", occurred, when_fields),
            ("owner_id", e.col("OwnerId"), ("OwnerId",)),
            ("opportunity_id", _prefixed(what, _OPPORTUNITY), ("WhatId",)),
            ("lead_id", _prefixed(who, _LEAD), ("WhoId",)),
            ("contact_id", _prefixed(who, _CONTACT), ("WhoId",)),
            (
                "account_id",
                f"coalesce({_prefixed(what, _ACCOUNT)}, {e.col('AccountId')})",
                ("WhatId", "AccountId"),
            ),
            ("subject", e.col("Subject"), ("Subject",)),
            ("is_completed", completed, completed_fields),
        ]
        if is_event:
            items = [i for i in items if i[0] != "is_completed"]
        # Type, TaskSubtype and Status stay as attributes: the canonical type is coarser.
        select = _select(e, "activities", items, notes, keep=("Status", "IsClosed"))
        deleted = e.bool("IsDeleted")
        parts.append(f"SELECT {select} FROM {e.view} WHERE {deleted} IS DISTINCT FROM 'true'")
        conversion.feed(
            e, "activities", parts[-1], set_aside=[("deleted records", f"{deleted} = 'true'")]
        )
        for field in ("TaskSubtype", "Type") if not is_event else ("Type",):
            _note_unmapped(batch.con, e, e.col(field), ACTIVITY_TYPES, field, "other", notes)
    if not parts:
        return None
    return " UNION ALL BY NAME ".join(f"({p})" for p in parts)


def _fx_rates(batch: ExportBatch, conversion: Conversion) -> str | None:
    """DatedConversionRate (a rate per period), else CurrencyType (one rate per currency,
    valid since 1900-01-01). Salesforce gives units of the currency per unit of the
    corporate currency; the contract wants reporting-currency units per unit: 1 / rate."""
    dated = batch.read("DatedConversionRate", "DatedConversionRates")
    flat = batch.read("CurrencyType", "CurrencyTypes") if dated is None else None
    e = dated or flat
    if e is None:
        conversion.notes.append(
            "no DatedConversionRate or CurrencyType file: no exchange rates in this batch "
            "(amounts in another currency than the reporting one need rates from some batch)"
        )
        return None
    rate = e.col("ConversionRate")
    number = f"TRY_CAST({rate} AS DOUBLE)"
    # A rate of 0 or one that is not a number passes unchanged: the gate rejects it.
    inverse = f"CASE WHEN {number} <> 0 THEN CAST(1 / {number} AS VARCHAR) ELSE {rate} END"
    day = date_sql(e.col("StartDate"), e.date_order) if dated is not None else "'1900-01-01'"
    items = [
        ("currency", e.col("IsoCode"), ("IsoCode",)),
        ("rate_date", day, ("StartDate",) if dated is not None else ()),
        ("rate_to_reporting", inverse, ("ConversionRate",)),
    ]
    conversion.feed(e, "fx_rates")
    return f"SELECT {_select(e, 'fx_rates', items, conversion.notes)} FROM {e.view}"


def _quotas(batch: ExportBatch, conversion: Conversion) -> str | None:
    """ForecastingQuota → one money quota per owner and month.

    QuotaOwnerId is the rep (namespaced like every user id), QuotaAmount the quota in
    CurrencyIsoCode, and StartDate, the start of the forecast period, gives the month: the
    first day of the month it falls in. A row that is not an owner's money quota for a
    month is set aside, every one counted in a note (never a silent drop):

    - a quantity quota (IsQuantity true, or a QuotaQuantity without a QuotaAmount) counts
      units, not money: attainment compares won amounts;
    - a product-family quota (ProductFamily set) is the share of one family: beside the
      owner's quota it would be a second amount for the same owner and month;
    - with a Period file, a quota of a period that is not a month (Period.Type Quarter,
      Year): taking it as the quota of its first month would overstate that month.

    Quotas of several forecast types (ForecastingTypeId) are kept but noted: an owner with
    different amounts for one month under two types is a conflict the gate quarantines.
    """
    notes = conversion.notes
    e = batch.read("ForecastingQuota", "ForecastingQuotas")
    if e is None:
        notes.append(
            "no ForecastingQuota file: no quotas in this batch (quota attainment needs "
            "quotas from some batch)"
        )
        return None
    start = date_sql(e.col("StartDate"), e.date_order)
    day = f"TRY_CAST({start} AS DATE)"
    # A StartDate that is no date passes unchanged, for the gate to name.
    month = f"CASE WHEN {day} IS NULL THEN {start} ELSE strftime({day}, '%Y-%m-01') END"
    items = [
        ("owner_id", e.col("QuotaOwnerId"), ("QuotaOwnerId",)),
        ("month", month, ("StartDate",)),
        ("amount", e.col("QuotaAmount"), ("QuotaAmount",)),
        ("currency", e.col("CurrencyIsoCode"), ("CurrencyIsoCode",)),
    ]
    if not e.has("CurrencyIsoCode"):
        notes.append(f"{e.path.name}: no CurrencyIsoCode, quotas taken as reporting currency")
        items = [i for i in items if i[0] != "currency"]

    reasons = [
        (
            f"{e.bool('IsQuantity')} = 'true' OR ({e.col('QuotaAmount')} IS NULL "
            f"AND {e.col('QuotaQuantity')} IS NOT NULL)",
            "quantity quota(s) (IsQuantity: units, not money)",
        ),
        (
            f"{e.col('ProductFamily')} IS NOT NULL",
            "product-family quota(s) (ProductFamily set: a share of the owner's quota)",
        ),
    ]
    period = batch.read("Period", "Periods")
    if period is not None:
        conversion.feed(period, None, rest="read for reference (the quotas' period types)")
    if period is not None and period.has("Id", "Type") and e.has("PeriodId"):
        reasons.append(
            (
                f"{e.col('PeriodId')} IN (SELECT {period.col('Id')} FROM {period.view} "
                f"WHERE lower({period.col('Type')}) <> 'month')",
                "quota(s) of a period other than a month (Period.Type)",
            )
        )
    set_aside = "CASE " + " ".join(f"WHEN {cond} THEN {i}" for i, (cond, _) in enumerate(reasons))
    set_aside += " END"
    counts = dict(
        batch.con.execute(
            f"SELECT {set_aside} AS reason, count(*) FROM {e.view} GROUP BY reason"
        ).fetchall()
    )
    for i, (_, what) in enumerate(reasons):
        if counts.get(i):
            notes.append(f"{e.path.name}: {counts[i]} {what} set aside")

    kept = f"{e.view} WHERE ({set_aside}) IS NULL"
    conversion.feed(e, "quotas", set_aside=[(what, cond) for cond, what in reasons])
    (mid_month,) = batch.con.execute(
        f"SELECT count(*) FROM {kept} AND {day} IS NOT NULL AND day({day}) <> 1"
    ).fetchone()
    if mid_month:
        notes.append(
            f"{e.path.name}: {mid_month} quota(s) with a StartDate after the 1st (a custom "
            f"fiscal period?) taken as the quota of the month the period starts in"
        )
    if e.has("ForecastingTypeId"):
        (types,) = batch.con.execute(
            f"SELECT count(DISTINCT {e.col('ForecastingTypeId')}) FROM {kept}"
        ).fetchone()
        if types > 1:
            notes.append(
                f"{e.path.name}: quotas of {types} forecast types (ForecastingTypeId): an "
                f"owner with different amounts for one month under two types has both "
                f"quarantined (quotas.key_not_conflicting); export one forecast type's quotas"
            )
    # StartDate stays as an attribute too: the period's own start, before the month.
    select = _select(e, "quotas", items, notes, keep=("StartDate",))
    return f"SELECT {select} FROM {kept}"
