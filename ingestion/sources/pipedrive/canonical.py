"""Conversion to canonical rows: the SQL that turns Pipedrive's deals (read or rebuilt),
stage history, users, activities, organizations and persons into the canonical entities
(won and lost as stages, timestamps marked as UTC, activity types mapped).
"""

from __future__ import annotations

import duckdb

from ingestion.sources.export import Export, date_sql, sql_str
from ingestion.sources.pipedrive.files import _inactive_sql, _label, percent_sql, utc_sql

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


# --- deals -------------------------------------------------------------------------------


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


# A status outside Pipedrive's four passes into is_won unchanged: the gate then
# quarantines the deal naming the value, instead of it silently counting as open.
_KNOWN_STATUS = "_status IS NULL OR _status IN ('open', 'won', 'lost', 'deleted')"


def _opportunities_sql(deals: Export) -> str:
    probability = percent_sql(
        f"coalesce({deals.col('probability')}, "
        f"(SELECT s.deal_probability FROM _pd_stages s WHERE s.stage_id = _stage_id))"
    )
    deleted = deals.bool("deleted") if deals.has("deleted") else "NULL"
    known = _KNOWN_STATUS
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
            {"".join(", " + c for c in deals.lineage())}
            {"".join(", " + e for e in extras)}
        FROM _pd_deals
    """


# Deals rebuilt from the change log: no name, account or expected close date (the log's
# title / org_id rows are set aside, see REBUILD_KEYS). A deal whose log holds no status
# at all has is_closed / is_won empty: not delivered (the marts read the outcome from the
# stage history, where an after-sales stage counts as won).
_REBUILT_OPPORTUNITIES_SQL = f"""
    SELECT _id AS opportunity_id, _created AS created_at, _stage AS stage,
        _owner AS owner_id, _amount AS amount, _currency AS currency,
        {percent_sql("(SELECT s.deal_probability FROM _pd_stages s WHERE s.stage_id = _last_stage_id)")}
            AS probability,
        {date_sql("_closed_at")} AS close_date,
        CASE WHEN _status IS NULL THEN NULL
            WHEN {_KNOWN_STATUS} THEN CAST(_status IN ('won', 'lost') AS VARCHAR)
            ELSE _status END AS is_closed,
        CASE WHEN _status IS NULL THEN NULL
            WHEN {_KNOWN_STATUS} THEN CAST(_status = 'won' AS VARCHAR)
            ELSE _status END AS is_won,
        _lost_reason AS lost_reason, _updated AS updated_at,
        CAST(_status IS NOT DISTINCT FROM 'deleted' AS VARCHAR) AS is_deleted,
        _stage_name AS pipedrive_stage, _export_file, _export_line
    FROM _pd_deals
"""  # noqa: E501


def _stage_changes_sql(rebuild: bool) -> str:
    """Every entry into a stage, from this batch: the changelog's stage moves, each deal's
    creation stage, and the won / lost / reopened moments of the status. Rebuilt from the
    change log (``rebuild``): also the losses known from a lost_reason alone, and only
    for deals rebuilt or exported by an earlier deals file (the rows of the others are
    set aside and counted, not sent to the gate as orphans)."""
    inferred = """
    inferred_losses AS (
        -- No status change at all: a lost_reason is set when the deal is marked lost.
        SELECT l.deal_id AS opportunity_id, 'closed_lost' AS stage, l.at_text AS changed_at,
            l.change_id, l.user_id AS changed_by, l._file AS _export_file,
            l._line AS _export_line
        FROM _pd_log AS l JOIN _pd_deals AS d ON d._id = l.deal_id
        WHERE l.this_batch AND d._lost_by_reason AND l.field_key = 'lost_reason'
            AND l.new_value IS NOT NULL AND l.at_ts IS NOT NULL
    ),"""
    return f"""
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
            NULL AS change_id, NULL AS changed_by, d._export_file, d._export_line
        FROM _pd_deals AS d
        LEFT JOIN first_move AS f ON f.deal_id = d._id
        WHERE d._created IS NOT NULL
            AND (f.deal_id IS NULL AND d._stage_id IS NOT NULL
                OR f.old_value IS NOT NULL
                    AND coalesce(TRY_CAST(d._created AS TIMESTAMPTZ) <= f.at_ts, true))
    ),
    moves AS (
        SELECT deal_id AS opportunity_id, {_label("new_value", "new_formatted")} AS stage,
            at_text AS changed_at, change_id, user_id AS changed_by, _file AS _export_file,
            _line AS _export_line
        FROM _pd_log
        WHERE this_batch AND field_key = 'stage_id' AND new_value IS NOT NULL
    ),
    status_changes AS (
        -- Won / lost as the changelog recorded them (a deal can close more than once).
        SELECT deal_id AS opportunity_id,
            CASE lower(new_value) WHEN 'won' THEN 'closed_won' ELSE 'closed_lost' END AS stage,
            at_text AS changed_at, change_id, user_id AS changed_by, _file AS _export_file,
            _line AS _export_line
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
            r.at_text AS changed_at, r.change_id, r.user_id AS changed_by,
            r._file AS _export_file, r._line AS _export_line
        FROM (SELECT * FROM _pd_status WHERE this_batch AND lower(new_value) = 'open'
                AND prev_status IN ('won', 'lost') AND at_ts IS NOT NULL) AS r
        ASOF LEFT JOIN stage_moves AS m ON m.deal_id = r.deal_id AND r.at_ts >= m.at_ts
        LEFT JOIN first_move AS f ON f.deal_id = r.deal_id
        LEFT JOIN _pd_deals AS d ON d._id = r.deal_id
    ),
    closing AS (
        -- The deal's own closing time (won_time / lost_time), for deals won / lost now.
        SELECT _id AS opportunity_id,
            CASE _status WHEN 'won' THEN 'closed_won' ELSE 'closed_lost' END AS stage,
            _closed_at AS changed_at, NULL AS change_id, NULL AS changed_by, _export_file,
            _export_line
        FROM _pd_deals WHERE _status IN ('won', 'lost') AND _closed_at IS NOT NULL
    ),{inferred if rebuild else ""}
    entries AS (
        SELECT * FROM creation
        UNION ALL SELECT * FROM moves
        UNION ALL SELECT * FROM status_changes
        UNION ALL SELECT * FROM reopened
        UNION ALL SELECT * FROM closing
        {"UNION ALL SELECT * FROM inferred_losses" if rebuild else ""}
    )
    -- The same entry from two places (won_time and the changelog's status change) once,
    -- keeping the changelog's id and user.
    SELECT DISTINCT ON (opportunity_id, stage, changed_at)
        CAST(opportunity_id AS VARCHAR) AS opportunity_id, CAST(stage AS VARCHAR) AS stage,
        CAST(changed_at AS VARCHAR) AS changed_at, CAST(change_id AS VARCHAR) AS change_id,
        CAST(changed_by AS VARCHAR) AS changed_by,
        CAST(_export_file AS VARCHAR) AS _export_file,
        CAST(_export_line AS VARCHAR) AS _export_line
    FROM entries
    WHERE opportunity_id IS NOT NULL
        {_REBUILT_ONLY if rebuild else ""}
    ORDER BY opportunity_id, stage, changed_at, change_id NULLS LAST
"""


_REBUILT_ONLY = (
    "AND (opportunity_id IN (SELECT _id FROM _pd_deals) "
    "OR opportunity_id IN (SELECT deal_id FROM _pd_known))"
)


# --- users, activities, organizations, persons --------------------------------------------


def _users_sql(users: Export, order: str) -> str:
    mapped = ["id", "user_id", "name", "user_name", "email", "active_flag", "created"]
    mapped += ["modified"]
    extras = users.extras(mapped, "users")
    return f"""
        SELECT {users.first("id", "user_id")} AS user_id,
            {users.first("name", "user_name")} AS name,
            {users.col("email")} AS email, {users.bool("active_flag")} AS is_active,
            {utc_sql(users.col("created"), order)} AS created_at,
            {utc_sql(users.col("modified"), order)} AS updated_at
            {"".join(", " + e for e in extras)}
            {"".join(", " + c for c in users.lineage())}
        FROM {users.view}
    """


def _activities_sql(activities: Export, order: str) -> str:
    kind = f"lower({activities.col('type')})"
    cases = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in _ACTIVITY_TYPES.items())
    due = activities.first("due_date", "due_to")
    due_time = activities.col("due_time")
    # Pipedrive's due_time is HH:MM (UTC); a due date without a time is taken at 00:00; a
    # database dump's due_to may already hold the time.
    when = (
        f"CASE WHEN {due_time} IS NOT NULL THEN {due} || ' ' || CASE WHEN regexp_matches("
        f"{due_time}, '^\\d{{1,2}}:\\d{{2}}$') THEN {due_time} || ':00' ELSE {due_time} END "
        f"WHEN regexp_matches({due}, '^\\d{{4}}-\\d{{2}}-\\d{{2}}$') THEN {due} || ' 00:00:00' "
        f"ELSE {due} END"
    )
    occurred = (
        f"CASE WHEN {due} IS NOT NULL THEN {utc_sql(when, order)} "
        f"ELSE {utc_sql(activities.col('add_time'), order)} END"
    )
    owner = activities.first("user_id", "assigned_to_user", "owner_id")
    mapped = ["id", "activity_id", "due_date", "due_to", "due_time", "user_id"]
    mapped += ["assigned_to_user", "owner_id", "deal_id", "lead_id", "person_id", "org_id"]
    mapped += ["subject", "done"]
    extras = activities.extras(mapped, "activities")
    return f"""
        SELECT {activities.first("id", "activity_id")} AS activity_id,
            CASE WHEN {kind} IS NULL THEN NULL ELSE CASE {kind} {cases} ELSE 'other' END END
                AS activity_type,
            {occurred} AS occurred_at, {owner} AS owner_id,
            {activities.col("deal_id")} AS opportunity_id, {activities.col("lead_id")} AS lead_id,
            {activities.col("person_id")} AS contact_id, {activities.col("org_id")} AS account_id,
            {activities.col("subject")} AS subject, {activities.bool("done")} AS is_completed
            {"".join(", " + e for e in extras)}
            {"".join(", " + c for c in activities.lineage())}
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
            {"".join(", " + c for c in orgs.lineage())}
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
            {"".join(", " + c for c in persons.lineage())}
        FROM {persons.view}
    """
