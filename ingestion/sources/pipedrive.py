"""Pipedrive: CSV exports of the API's objects (field keys as headers) → canonical entities.

Files of a batch (names matched case-insensitively): ``deals``, ``stages``, ``users``,
``activities``, ``deal_changelog`` (or ``deal_flow`` / ``deal_updates``), and optionally
``organizations`` and ``persons``.

What Pipedrive does differently from the canonical model, and how it is bridged:

- A deal's stage is a ``stage_id``; the label the stage map sees is the stage's NAME
  (``stages.csv``), so the default labels below apply. An incremental export often has no
  ``stages.csv``: the newest one of this or an earlier batch of the landing is used.
- Won and lost are deal *statuses*, not stages: a won deal keeps its last pipeline stage.
  So a won (lost) deal's snapshot stage is ``closed_won`` (``closed_lost``), its Pipedrive
  stage name is kept as the attribute ``pipedrive_stage``, and its stage history gets an
  entry into ``closed_won`` at ``won_time`` (``closed_lost`` at ``lost_time``).
- The stage history comes from the deal changelog (``field_key = stage_id`` rows). The
  first change's ``old_value`` is the stage the deal was created in, entered at
  ``add_time``. Changelog exports are usually incremental, so "first change" is decided
  over the changelogs of this batch and every earlier batch of the landing.
- Timestamps are ``YYYY-MM-DD HH:MM:SS`` in UTC: they are marked as UTC (``Z``) so the
  pipeline's ``source_timezone`` (meant for offset-less CRM exports) does not shift them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ingestion.config import SourceSpec
from ingestion.errors import LandingError
from ingestion.landing import batch_folders
from ingestion.sources.export import (
    Conversion,
    Export,
    ExportBatch,
    bool_sql,
    date_sql,
    sql_str,
    timestamp_sql,
)

# Pipedrive's default pipeline. Won/lost are statuses, mapped by the adapter itself.
DEFAULT_STAGE_LABELS: dict[str, str] = {
    "Qualified": "qualification",
    "Contact Made": "meeting",
    "Demo Scheduled": "meeting",
    "Proposal Made": "proposal",
    "Negotiations Started": "negotiation",
}

CHANGELOG_NAMES = ("deal_changelog", "deal_flow", "deal_updates")

# Pipedrive activity types → canonical activity_type. Canonical names map to themselves;
# custom types (an admin can add any) become "other", the original stays as ``type``.
_ACTIVITY_TYPES = {
    "call": "call",
    "meeting": "meeting",
    "task": "other",
    "deadline": "other",
    "email": "email",
    "lunch": "meeting",
    "demo": "demo",
    "proposal": "proposal",
    "follow_up": "follow_up",
    "onboarding": "onboarding",
    "other": "other",
}

# What a missing column costs, for the notes.
_DEAL_COLUMNS = {
    "title": "opportunities have no name",
    "value": "opportunities have no amount",
    "currency": "amounts are taken to be in the reporting currency",
    "add_time": "opportunities have no created_at and are quarantined",
    "update_time": "a re-exported deal replaces the earlier one by batch order only",
    "stage_id": "opportunities have no stage and are quarantined",
    "status": "no deal is known to be won, lost or deleted",
    "won_time": "won deals close at the changelog's status change, else close_time",
    "lost_time": "lost deals close at the changelog's status change, else close_time",
    "expected_close_date": "open deals have no close_date",
    "org_id": "opportunities have no account",
    "probability": "probability is the stage's deal_probability",
    "lost_reason": "lost_reason comes from the changelog only",
}
_ACTIVITY_COLUMNS = {
    "due_date": "occurred_at is the activity's add_time",
    "done": "activities have no is_completed",
    "deal_id": "activities are not linked to deals (no touchpoints)",
}

_ISO_NO_OFFSET = r"'^\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$'"


def utc_sql(expr: str, date_order: str = "mdy") -> str:
    """A Pipedrive timestamp (UTC, written without offset) marked as UTC. Other shapes (a
    report-style date from a UI export) are normalised as usual and read in the source's
    time zone; a value that fits nothing passes unchanged to the gate."""
    return (
        f"CASE WHEN regexp_matches({expr}, {_ISO_NO_OFFSET}) THEN {expr} || 'Z' "
        f"ELSE {timestamp_sql(expr, date_order)} END"
    )


def percent_sql(expr: str) -> str:
    """Percent → fraction; a value that is not a number passes unchanged to the gate."""
    number = f"TRY_CAST({expr} AS DOUBLE)"
    return f"CASE WHEN {number} IS NULL THEN {expr} ELSE CAST({number} / 100 AS VARCHAR) END"


def _inactive_sql(expr: str) -> str:
    """is_deleted from Pipedrive's active_flag (its negation; other values pass)."""
    flag = bool_sql(expr)
    return f"CASE {flag} WHEN 'true' THEN 'false' WHEN 'false' THEN 'true' ELSE {flag} END"


def _missing(export: Export, wanted: dict[str, str]) -> list[str]:
    return [
        f"{export.path.name} has no {column} column: {meaning}"
        for column, meaning in wanted.items()
        if not export.has(column)
    ]


def _earlier_files(batch: ExportBatch, *names: str) -> list[Path]:
    """The files named like ``names`` in the batches before this one, oldest first
    (incremental exports leave stages.csv out and hold only new changelog rows)."""
    found = [
        ExportBatch(batch.con, folder).file(*names)
        for folder in batch_folders(batch.folder.parent)
        if folder.name < batch.folder.name
    ]
    return [p for p in found if p is not None]


def convert(batch: ExportBatch, spec: SourceSpec) -> Conversion:
    """One Pipedrive export batch → canonical entities (``stages`` is not emitted: the
    canonical stages entity defines canonical stages, Pipedrive's are labels)."""
    conv = Conversion()
    con = batch.con
    order = batch.date_order
    deals = batch.read("deals")
    users = batch.read("users")
    activities = batch.read("activities")
    organizations = batch.read("organizations")
    persons = batch.read("persons")
    has_log_file = batch.file(*CHANGELOG_NAMES) is not None
    if not (deals or users or activities or organizations or persons or has_log_file):
        raise LandingError(
            f"{batch.folder}: no Pipedrive export file found; expected deals.csv, "
            f"stages.csv, users.csv, activities.csv, deal_changelog.csv (optional: "
            f"organizations.csv, persons.csv)."
        )

    has_stages = _stages_view(batch, conv)
    _changelog_view(batch, conv)
    if not has_stages:
        conv.notes.append(
            "no stages file (in this or an earlier batch): stage ids cannot be turned into "
            "stage names, so stage labels read 'stage_id <id>' (map them under "
            "stage_labels: in the config), and an empty deal probability stays empty"
        )
    if deals is None:
        conv.notes.append(
            "no deals file: no opportunities from this batch (its changelog still gives "
            "stage changes of deals exported earlier)"
        )
        _empty_deals_view(con)
    else:
        conv.notes += _missing(deals, _DEAL_COLUMNS)
        if not deals.has("user_id") and not deals.has("owner_id"):
            conv.notes.append(f"{deals.path.name} has no user_id column: deals have no owner")
        _deals_view(con, deals, order)
        conv.entities["opportunities"] = _opportunities_sql(deals)
    conv.entities["stage_changes"] = _STAGE_CHANGES_SQL

    if users is None:
        conv.notes.append("no users file: no sales reps from this batch")
    else:
        conv.entities["users"] = _users_sql(users, order)
    if activities is None:
        conv.notes.append("no activities file: no activities from this batch")
    else:
        conv.notes += _missing(activities, _ACTIVITY_COLUMNS)
        conv.entities["activities"] = _activities_sql(activities, order)
    if organizations is None:
        conv.notes.append("no organizations file: no accounts from this batch")
    else:
        conv.entities["accounts"] = _accounts_sql(organizations, order)
    if persons is None:
        conv.notes.append("no persons file: no contacts from this batch")
    else:
        conv.entities["contacts"] = _contacts_sql(persons, order)
    return conv


# --- stages ------------------------------------------------------------------------------


def _stages_view(batch: ExportBatch, conv: Conversion) -> bool:
    """``_pd_stages(stage_id, name, deal_probability)`` from this batch's stages file, else
    the newest earlier one; empty without any."""
    stages = batch.read("stages")
    if stages is None:
        earlier = _earlier_files(batch, "stages")
        if earlier:
            stages = batch.read_path(earlier[-1])
            conv.notes.append(
                f"no stages file: stage names and probabilities come from batch "
                f"{earlier[-1].parent.name}"
            )
    if stages is None:
        batch.con.execute(
            "CREATE OR REPLACE TEMP VIEW _pd_stages AS SELECT NULL::VARCHAR AS stage_id, "
            "NULL::VARCHAR AS name, NULL::VARCHAR AS deal_probability WHERE false"
        )
        return False
    batch.con.execute(
        f"CREATE OR REPLACE TEMP VIEW _pd_stages AS SELECT {stages.col('id')} AS stage_id, "
        f"any_value({stages.col('name')}) AS name, "
        f"any_value({stages.col('deal_probability')}) AS deal_probability "
        f"FROM {stages.view} WHERE {stages.col('id')} IS NOT NULL GROUP BY 1"
    )
    return True


def _label(stage_id: str, formatted: str = "NULL") -> str:
    """The label of a stage id: the stage's name, else the changelog's formatted value,
    else ``stage_id <id>`` (unmapped, so the gate names it rather than us guessing)."""
    return (
        f"coalesce((SELECT s.name FROM _pd_stages s WHERE s.stage_id = {stage_id}), "
        f"{formatted}, 'stage_id ' || {stage_id})"
    )


# --- deal changelog ----------------------------------------------------------------------


def _changelog_view(batch: ExportBatch, conv: Conversion) -> None:
    """``_pd_log``: the changelog rows of this batch and every earlier one, with the
    timestamp typed for ordering (``at_ts``) next to the text written out (``at_text``)."""
    current = batch.file(*CHANGELOG_NAMES)
    paths = [(p, False) for p in _earlier_files(batch, *CHANGELOG_NAMES)]
    if current is not None:
        paths.append((current, True))
    else:
        conv.notes.append(
            "no deal_changelog: stage history is each deal's current stage only, entered "
            "at its stage_change_time (at add_time when it never changed stage); won and "
            "lost deals close at won_time / lost_time (else close_time)"
        )
    selects = []
    for path, this_batch in paths:
        log = batch.read_path(path)
        if this_batch:
            conv.notes += _missing(
                log,
                {
                    "field_key": "no change can be read from the changelog",
                    "new_value": "no change can be read from the changelog",
                },
            )
        at = utc_sql(log.first("timestamp", "log_time"), batch.date_order)
        old_formatted = log.first("old_value_formatted", "additional_data.old_value_formatted")
        new_formatted = log.first("new_value_formatted", "additional_data.new_value_formatted")
        selects.append(
            f"SELECT {log.first('deal_id', 'item_id')} AS deal_id, {at} AS at_text, "
            f"lower({log.col('field_key')}) AS field_key, {log.col('old_value')} AS old_value, "
            f"{log.col('new_value')} AS new_value, {log.col('user_id')} AS user_id, "
            f"{log.col('id')} AS change_id, {old_formatted} AS old_formatted, "
            f"{new_formatted} AS new_formatted, {this_batch} AS this_batch FROM {log.view}"
        )
    if not selects:
        selects.append(
            "SELECT NULL AS deal_id, NULL AS at_text, NULL AS field_key, NULL AS old_value, "
            "NULL AS new_value, NULL AS user_id, NULL AS change_id, NULL AS old_formatted, "
            "NULL AS new_formatted, false AS this_batch WHERE false"
        )
    union = " UNION ALL ".join(selects)
    batch.con.execute(
        "CREATE OR REPLACE TEMP VIEW _pd_log AS SELECT "
        "CAST(deal_id AS VARCHAR) AS deal_id, CAST(at_text AS VARCHAR) AS at_text, "
        "TRY_CAST(at_text AS TIMESTAMPTZ) AS at_ts, CAST(field_key AS VARCHAR) AS field_key, "
        "CAST(old_value AS VARCHAR) AS old_value, CAST(new_value AS VARCHAR) AS new_value, "
        "CAST(user_id AS VARCHAR) AS user_id, CAST(change_id AS VARCHAR) AS change_id, "
        "CAST(old_formatted AS VARCHAR) AS old_formatted, "
        "CAST(new_formatted AS VARCHAR) AS new_formatted, this_batch "
        f"FROM ({union})"
    )


# --- deals -------------------------------------------------------------------------------


def _empty_deals_view(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _pd_deals AS SELECT NULL::VARCHAR AS _id, "
        "NULL::VARCHAR AS _status, NULL::VARCHAR AS _stage_id, NULL::VARCHAR AS _stage_name, "
        "NULL::VARCHAR AS _created, NULL::VARCHAR AS _stage_changed, "
        "NULL::VARCHAR AS _closed_at, NULL::VARCHAR AS _lost_reason WHERE false"
    )


def _deals_view(con: duckdb.DuckDBPyConnection, deals: Export, order: str) -> None:
    """``_pd_deals``: each exported deal with its status, stage name, creation and closing
    time resolved (the changelog fills in what the deals file lacks)."""
    ts = {c: utc_sql(deals.col(c), order) for c in ("won_time", "lost_time", "close_time")}
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _pd_deals AS
        WITH d AS (
            SELECT *, {deals.col("id")} AS _id, lower({deals.col("status")}) AS _status,
                {deals.col("stage_id")} AS _stage_id,
                {utc_sql(deals.col("add_time"), order)} AS _created,
                {utc_sql(deals.col("stage_change_time"), order)} AS _stage_changed,
                {ts["won_time"]} AS _won_time, {ts["lost_time"]} AS _lost_time,
                {ts["close_time"]} AS _close_time
            FROM {deals.view}
        ),
        log_close AS (
            -- The latest change of status to won / lost: the closing time when the deals
            -- file has no won_time / lost_time.
            SELECT deal_id AS _lc_deal, lower(new_value) AS _lc_status,
                arg_max(at_text, at_ts) AS _lc_at
            FROM _pd_log
            WHERE field_key = 'status' AND lower(new_value) IN ('won', 'lost')
            GROUP BY ALL
        ),
        log_lost_reason AS (
            SELECT deal_id AS _lr_deal, arg_max(new_value, at_ts) AS _lr_reason
            FROM _pd_log WHERE field_key = 'lost_reason' AND new_value IS NOT NULL
            GROUP BY deal_id
        )
        SELECT d.*,
            {_label("d._stage_id")} AS _stage_name,
            CASE WHEN d._status = 'won' THEN coalesce(d._won_time, lc._lc_at, d._close_time)
                 WHEN d._status = 'lost' THEN coalesce(d._lost_time, lc._lc_at, d._close_time)
            END AS _closed_at,
            coalesce({deals.col("lost_reason")}, lr._lr_reason) AS _lost_reason
        FROM d
        LEFT JOIN log_close AS lc ON lc._lc_deal = d._id AND lc._lc_status = d._status
        LEFT JOIN log_lost_reason AS lr ON lr._lr_deal = d._id
        """
    )


def _opportunities_sql(deals: Export) -> str:
    probability = percent_sql(
        f"coalesce({deals.col('probability')}, "
        f"(SELECT s.deal_probability FROM _pd_stages s WHERE s.stage_id = _stage_id))"
    )
    deleted = deals.bool("deleted") if deals.has("deleted") else "NULL"
    # A status outside Pipedrive's four passes into is_won unchanged: the gate then
    # quarantines the deal naming the value, instead of it silently counting as open.
    known = "_status IS NULL OR _status IN ('open', 'won', 'lost', 'deleted')"
    mapped = [
        "id", "title", "value", "currency", "add_time", "update_time", "status",
        "probability", "lost_reason", "user_id", "owner_id", "org_id", "deleted",
        "expected_close_date",
    ]  # fmt: skip
    extras = deals.extras(mapped, "opportunities")
    return f"""
        SELECT _id AS opportunity_id, _created AS created_at,
            CASE _status WHEN 'won' THEN 'closed_won' WHEN 'lost' THEN 'closed_lost'
                ELSE _stage_name END AS stage,
            {deals.first("user_id", "owner_id")} AS owner_id,
            {deals.col("org_id")} AS account_id, {deals.col("title")} AS name,
            {deals.col("value")} AS amount, {deals.col("currency")} AS currency,
            {probability} AS probability,
            -- Expected while open, actual once closed (docs/data-model.md).
            coalesce({date_sql("_closed_at")}, {deals.date("expected_close_date")})
                AS close_date,
            CASE WHEN {known} THEN CAST(_status IN ('won', 'lost') AS VARCHAR) ELSE _status END
                AS is_closed,
            CASE WHEN {known} THEN CAST(_status = 'won' AS VARCHAR) ELSE _status END AS is_won,
            _lost_reason AS lost_reason,
            {utc_sql(deals.col("update_time"), deals.date_order)} AS updated_at,
            CASE WHEN _status = 'deleted' THEN 'true' ELSE coalesce({deleted}, 'false') END
                AS is_deleted,
            _stage_name AS pipedrive_stage
            {"".join(", " + e for e in extras)}
        FROM _pd_deals
    """


# Every entry into a stage, from this batch: the changelog's stage moves, each deal's
# creation stage, and the won / lost / reopened moments of the status.
_STAGE_CHANGES_SQL = f"""
    WITH stage_moves AS (
        SELECT * FROM _pd_log WHERE field_key = 'stage_id' AND at_ts IS NOT NULL
    ),
    first_move AS (
        -- Over this and earlier batches: the deal's first recorded move.
        SELECT deal_id, arg_min(old_value, at_ts) AS old_value,
            arg_min(old_formatted, at_ts) AS old_formatted, min(at_ts) AS at_ts
        FROM stage_moves GROUP BY deal_id
    ),
    creation AS (
        -- The stage a deal was created in, entered at add_time: the first move's
        -- old_value; with no move at all its current stage, entered when it last changed
        -- stage (or at add_time). A first move without old_value is the creation itself.
        SELECT d._id AS opportunity_id,
            CASE WHEN f.deal_id IS NULL THEN d._stage_name
                ELSE {_label("f.old_value", "f.old_formatted")} END AS stage,
            CASE WHEN f.deal_id IS NULL THEN coalesce(d._stage_changed, d._created)
                ELSE d._created END AS changed_at,
            NULL AS change_id, NULL AS changed_by
        FROM _pd_deals AS d
        LEFT JOIN first_move AS f ON f.deal_id = d._id
        WHERE d._created IS NOT NULL
            AND (f.deal_id IS NULL AND d._stage_id IS NOT NULL
                OR f.old_value IS NOT NULL
                    AND coalesce(TRY_CAST(d._created AS TIMESTAMPTZ) <= f.at_ts, true))
    ),
    moves AS (
        SELECT deal_id AS opportunity_id, {_label("new_value", "new_formatted")} AS stage,
            at_text AS changed_at, change_id, user_id AS changed_by
        FROM _pd_log
        WHERE this_batch AND field_key = 'stage_id' AND new_value IS NOT NULL
    ),
    status_changes AS (
        -- Won / lost as the changelog recorded them (a deal can close more than once).
        SELECT deal_id AS opportunity_id,
            CASE lower(new_value) WHEN 'won' THEN 'closed_won' ELSE 'closed_lost' END AS stage,
            at_text AS changed_at, change_id, user_id AS changed_by
        FROM _pd_log
        WHERE this_batch AND field_key = 'status' AND lower(new_value) IN ('won', 'lost')
    ),
    reopened AS (
        -- Back to open: the deal re-enters the pipeline stage it held at that moment.
        SELECT r.deal_id AS opportunity_id,
            coalesce({_label("m.new_value", "m.new_formatted")},
                CASE WHEN f.old_value IS NOT NULL
                    THEN {_label("f.old_value", "f.old_formatted")} END,
                d._stage_name) AS stage,
            r.at_text AS changed_at, r.change_id, r.user_id AS changed_by
        FROM (SELECT * FROM _pd_log WHERE this_batch AND field_key = 'status'
                AND lower(new_value) = 'open' AND lower(old_value) IN ('won', 'lost')
                AND at_ts IS NOT NULL) AS r
        ASOF LEFT JOIN stage_moves AS m ON m.deal_id = r.deal_id AND r.at_ts >= m.at_ts
        LEFT JOIN first_move AS f ON f.deal_id = r.deal_id
        LEFT JOIN _pd_deals AS d ON d._id = r.deal_id
    ),
    closing AS (
        -- The deals file's own closing time, for deals won / lost as exported.
        SELECT _id AS opportunity_id,
            CASE _status WHEN 'won' THEN 'closed_won' ELSE 'closed_lost' END AS stage,
            _closed_at AS changed_at, NULL AS change_id, NULL AS changed_by
        FROM _pd_deals WHERE _status IN ('won', 'lost') AND _closed_at IS NOT NULL
    ),
    entries AS (
        SELECT * FROM creation
        UNION ALL SELECT * FROM moves
        UNION ALL SELECT * FROM status_changes
        UNION ALL SELECT * FROM reopened
        UNION ALL SELECT * FROM closing
    )
    -- The same entry from two places (won_time and the changelog's status change) once,
    -- keeping the changelog's id and user.
    SELECT DISTINCT ON (opportunity_id, stage, changed_at)
        CAST(opportunity_id AS VARCHAR) AS opportunity_id, CAST(stage AS VARCHAR) AS stage,
        CAST(changed_at AS VARCHAR) AS changed_at, CAST(change_id AS VARCHAR) AS change_id,
        CAST(changed_by AS VARCHAR) AS changed_by
    FROM entries
    WHERE opportunity_id IS NOT NULL
    ORDER BY opportunity_id, stage, changed_at, change_id NULLS LAST
"""


# --- users, activities, organizations, persons --------------------------------------------


def _users_sql(users: Export, order: str) -> str:
    mapped = ["id", "name", "email", "active_flag", "created", "modified"]
    extras = users.extras(mapped, "users")
    return f"""
        SELECT {users.col("id")} AS user_id, {users.col("name")} AS name,
            {users.col("email")} AS email, {users.bool("active_flag")} AS is_active,
            {utc_sql(users.col("created"), order)} AS created_at,
            {utc_sql(users.col("modified"), order)} AS updated_at
            {"".join(", " + e for e in extras)}
        FROM {users.view}
    """


def _activities_sql(activities: Export, order: str) -> str:
    kind = f"lower({activities.col('type')})"
    cases = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in _ACTIVITY_TYPES.items())
    due_time = activities.col("due_time")
    # Pipedrive's due_time is HH:MM (UTC); a due date without a time is taken at 00:00.
    when = (
        f"{activities.col('due_date')} || ' ' || coalesce(CASE WHEN regexp_matches("
        f"{due_time}, '^\\d{{1,2}}:\\d{{2}}$') THEN {due_time} || ':00' ELSE {due_time} END, "
        f"'00:00:00')"
    )
    occurred = (
        f"CASE WHEN {activities.col('due_date')} IS NOT NULL THEN {utc_sql(when, order)} "
        f"ELSE {utc_sql(activities.col('add_time'), order)} END"
    )
    mapped = ["id", "due_date", "due_time", "user_id", "deal_id", "lead_id", "person_id"]
    mapped += ["org_id", "subject", "done"]
    extras = activities.extras(mapped, "activities")
    return f"""
        SELECT {activities.col("id")} AS activity_id,
            CASE WHEN {kind} IS NULL THEN NULL ELSE CASE {kind} {cases} ELSE 'other' END END
                AS activity_type,
            {occurred} AS occurred_at, {activities.col("user_id")} AS owner_id,
            {activities.col("deal_id")} AS opportunity_id, {activities.col("lead_id")} AS lead_id,
            {activities.col("person_id")} AS contact_id, {activities.col("org_id")} AS account_id,
            {activities.col("subject")} AS subject, {activities.bool("done")} AS is_completed
            {"".join(", " + e for e in extras)}
        FROM {activities.view}
    """


def _accounts_sql(orgs: Export, order: str) -> str:
    # people_count is the number of the organisation's persons in Pipedrive, not its
    # employees: it stays an attribute rather than becoming employee_count.
    mapped = ["id", "name", "address_country", "add_time", "update_time", "active_flag"]
    deleted = _inactive_sql(orgs.col("active_flag")) if orgs.has("active_flag") else "NULL"
    extras = orgs.extras(mapped, "accounts")
    return f"""
        SELECT {orgs.col("id")} AS account_id, {orgs.col("name")} AS name,
            {orgs.col("address_country")} AS country,
            {utc_sql(orgs.col("add_time"), order)} AS created_at,
            {utc_sql(orgs.col("update_time"), order)} AS updated_at, {deleted} AS is_deleted
            {"".join(", " + e for e in extras)}
        FROM {orgs.view}
    """


def _contacts_sql(persons: Export, order: str) -> str:
    mapped = ["id", "org_id", "first_name", "last_name", "email", "primary_email", "phone"]
    mapped += ["job_title", "add_time", "update_time", "active_flag"]
    deleted = _inactive_sql(persons.col("active_flag")) if persons.has("active_flag") else "NULL"
    extras = persons.extras(mapped, "contacts")
    return f"""
        SELECT {persons.col("id")} AS contact_id, {persons.col("org_id")} AS account_id,
            {persons.col("first_name")} AS first_name, {persons.col("last_name")} AS last_name,
            coalesce({persons.col("primary_email")}, {persons.col("email")}) AS email,
            {persons.col("phone")} AS phone, {persons.col("job_title")} AS title,
            {utc_sql(persons.col("add_time"), order)} AS created_at,
            {utc_sql(persons.col("update_time"), order)} AS updated_at, {deleted} AS is_deleted
            {"".join(", " + e for e in extras)}
        FROM {persons.view}
    """
