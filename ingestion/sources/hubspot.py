"""HubSpot CRM exports (CSV) → the canonical entities.

Files of a batch folder, matched by name in any case (``deals.csv``, ``Deals.CSV``):

| file | canonical entity |
| --- | --- |
| ``deals`` (or ``deal``) | opportunities, stage_changes (wide date-entered columns) |
| ``deal_property_history`` | stage_changes (rows with propertyName ``dealstage``) |
| ``companies`` | accounts |
| ``contacts`` | contacts |
| ``owners`` | users |
| ``engagements`` | activities |

Every file is optional (an incremental export often holds deals only); what a batch lacks
is listed in its conversion notes.

Headers are HubSpot's internal property names (``dealname``, ``dealstage``, ...), as an API
or "internal name" export writes them; the most common display labels (``Record ID``,
``Deal Name``, ``Deal Stage``, ``Create Date``, ...) are accepted too. HubSpot timestamps
come as ISO 8601 (``2026-02-23T20:55:00.000Z``) or as epoch milliseconds
(``1771880100000``); both are read, and report-style dates follow the source's date_order.

Stage history. HubSpot keeps it on the deal, one column per stage:
``hs_v2_date_entered_<stage id>`` (older exports: ``hs_date_entered_<stage id>``, label
exports: ``Date entered "<Stage label> (<Pipeline>)"``). Every non-empty cell is one entry
into that stage (stage = the stage id or label, changed_at = the cell). When a file has
both the v2 and the older column of a stage, the v2 value wins (the two are computed
differently by HubSpot, and two entries of one stage at different instants would invent a
move). The wide form holds one entry per stage, so a deal that went back and forth shows
only one entry of each stage; ``deal_property_history`` (every ``dealstage`` value with its
timestamp) fills in the rest: both are unioned and the loader deduplicates identical
(opportunity_id, stage, changed_at) rows.

Merged deals. ``hs_merged_object_ids`` lists the deals merged INTO a deal. A merged deal no
longer exists on its own in HubSpot: when it still appears as a row of the same file it is
soft-deleted (is_deleted = true; its stage history stays under its own id, it is kept in
raw and left out of every KPI), and the batch's notes say so. A merged deal that only
appeared in an earlier batch cannot be soft-deleted from here: the canonical contract has
no deletion-by-id row (an opportunity row needs created_at and stage), so it stays as
loaded until a later export lists it again.

Default pipeline stages and canonical order. ``DEFAULT_STAGE_LABELS`` maps HubSpot's
``appointmentscheduled`` to *meeting* (3) and ``qualifiedtobuy`` to *qualification* (2),
while HubSpot's default pipeline runs appointmentscheduled → qualifiedtobuy. So a deal that
follows HubSpot's own order counts one regression (meeting → qualification) in
``fct_stage_history`` / ``regressions_count``. We accept that: the canonical funnel is the
contract every source is compared on, and it says a qualification step after a meeting
is a step back; "reached" is unaffected (a deal in qualifiedtobuy that had a meeting has
reached meeting, the highest open stage entered). A team that reads its pipeline
differently overrides the label in the config, e.g. ``stage_labels: {appointmentscheduled:
prospecting}``, and the regression goes away. Custom pipelines have numeric stage ids;
they are left to the config's ``stage_labels`` (an unmapped id blocks the batch naming it).

Other choices:
- ``hs_is_closed_won`` / ``hs_is_closed`` are read when present; otherwise is_won /
  is_closed are derived from a default-pipeline stage (closedwon, closedlost; the other
  default stages are open) and left empty for stages HubSpot's defaults do not name.
- ``hs_deal_stage_probability`` is already a fraction 0–1 (no division).
- An association column may hold several ids (``7001;7002``): the first is used.
- Engagement types: EMAIL (also INCOMING_EMAIL, FORWARDED_EMAIL) → email, CALL → call,
  MEETING → meeting, NOTE, TASK and the other communication types → other; an unknown
  type passes unchanged, so the hygiene gate names it. Status COMPLETED (or SENT, for an
  e-mail) → is_completed true, any other status → false.
- Owners: ``archived`` true → is_active false; name is ``firstName lastName``, else the
  owner's e-mail (HubSpot owners without a name are users known only by e-mail).
- Every column not mapped here (``pipeline``, custom properties, ``hs_merged_object_ids``,
  ...) is kept as a source attribute (``raw.*._attributes``).

Why one module (~580 lines): it is one CRM's adapter, a ``convert`` and the small SQL
builders it calls, one per file kind, each used only here and sharing the column-picking
and note helpers; a reader follows a HubSpot export from file to canonical entity in one
place, as in the other single-module adapters.
"""

from __future__ import annotations

import re

from ingestion.config import SourceSpec
from ingestion.sources.export import (
    Conversion,
    Export,
    ExportBatch,
    bool_sql,
    date_sql,
    epoch_ms_sql,
    quote,
    sql_str,
    timestamp_sql,
)

DEFAULT_STAGE_LABELS: dict[str, str] = {
    # internal stage ids of HubSpot's default sales pipeline
    "appointmentscheduled": "meeting",
    "qualifiedtobuy": "qualification",
    "presentationscheduled": "proposal",
    "decisionmakerboughtin": "proposal",
    "contractsent": "negotiation",
    "closedwon": "closed_won",
    "closedlost": "closed_lost",
    # their display labels (label exports, "Date entered ..." columns)
    "Appointment Scheduled": "meeting",
    "Qualified To Buy": "qualification",
    "Presentation Scheduled": "proposal",
    "Decision Maker Bought-In": "proposal",
    "Contract Sent": "negotiation",
    "Closed Won": "closed_won",
    "Closed Lost": "closed_lost",
}

# Column names a file may use for one field: internal name first, then labels/variants.
DEAL_ID = ("hs_object_id", "Record ID", "dealId", "Deal ID", "id")
DEAL_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("dealname", "Deal Name"),
    "stage": ("dealstage", "Deal Stage"),
    "amount": ("amount",),
    "currency": ("deal_currency_code", "Currency"),
    "created_at": ("createdate", "Create Date"),
    "close_date": ("closedate", "Close Date"),
    "owner_id": ("hubspot_owner_id", "Deal owner ID"),
    "is_won": ("hs_is_closed_won", "Is Closed Won"),
    "is_closed": ("hs_is_closed", "Is closed"),
    "lost_reason": ("closed_lost_reason", "Closed Lost Reason"),
    "updated_at": ("hs_lastmodifieddate", "Last Modified Date"),
    "probability": ("hs_deal_stage_probability", "Deal probability"),
    "account_id": (
        "associatedcompanyid",
        "associations.company",
        "associations.companies",
        "Associated Company IDs (Primary)",
        "Associated Company IDs",
    ),
    "lead_source": ("hs_analytics_source", "Original Source Type", "Original Source"),
    "is_deleted": ("archived", "hs_archived"),
}
MERGED_IDS = ("hs_merged_object_ids", "Merged Deal IDs")

# Why a deal_property_history row is no stage change (reconciliation reason).
_OTHER_PROPERTY = "changes of another property than dealstage"

_V2_ENTERED = "hs_v2_date_entered_"
_OLD_ENTERED = "hs_date_entered_"
# Date entered "Closed Won (Sales Pipeline)" — quotes optional, the pipeline in brackets.
_LABEL_ENTERED = re.compile(r'^date entered\s+"?(?P<label>.+?)(?:\s*\([^()]*\))?"?$', re.IGNORECASE)

ENGAGEMENT_TYPES: dict[str, str] = {
    "EMAIL": "email",
    "INCOMING_EMAIL": "email",
    "FORWARDED_EMAIL": "email",
    "CALL": "call",
    "MEETING": "meeting",
    "NOTE": "other",
    "TASK": "other",
    "LINKEDIN_MESSAGE": "other",
    "SMS": "other",
    "WHATS_APP": "other",
    "POSTAL_MAIL": "other",
}


def convert(batch: ExportBatch, spec: SourceSpec) -> Conversion:
    """One batch folder of HubSpot exports → canonical entity queries and notes."""
    out = Conversion()
    deals = batch.read("deals", "deal")
    history = batch.read("deal_property_history")
    if deals is None:
        out.notes.append(
            "no deals file (deals.csv): this batch has no opportunities and no stage history "
            "from deal columns."
        )
    else:
        out.entities["opportunities"] = _opportunities(batch, deals, out.notes)
        # One opportunity per row; its date-entered stage changes are derived rows.
        out.feed(deals, "opportunities")
    changes = []
    if deals is not None:
        wide = _wide_stage_changes(deals)
        if wide:
            changes.append(wide)
        elif history is None:
            out.notes.append(
                f"{deals.path.name} has no hs_v2_date_entered_<stage> (nor hs_date_entered_ "
                "or 'Date entered ...') columns and there is no deal_property_history file: "
                "no stage history; each deal starts in its current stage at its createdate."
            )
    if history is None:
        out.notes.append(
            "no deal_property_history file: stage history comes from the deals' "
            "date-entered columns only (one entry per stage)."
        )
    else:
        changes.append(_history_stage_changes(history, out))
    if changes:
        out.entities["stage_changes"] = " UNION ALL BY NAME ".join(f"({q})" for q in changes)
    for names, entity, build in (
        (("companies", "company"), "accounts", _accounts),
        (("contacts", "contact"), "contacts", _contacts),
        (("owners", "owner"), "users", _users),
        (("engagements", "engagement"), "activities", _activities),
    ):
        export = batch.read(*names)
        if export is None:
            out.notes.append(f"no {names[0]} file: no {entity} in this batch.")
        else:
            out.entities[entity] = build(export, out.notes)
            out.feed(export, entity)
    return out


# --- value helpers ---------------------------------------------------------------------


def _ts(export: Export, expr: str) -> str:
    """A HubSpot timestamp: epoch milliseconds or ISO; report-style dates per date_order."""
    return timestamp_sql(epoch_ms_sql(expr), export.date_order)


def _date(export: Export, expr: str) -> str:
    return date_sql(epoch_ms_sql(expr), export.date_order)


def _first_id(expr: str) -> str:
    """The first id of an association list: ``7001;7002``, ``[7001, 7002]`` or ``7001``."""
    return (
        f"nullif(trim(regexp_split_to_array(regexp_replace({expr}, '[\\[\\]\"]', '', 'g'), "
        f"'[;,]')[1]), '')"
    )


def _norm_label(expr: str) -> str:
    """Stage labels as the stage map compares them: lower case, spaces collapsed."""
    return f"lower(regexp_replace(trim({expr}), '\\s+', ' ', 'g'))"


def _labels_to(*stages: str) -> str:
    labels = sorted(
        " ".join(k.split()).lower() for k, v in DEFAULT_STAGE_LABELS.items() if v in stages
    )
    return "(" + ", ".join(sql_str(label) for label in labels) + ")"


def _pick(export: Export, names: tuple[str, ...]) -> tuple[str, str | None]:
    """The first of ``names`` the file has: (its SQL, the name) or ("NULL", None)."""
    for name in names:
        if export.has(name):
            return export.col(name), name
    return "NULL", None


def _missing_note(export: Export, what: str, names: tuple[str, ...], effect: str) -> str:
    return f"{export.path.name} has no {what} column ({' / '.join(names)}): {effect}."


# --- deals -----------------------------------------------------------------------------


def _opportunities(batch: ExportBatch, deals: Export, notes: list[str]) -> str:
    deal_id, id_name = _pick(deals, DEAL_ID)
    if id_name is None:
        notes.append(
            _missing_note(
                deals, "deal id", DEAL_ID, "every deal row is quarantined (opportunity_id)"
            )
        )
    cols: dict[str, str] = {}
    used: list[str] = [id_name] if id_name else []
    for field, names in DEAL_FIELDS.items():
        cols[field], name = _pick(deals, names)
        if name:
            used.append(name)
    stage = cols["stage"]
    won, lost = _labels_to("closed_won"), _labels_to("closed_lost")
    known = _labels_to(*set(DEFAULT_STAGE_LABELS.values()))
    derived_won = (
        f"CASE WHEN {_norm_label(stage)} IN {won} THEN 'true' "
        f"WHEN {_norm_label(stage)} IN {known} THEN 'false' END"
    )
    derived_closed = (
        f"CASE WHEN {_norm_label(stage)} IN {won} OR {_norm_label(stage)} IN {lost} THEN 'true' "
        f"WHEN {_norm_label(stage)} IN {known} THEN 'false' END"
    )
    for field, derived in (("is_won", derived_won), ("is_closed", derived_closed)):
        if cols[field] == "NULL":
            notes.append(
                _missing_note(
                    deals,
                    field,
                    DEAL_FIELDS[field],
                    f"{field} derived from the default pipeline's stage "
                    "(closedwon/closedlost), empty for other stages",
                )
            )
        # An empty cell falls back to the stage too; a value that is no boolean passes
        # unchanged (bool_sql) so the gate names it.
        cols[field] = f"coalesce({bool_sql(cols[field])}, {derived})"
    for field, effect in (
        ("created_at", "every deal row is quarantined (created_at is required)"),
        ("stage", "every deal row is quarantined (stage is required)"),
        ("updated_at", "a later batch's row replaces an earlier one only by batch order"),
        ("currency", "amounts are read as the reporting currency"),
    ):
        if cols[field] == "NULL":
            notes.append(_missing_note(deals, field, DEAL_FIELDS[field], effect))

    # Deals merged into another deal of this file are soft-deleted (module docstring).
    merged_col, merged_name = _pick(deals, MERGED_IDS)
    merged = (
        f"SELECT DISTINCT trim(m) FROM (SELECT unnest(regexp_split_to_array({merged_col}, "
        f"'[;,]')) AS m FROM {deals.view}) WHERE trim(m) <> ''"
    )
    archived = bool_sql(cols["is_deleted"])
    if merged_name is None:
        is_deleted = archived
    else:
        is_deleted = f"CASE WHEN {deal_id} IN ({merged}) THEN 'true' ELSE {archived} END"
        sql = f"SELECT count(*) FROM {deals.view} WHERE {deal_id} IN ({merged})"
        count = batch.con.execute(sql).fetchone()[0]
        if count:
            notes.append(
                f"{deals.path.name}: {count} deal(s) listed in another deal's "
                f"{merged_name} (merged into it) are soft-deleted (is_deleted = true); "
                "their stage history stays under their own id."
            )

    stage_columns = [h for h, _stage in _stage_columns(deals)]
    items = [
        f"{deal_id} AS opportunity_id",
        f"{_ts(deals, cols['created_at'])} AS created_at",
        f"{stage} AS stage",
        f"{cols['owner_id']} AS owner_id",
        f"{_first_id(cols['account_id'])} AS account_id",
        f"{cols['name']} AS name",
        f"{cols['amount']} AS amount",
        f"{cols['currency']} AS currency",
        f"{cols['probability']} AS probability",
        f"{cols['lead_source']} AS lead_source",
        f"{_date(deals, cols['close_date'])} AS close_date",
        f"{cols['is_closed']} AS is_closed",
        f"{cols['is_won']} AS is_won",
        f"{cols['lost_reason']} AS lost_reason",
        f"{_ts(deals, cols['updated_at'])} AS updated_at",
        f"{is_deleted} AS is_deleted",
        *deals.extras(used + stage_columns, "opportunities"),
        *deals.lineage(),
    ]
    return f"SELECT {', '.join(items)} FROM {deals.view}"


def _stage_columns(deals: Export) -> list[tuple[str, str]]:
    """(header, stage id or label) of every date-entered column of the deals file."""
    found = []
    for key, header in deals.headers.items():
        name = header.strip()
        # "Date entered current stage" is when the deal entered whatever stage it is in
        # now, not a stage of its own: it stays an attribute.
        if key.endswith(("current_stage", "current stage")):
            continue
        if key.startswith(_V2_ENTERED):
            found.append((header, name[len(_V2_ENTERED) :]))
        elif key.startswith(_OLD_ENTERED):
            found.append((header, name[len(_OLD_ENTERED) :]))
        elif match := _LABEL_ENTERED.match(" ".join(name.split())):
            found.append((header, match.group("label")))
    return found


def _wide_stage_changes(deals: Export) -> str | None:
    """One SELECT per stage column (UNION ALL): the wide date-entered form, unpivoted."""
    deal_id, id_name = _pick(deals, DEAL_ID)
    if id_name is None:
        return None
    by_stage: dict[str, list[str]] = {}
    for header, stage in _stage_columns(deals):
        by_stage.setdefault(stage, []).append(header)
    parts = []
    for stage, headers in by_stage.items():
        # hs_v2_ first: when both forms of one stage exist, the v2 value wins.
        headers.sort(key=lambda h: not h.strip().lower().startswith(_V2_ENTERED))
        value = "coalesce(" + ", ".join(deals.col(h) for h in headers) + ")"
        # Named by its deal's row and the column its date came from.
        whens = (f"WHEN {deals.col(h)} IS NOT NULL THEN {sql_str(h.strip())}" for h in headers)
        column = f"CASE {' '.join(whens)} END"
        parts.append(
            f"SELECT {deal_id} AS opportunity_id, {sql_str(stage)} AS stage, "
            f"{_ts(deals, value)} AS changed_at, {', '.join(deals.lineage(column))} "
            f"FROM {deals.view} WHERE {value} IS NOT NULL"
        )
    return " UNION ALL ".join(parts) or None


def _history_stage_changes(history: Export, out: Conversion) -> str:
    notes = out.notes
    ids = ("objectId", "dealId", "hs_object_id", "Record ID")
    deal_id, id_name = _pick(history, ids)
    prop, prop_name = _pick(history, ("propertyName", "property"))
    value, value_name = _pick(history, ("value", "propertyValue"))
    when, when_name = _pick(history, ("timestamp", "changed_at", "updatedAt"))
    for name, label in ((id_name, "deal id"), (value_name, "value"), (when_name, "timestamp")):
        if name is None:
            notes.append(
                f"{history.path.name} has no {label} column: its rows cannot be read as "
                "stage changes and are quarantined."
            )
    if prop_name is None:
        notes.append(
            f"{history.path.name} has no propertyName column: every row is read as a "
            "dealstage change."
        )
    used = [n for n in (id_name, prop_name, value_name, when_name) if n]
    items = [
        f"{deal_id} AS opportunity_id",
        f"{value} AS stage",
        f"{_ts(history, when)} AS changed_at",
        *history.extras(used, "stage_changes"),
        *history.lineage(),
    ]
    is_stage = f"lower({prop}) = 'dealstage'"
    where = "" if prop_name is None else f" WHERE {is_stage}"
    sql = f"SELECT {', '.join(items)} FROM {history.view}{where}"
    # The file holds every tracked property's changes; only dealstage is stage history.
    other = [] if prop_name is None else [(_OTHER_PROPERTY, f"({is_stage}) IS NOT TRUE")]
    out.feed(history, "stage_changes", sql, set_aside=other)
    return sql


# --- companies, contacts, owners, engagements -------------------------------------------


def _select(
    export: Export, entity: str, fields: dict[str, tuple[str, ...]], kinds: dict[str, str]
) -> str:
    """SELECT of ``fields`` (canonical column → possible file columns) plus the extras;
    ``kinds`` names the columns read as timestamps (ts), booleans (bool) or first ids (id)."""
    used: list[str] = []
    items = []
    for column, names in fields.items():
        expr, name = _pick(export, names)
        if name:
            used.append(name)
        kind = kinds.get(column)
        if kind == "ts":
            expr = _ts(export, expr)
        elif kind == "bool":
            expr = bool_sql(expr)
        elif kind == "id":
            expr = _first_id(expr)
        items.append(f"{expr} AS {quote(column)}")
    items += export.extras(used, entity)
    items += export.lineage()
    return f"SELECT {', '.join(items)} FROM {export.view}"


_RECORD_ID = ("hs_object_id", "Record ID", "id")


def _accounts(companies: Export, notes: list[str]) -> str:
    fields = {
        "account_id": (*_RECORD_ID, "companyId", "Company ID"),
        "name": ("name", "Company name"),
        "industry": ("industry", "Industry"),
        "country": ("country", "Country/Region"),
        "employee_count": ("numberofemployees", "Number of Employees"),
        "annual_revenue": ("annualrevenue", "Annual Revenue"),
        "created_at": ("createdate", "Create Date"),
        "updated_at": ("hs_lastmodifieddate", "Last Modified Date"),
        "is_deleted": ("archived", "hs_archived"),
    }
    _note_missing(companies, fields, ("account_id", "name"), notes)
    kinds = {"created_at": "ts", "updated_at": "ts", "is_deleted": "bool"}
    return _select(companies, "accounts", fields, kinds)


def _contacts(contacts: Export, notes: list[str]) -> str:
    fields = {
        "contact_id": (*_RECORD_ID, "vid", "contactId"),
        "account_id": (
            "associatedcompanyid",
            "associations.company",
            "associations.companies",
            "Associated Company IDs (Primary)",
            "Associated Company ID",
        ),
        "first_name": ("firstname", "First Name"),
        "last_name": ("lastname", "Last Name"),
        "email": ("email", "Email"),
        "phone": ("phone", "Phone Number"),
        "title": ("jobtitle", "Job Title"),
        "created_at": ("createdate", "Create Date"),
        "updated_at": ("lastmodifieddate", "hs_lastmodifieddate", "Last Modified Date"),
        "is_deleted": ("archived", "hs_archived"),
    }
    _note_missing(contacts, fields, ("contact_id",), notes)
    kinds = {"account_id": "id", "created_at": "ts", "updated_at": "ts", "is_deleted": "bool"}
    return _select(contacts, "contacts", fields, kinds)


def _users(owners: Export, notes: list[str]) -> str:
    fields = {
        "user_id": ("id", "ownerId", "Owner ID"),
        "first": ("firstName", "First Name"),
        "last": ("lastName", "Last Name"),
        "name": ("name", "Name"),
        "email": ("email", "Email"),
        "team": ("teams", "team"),
        "archived": ("archived",),
        "created_at": ("createdAt", "Created At"),
        "updated_at": ("updatedAt", "Updated At"),
    }
    _note_missing(owners, fields, ("user_id",), notes)
    picked = {c: _pick(owners, names) for c, names in fields.items()}
    col = {c: expr for c, (expr, _n) in picked.items()}
    archived = bool_sql(col["archived"])
    # archived → not active; a value that is no boolean passes unchanged to the gate.
    is_active = (
        f"CASE {archived} WHEN 'true' THEN 'false' WHEN 'false' THEN 'true' ELSE {archived} END"
    )
    name = (
        f"coalesce({col['name']}, nullif(concat_ws(' ', {col['first']}, {col['last']}), ''), "
        f"{col['email']})"
    )
    items = [
        f"{col['user_id']} AS user_id",
        f"{name} AS name",
        f"{col['email']} AS email",
        f"{col['team']} AS team",
        f"{is_active} AS is_active",
        f"{_ts(owners, col['created_at'])} AS created_at",
        f"{_ts(owners, col['updated_at'])} AS updated_at",
        *owners.extras([n for _e, n in picked.values() if n], "users"),
        *owners.lineage(),
    ]
    return f"SELECT {', '.join(items)} FROM {owners.view}"


def _activities(engagements: Export, notes: list[str]) -> str:
    fields = {
        "activity_id": ("engagement.id", "id", "engagementId", "hs_object_id"),
        "activity_type": ("engagement.type", "type", "hs_engagement_type"),
        "occurred_at": ("engagement.timestamp", "timestamp", "hs_timestamp"),
        "owner_id": ("engagement.ownerId", "ownerId", "hubspot_owner_id"),
        "opportunity_id": ("associations.dealIds", "associations.deal", "dealId", "dealIds"),
        "contact_id": ("associations.contactIds", "associations.contact", "contactId"),
        "account_id": ("associations.companyIds", "associations.company", "companyId"),
        "subject": ("metadata.subject", "metadata.title", "subject", "title", "hs_title"),
        "is_completed": ("metadata.status", "status"),
    }
    _note_missing(engagements, fields, ("activity_id", "activity_type", "occurred_at"), notes)
    picked = {c: _pick(engagements, names) for c, names in fields.items()}
    # Both a subject (e-mails) and a title (meetings, tasks) may be present: either names it.
    subjects = [engagements.col(n) for n in fields["subject"] if engagements.has(n)]
    subject = f"coalesce({', '.join(subjects)})" if subjects else "NULL"
    kind = picked["activity_type"][0]
    types = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in ENGAGEMENT_TYPES.items())
    status = picked["is_completed"][0]
    items = [
        f"{picked['activity_id'][0]} AS activity_id",
        f"CASE upper({kind}) {types} ELSE {kind} END AS activity_type",
        f"{_ts(engagements, picked['occurred_at'][0])} AS occurred_at",
        f"{picked['owner_id'][0]} AS owner_id",
        f"{_first_id(picked['opportunity_id'][0])} AS opportunity_id",
        f"{_first_id(picked['contact_id'][0])} AS contact_id",
        f"{_first_id(picked['account_id'][0])} AS account_id",
        f"{subject} AS subject",
        f"CASE WHEN upper({status}) = 'COMPLETED' "
        f"OR (upper({status}) = 'SENT' AND upper({kind}) LIKE '%EMAIL') THEN 'true' "
        f"WHEN {status} IS NOT NULL THEN 'false' END AS is_completed",
    ]
    used = [n for _c, (_e, n) in picked.items() if n]
    used += [n for n in fields["subject"] if engagements.has(n)]
    items += engagements.extras(used, "activities")
    items += engagements.lineage()
    return f"SELECT {', '.join(items)} FROM {engagements.view}"


def _note_missing(
    export: Export,
    fields: dict[str, tuple[str, ...]],
    required: tuple[str, ...],
    notes: list[str],
) -> None:
    """Say which required canonical columns the file cannot fill. These files are
    optional objects: the framework then sets their rows aside (ingestion.sources.
    reconcile) rather than let them block the batch's deals."""
    for column in required:
        if not any(export.has(n) for n in fields[column]):
            notes.append(
                _missing_note(export, column, fields[column], f"its rows are set aside ({column})")
            )
