"""The deal change log: reading it over this and every earlier batch (its columns under
their several names), passing it beside a deals file, and rebuilding the deals from it when
a batch has no deals file (``_rebuild_deals``), every row used or set aside with a reason.

Why one module (~530 lines): reading the change log, passing it beside a deals file and
rebuilding deals from it share the columns found (``_LogColumns``), the log files and one
list of reasons a row is set aside; the rebuild is one SQL flow from log rows to deals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.sources.export import Conversion, Export, ExportBatch, sql_str
from ingestion.sources.pipedrive.files import (
    CHANGELOG_NAMES,
    DEALS_NAMES,
    _earlier_files,
    _few,
    _label,
    _label_files,
    _missing,
    _note_aside,
    _plural,
    utc_sql,
)

# Change-log headers: the API's (field_key, timestamp), the flow API's (item_id, log_time)
# and a database dump's (changed_field_key, change_time).
_LOG_DEAL = ("deal_id", "item_id")
_LOG_TIME = ("timestamp", "log_time", "change_time", "changed_at")
_LOG_FIELD = ("field_key", "changed_field_key")

# The field keys a deal is rebuilt from when there is no deals file; rows of other keys
# (title, org_id, ...) are set aside and counted.
REBUILD_KEYS = (
    "add_time", "user_id", "stage_id", "status", "won_time", "lost_time", "lost_reason",
    "value", "currency",
)  # fmt: skip
# Keys whose change is applied by its time (the latest wins): without a readable time it
# cannot be. (stage_id and status rows pass to the gate, which names the time.)
_TIMED_KEYS = ("user_id", "value", "currency", "lost_reason", "won_time", "lost_time")


# --- deal changelog ----------------------------------------------------------------------


@dataclass(frozen=True)
class _LogColumns:
    """A change-log file's columns as SQL expressions, normalised as ``_pd_log`` holds them:
    the same expressions decide a row's fate on ``_pd_log`` and count it on the file."""

    deal: str
    key: str
    new: str
    at_text: str

    @classmethod
    def of(cls, log: Export, date_order: str) -> _LogColumns:
        return cls(
            deal=log.first(*_LOG_DEAL),
            key=f"lower({log.first(*_LOG_FIELD)})",
            new=log.col("new_value"),
            at_text=utc_sql(log.first(*_LOG_TIME), date_order),
        )

    @property
    def at_ts(self) -> str:
        return f"TRY_CAST({self.at_text} AS TIMESTAMPTZ)"

    def created_text(self, date_order: str) -> str:
        """An add_time row's creation time: its new value; a row without one was logged
        when the deal was created, so its change time."""
        return f"coalesce({utc_sql(self.new, date_order)}, {self.at_text})"

    def created_key(self, date_order: str) -> str:
        """The creation time compared between add_time rows: the instant when it parses,
        so that two spellings of one time are no conflict."""
        text = self.created_text(date_order)
        return f"coalesce(CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS VARCHAR), {text})"


@dataclass(frozen=True)
class _LogFile:
    """One change-log file of this batch: as read, and its place (``_seq``) in ``_pd_log``."""

    raw: Export
    seq: int


def _changelog_view(batch: ExportBatch, conv: Conversion, current: list[Path]) -> list[_LogFile]:
    """``_pd_log``: the changelog rows of this batch and every earlier one, with the
    timestamp typed for ordering (``at_ts``) next to the text written out (``at_text``),
    and each row's file (``_file``, ``_seq``: the files' order, oldest batch first) and
    place in it (``_row``); ``_pd_status``: its status changes with the status before.
    Returns this batch's change-log files."""
    groups = [(paths, False) for paths in _earlier_files(batch, CHANGELOG_NAMES)]
    if current:
        groups.append((current, True))
    else:
        conv.notes.append(
            "no deal_changelog: stage history is each deal's current stage only, entered "
            "at its stage_change_time (at add_time when it never changed stage); won and "
            "lost deals close at won_time / lost_time (else close_time)"
        )
    no_change = "no change can be read from the changelog"
    selects = []
    files: list[_LogFile] = []
    for seq, (path, this_batch) in enumerate((p, t) for paths, t in groups for p in paths):
        log = batch.read_path(path)
        if this_batch:
            files.append(_LogFile(log, seq))
            conv.notes += _missing(
                log,
                {
                    _LOG_DEAL: "no change can be linked to a deal",
                    _LOG_FIELD: no_change,
                    ("new_value",): no_change,
                    _LOG_TIME: "changes have no time (stage changes are quarantined)",
                },
            )
        c = _LogColumns.of(log, batch.date_order)
        old_formatted = log.first("old_value_formatted", "additional_data.old_value_formatted")
        new_formatted = log.first("new_value_formatted", "additional_data.new_value_formatted")
        selects.append(
            f"SELECT {c.deal} AS deal_id, {c.at_text} AS at_text, {c.key} AS field_key, "
            f"{log.col('old_value')} AS old_value, {c.new} AS new_value, "
            f"{log.col('user_id')} AS user_id, {log.col('id')} AS change_id, "
            f"{old_formatted} AS old_formatted, {new_formatted} AS new_formatted, "
            f"{this_batch} AS this_batch, {sql_str(path.name)} AS _file, {seq} AS _seq, "
            f"row_number() OVER () AS _row, _export_line AS _line FROM {log.view}"
        )
    if not selects:
        selects.append(
            "SELECT NULL AS deal_id, NULL AS at_text, NULL AS field_key, NULL AS old_value, "
            "NULL AS new_value, NULL AS user_id, NULL AS change_id, NULL AS old_formatted, "
            "NULL AS new_formatted, false AS this_batch, NULL AS _file, 0 AS _seq, "
            "0 AS _row, NULL AS _line WHERE false"
        )
    union = " UNION ALL ".join(selects)
    # Materialised: every later query reads it, and its row numbers must not change.
    batch.con.execute(
        "CREATE OR REPLACE TEMP TABLE _pd_log AS SELECT "
        "CAST(deal_id AS VARCHAR) AS deal_id, CAST(at_text AS VARCHAR) AS at_text, "
        "TRY_CAST(at_text AS TIMESTAMPTZ) AS at_ts, CAST(field_key AS VARCHAR) AS field_key, "
        "CAST(old_value AS VARCHAR) AS old_value, CAST(new_value AS VARCHAR) AS new_value, "
        "CAST(user_id AS VARCHAR) AS user_id, CAST(change_id AS VARCHAR) AS change_id, "
        "CAST(old_formatted AS VARCHAR) AS old_formatted, "
        "CAST(new_formatted AS VARCHAR) AS new_formatted, this_batch, "
        "CAST(_file AS VARCHAR) AS _file, CAST(_seq AS INTEGER) AS _seq, "
        f"CAST(_row AS BIGINT) AS _row, CAST(_line AS VARCHAR) AS _line FROM ({union})"
    )
    # A change log without old_value (a database dump) still shows a reopening: the
    # status before is the deal's previous status change.
    batch.con.execute(
        "CREATE OR REPLACE TEMP VIEW _pd_status AS SELECT *, coalesce(lower(old_value), "
        "lag(lower(new_value)) OVER (PARTITION BY deal_id ORDER BY at_ts NULLS FIRST, _seq, "
        "_row)) AS prev_status FROM _pd_log WHERE field_key = 'status'"
    )
    return files


def _feed_log_beside_deals(conv: Conversion, logs: list[_LogFile]) -> None:
    """With a deals file, the change log gives the stage history (stage moves, won / lost /
    reopened statuses) and a lost_reason the deals file lacks; the other changes are
    already in the deals file's current state."""
    for f in logs:
        c = _LogColumns.of(f.raw, f.raw.date_order)
        used = (
            f"{c.deal} IS NOT NULL AND ({c.key} = 'stage_id' AND {c.new} IS NOT NULL "
            f"OR {c.key} = 'status' OR {c.key} = 'lost_reason' AND {c.new} IS NOT NULL)"
        )
        conv.feed(
            f.raw,
            "stage_changes",
            f"SELECT * FROM {f.raw.view} WHERE {used}",
            set_aside=[(_LOG_REASONS["no_deal_id"], f"{c.deal} IS NULL")],
            rest="changes of other fields: with a deals file, a deal's state comes from it",
        )


# --- deals rebuilt from the change log -----------------------------------------------------

# The latest row first: by change time, then file order.
_LATEST = "at_ts DESC NULLS LAST, _seq DESC, _row DESC"

# Why a change-log row is not used, for notes and the reconciliation (in the order the
# reasons are tried: the first that fits a row is its reason).
_LOG_REASONS: dict[str, str] = {
    "no_deal_id": "without a deal id",
    "no_add_time": (
        "of deals with no add_time row (no creation time to rebuild them from, and no "
        "earlier deals file has them)"
    ),
    "no_stage": "of deals with neither a stage_id change nor a won / lost status (no stage)",
    "known_other_key": (
        "of deals of an earlier deals file, other than stage moves and won / lost / open "
        "statuses (their state comes with the next deals file)"
    ),
    "unused_key": "of field keys a deal is not rebuilt from",
    "empty_value": "with an empty new_value for stage_id, status, user_id or add_time",
    "add_time_conflict": "a second, different add_time of a deal (the earliest is kept)",
    "no_time": "with no readable change time (a change that cannot be ordered is not applied)",
    "exact_repeat": "repeats of another row (same deal, time, field and values: applied once)",
}


def _log_reasons(c: _LogColumns, date_order: str) -> list[tuple[str, str]]:
    """(reason code, SQL condition) for a change-log row not used, first fit first. Every
    condition is a function of the row's content and the deal it names (no row order), so
    the reconciliation counts the same rows on the file as the adapter on ``_pd_log``;
    repeats, the one order-dependent reason, come after, among the rows used."""
    known = f"{c.deal} IN (SELECT deal_id FROM _pd_known)"
    keys = ", ".join(sql_str(k) for k in REBUILD_KEYS)
    timed = ", ".join(sql_str(k) for k in _TIMED_KEYS)
    pair = f"{c.deal} || chr(31) || {c.created_key(date_order)}"
    return [
        ("no_deal_id", f"{c.deal} IS NULL"),
        ("no_add_time", f"NOT {known} AND {c.deal} NOT IN (SELECT deal_id FROM _pd_snap)"),
        ("no_stage", f"{c.deal} IN (SELECT deal_id FROM _pd_snap WHERE _stage IS NULL)"),
        (
            "known_other_key",
            # A win, loss or reopening makes stage history; other statuses (deleted)
            # change the deal's state, which comes with its next deals file.
            f"{known} AND NOT coalesce({c.key} = 'stage_id' OR {c.key} = 'status' "
            f"AND lower({c.new}) IN ('won', 'lost', 'open'), false)",
        ),
        ("unused_key", f"NOT {known} AND coalesce({c.key} NOT IN ({keys}), true)"),
        (
            "empty_value",
            f"{c.key} = 'add_time' AND {c.created_text(date_order)} IS NULL "
            f"OR {c.key} IN ('stage_id', 'status', 'user_id') AND {c.new} IS NULL",
        ),
        (
            "add_time_conflict",
            f"{c.key} = 'add_time' AND {pair} IN "
            f"(SELECT deal_id || chr(31) || created_key FROM _pd_add_lost)",
        ),
        ("no_time", f"{c.key} IN ({timed}) AND {c.at_ts} IS NULL"),
    ]


def _rebuild_deals(batch: ExportBatch, conv: Conversion, logs: list[_LogFile]) -> int:
    """No deals file: ``_pd_deals`` rebuilt from the change log; returns how many deals.

    A deal is rebuilt from every change-log row of it (this and earlier batches), when
    this batch has a row of it: created_at is its add_time row (two different ones: the
    earliest, see below), owner the latest user_id, stage the latest stage_id, the
    outcome its latest status (else won_time / lost_time; else a lost_reason with no
    stage move after it: Pipedrive asks for the reason when a deal is marked lost),
    lost_reason, value and currency the latest ones; updated_at its latest change.

    A deal exported by an earlier batch's deals file is not rebuilt (the deals file has
    what the log lacks: title, organisation ...): its stage moves and won / lost /
    reopened statuses still make its stage history, as with a deals file.

    Every row of this batch's change log is used or set aside with a reason
    (``_LOG_REASONS``), noted and fed to the reconciliation per file."""
    con = batch.con
    order = batch.date_order
    known = [
        f"SELECT CAST({e.col('id')} AS VARCHAR) AS deal_id FROM {e.view}"
        for paths in _earlier_files(batch, DEALS_NAMES)
        for e in (batch.read_path(p) for p in paths)
    ]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pd_known AS SELECT DISTINCT deal_id FROM ("
        + (" UNION ALL ".join(known) or "SELECT NULL::VARCHAR AS deal_id")
        + ") WHERE deal_id IS NOT NULL"
    )
    c = _LogColumns("deal_id", "field_key", "new_value", "at_text")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _pd_adds AS
        SELECT deal_id, {c.created_text(order)} AS created_text,
            {c.created_key(order)} AS created_key,
            TRY_CAST({c.created_text(order)} AS TIMESTAMPTZ) AS created_ts, _seq, _row,
            _file, _line
        FROM _pd_log
        WHERE field_key = 'add_time' AND deal_id IS NOT NULL
            AND {c.created_text(order)} IS NOT NULL
            AND deal_id NOT IN (SELECT deal_id FROM _pd_known)
        """
    )
    rebuild_keys = ", ".join(sql_str(k) for k in REBUILD_KEYS)
    latest = f"ORDER BY {_LATEST}"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _pd_snap AS
        WITH log AS (
            SELECT *, {utc_sql("new_value", order)} AS value_ts FROM _pd_log
            WHERE deal_id IN (SELECT deal_id FROM _pd_adds)
        ),
        created AS (
            -- Two different add_time rows for one id: the earliest. The log cannot tell
            -- which later rows belong to which of the two deals, so the id is one deal
            -- from its first creation on, and none of its changes predates created_at.
            SELECT deal_id,
                first(created_text ORDER BY created_ts ASC NULLS LAST, _seq DESC, _row DESC)
                    AS created,
                first(created_key ORDER BY created_ts ASC NULLS LAST, _seq DESC, _row DESC)
                    AS created_key,
                count(DISTINCT created_key) AS created_versions,
                list(DISTINCT created_text ORDER BY created_text) AS created_values,
                -- A rebuilt deal is named by its add_time row in the user's change log.
                first(_file ORDER BY created_ts ASC NULLS LAST, _seq DESC, _row DESC)
                    AS _export_file,
                first(_line ORDER BY created_ts ASC NULLS LAST, _seq DESC, _row DESC)
                    AS _export_line
            FROM _pd_adds GROUP BY deal_id
        ),
        facts AS (
            SELECT deal_id, bool_or(this_batch) AS in_batch,
                first(new_value {latest})
                    FILTER (WHERE field_key = 'stage_id' AND new_value IS NOT NULL) AS stage_id,
                first(new_formatted {latest})
                    FILTER (WHERE field_key = 'stage_id' AND new_value IS NOT NULL)
                    AS stage_formatted,
                max(at_ts) FILTER (WHERE field_key = 'stage_id' AND new_value IS NOT NULL)
                    AS moved_ts,
                first(lower(new_value) {latest})
                    FILTER (WHERE field_key = 'status' AND new_value IS NOT NULL) AS status,
                first(at_text {latest})
                    FILTER (WHERE field_key = 'status' AND lower(new_value) = 'won')
                    AS won_by_status,
                first(at_text {latest})
                    FILTER (WHERE field_key = 'status' AND lower(new_value) = 'lost')
                    AS lost_by_status,
                first(value_ts {latest}) FILTER (WHERE field_key = 'won_time'
                    AND new_value IS NOT NULL AND at_ts IS NOT NULL) AS won_time,
                max(at_ts) FILTER (WHERE field_key = 'won_time' AND new_value IS NOT NULL)
                    AS won_time_set,
                first(value_ts {latest}) FILTER (WHERE field_key = 'lost_time'
                    AND new_value IS NOT NULL AND at_ts IS NOT NULL) AS lost_time,
                max(at_ts) FILTER (WHERE field_key = 'lost_time' AND new_value IS NOT NULL)
                    AS lost_time_set,
                first(new_value {latest}) FILTER (WHERE field_key = 'lost_reason'
                    AND new_value IS NOT NULL AND at_ts IS NOT NULL) AS lost_reason,
                first(at_text {latest}) FILTER (WHERE field_key = 'lost_reason'
                    AND new_value IS NOT NULL AND at_ts IS NOT NULL) AS lost_reason_at,
                max(at_ts) FILTER (WHERE field_key = 'lost_reason' AND new_value IS NOT NULL)
                    AS lost_reason_ts,
                first(new_value {latest}) FILTER (WHERE field_key = 'user_id'
                    AND new_value IS NOT NULL AND at_ts IS NOT NULL) AS owner,
                -- An emptied value or currency is a cleared field: the latest row counts.
                first(new_value {latest})
                    FILTER (WHERE field_key = 'value' AND at_ts IS NOT NULL) AS amount,
                first(new_value {latest})
                    FILTER (WHERE field_key = 'currency' AND at_ts IS NOT NULL) AS currency,
                -- The latest change used (an emptied stage, status or owner is not).
                first(at_text {latest}) FILTER (WHERE field_key IN ({rebuild_keys})
                    AND at_ts IS NOT NULL AND NOT (new_value IS NULL
                        AND field_key IN ('stage_id', 'status', 'user_id'))) AS updated
            FROM log GROUP BY deal_id
        ),
        outcome AS (
            SELECT c.*, f.* EXCLUDE (deal_id),
                CASE WHEN f.status IS NOT NULL THEN f.status
                    WHEN f.won_time IS NOT NULL
                        AND (f.lost_time IS NULL OR f.won_time_set >= f.lost_time_set)
                        THEN 'won'
                    WHEN f.lost_time IS NOT NULL THEN 'lost'
                    WHEN f.lost_reason IS NOT NULL
                        AND (f.moved_ts IS NULL OR f.lost_reason_ts >= f.moved_ts) THEN 'lost'
                END AS _status,
                f.status IS NULL AND f.won_time IS NULL AND f.lost_time IS NULL
                    AND f.lost_reason IS NOT NULL AS _lost_by_reason,
                {_label("f.stage_id", "f.stage_formatted")} AS _stage_name
            FROM created AS c JOIN facts AS f USING (deal_id)
        ),
        closed AS (
            SELECT *,
                CASE _status WHEN 'won' THEN coalesce(won_time, won_by_status)
                    WHEN 'lost' THEN coalesce(lost_time, lost_by_status,
                        CASE WHEN _lost_by_reason THEN lost_reason_at END)
                END AS _closed_at
            FROM outcome
        )
        SELECT *,
            -- Won / lost is the stage unless the deal moved after it (into an
            -- after-sales stage, say): the stage history's last entry.
            CASE WHEN _status IN ('won', 'lost') AND (moved_ts IS NULL
                    OR coalesce(TRY_CAST(_closed_at AS TIMESTAMPTZ) >= moved_ts, true))
                THEN CASE _status WHEN 'won' THEN 'closed_won' ELSE 'closed_lost' END
                ELSE _stage_name
            END AS _stage
        FROM closed
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pd_add_lost AS SELECT DISTINCT a.deal_id, a.created_key "
        "FROM _pd_adds AS a JOIN _pd_snap AS s USING (deal_id) "
        "WHERE a.created_key <> s.created_key"
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _pd_deals AS SELECT deal_id AS _id, _status, "
        "NULL::VARCHAR AS _stage_id, _stage_name, created AS _created, "
        "NULL::VARCHAR AS _stage_changed, _closed_at, lost_reason AS _lost_reason, _stage, "
        "owner AS _owner, amount AS _amount, currency AS _currency, updated AS _updated, "
        "stage_id AS _last_stage_id, _lost_by_reason, _export_file, _export_line "
        "FROM _pd_snap WHERE in_batch AND _stage IS NOT NULL"
    )
    (rebuilt,) = con.execute("SELECT count(*) FROM _pd_deals").fetchone()
    files = _label_files([f.raw.path for f in logs])
    repeats = _account_for_log_rows(batch, conv, logs, "opportunities" if rebuilt else None)
    if rebuilt:
        conv.notes.append(
            f"no deals file: {_plural(rebuilt, 'deal')} rebuilt from the change log "
            f"({files}): created_at from the add_time row, owner from the latest user_id, "
            f"stage from the latest stage_id, won / lost from status, won_time, lost_time"
            + (f" ({_plural(repeats, 'repeated row')} applied once)" if repeats else "")
        )
        by_reason = [
            r[0]
            for r in con.execute(
                "SELECT _id FROM _pd_deals WHERE _lost_by_reason ORDER BY _id"
            ).fetchall()
        ]
        if by_reason:
            conv.notes.append(
                f"{files}: {_plural(len(by_reason), 'deal')} with a lost_reason but no "
                f"status change: lost when the reason was set (Pipedrive asks for it when a "
                f"deal is marked lost), unless a stage move came after: {_few(by_reason)}"
            )
    elif logs:
        conv.notes.append(
            f"no deals file, and no deal of the change log ({files}) can be rebuilt: no "
            f"opportunities from this batch"
        )
    else:
        conv.notes.append(
            "no deals file: no opportunities from this batch (its changelog still gives "
            "stage changes of deals exported earlier)"
        )
    return rebuilt


def _account_for_log_rows(
    batch: ExportBatch, conv: Conversion, logs: list[_LogFile], entity: str | None
) -> int:
    """Give every row of this batch's change log a fate, used or set aside with a reason;
    note the set-aside rows per file and reason with a few deal ids, and feed each file
    to the reconciliation. Returns the repeated rows (applied once, not noted: nothing
    is lost)."""
    con = batch.con
    order = batch.date_order
    c = _LogColumns("deal_id", "field_key", "new_value", "at_text")
    case = " ".join(f"WHEN {cond} THEN {sql_str(code)}" for code, cond in _log_reasons(c, order))
    content = "deal_id, at_text, field_key, old_value, new_value, user_id, change_id, "
    content += "old_formatted, new_formatted"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _pd_fate AS
        WITH r AS (SELECT *, CASE {case} END AS reason FROM _pd_log WHERE this_batch)
        SELECT _file, _seq, _row, deal_id, field_key,
            CASE WHEN reason IS NULL AND row_number() OVER (
                    PARTITION BY {content}, reason ORDER BY _seq, _row) > 1
                THEN 'exact_repeat' ELSE reason END AS reason
        FROM r
        """
    )
    found = con.execute(
        "SELECT _file, reason, deal_id, coalesce(field_key, '(none)'), count(*) "
        "FROM _pd_fate WHERE reason IS NOT NULL GROUP BY ALL "
        "ORDER BY min(_seq), min(_row)"
    ).fetchall()
    groups: dict[tuple[str, str], list[tuple[str | None, str, int]]] = {}
    for file, reason, deal, key, rows in found:
        groups.setdefault((file, reason), []).append((deal, key, rows))
    repeats = 0
    for code in _LOG_REASONS:  # notes in the order of the reasons
        for (file, reason), items in groups.items():
            if reason != code:
                continue
            rows = sum(n for _, _, n in items)
            if code == "exact_repeat":
                repeats += rows  # summed up in the rebuild note: nothing is lost
            elif code == "add_time_conflict":
                _note_aside(conv, file, rows, _ADD_TIME_RULE, _add_time_detail(con, items))
            else:
                _note_aside(conv, file, rows, _LOG_REASONS[code], _log_detail(code, items))
    for f in logs:
        columns = _LogColumns.of(f.raw, order)
        conv.feed(
            f.raw,
            entity or "stage_changes",
            f"SELECT * FROM _pd_fate WHERE _seq = {f.seq} AND reason IS NULL",
            set_aside=[(_LOG_REASONS[code], cond) for code, cond in _log_reasons(columns, order)],
            rest=_LOG_REASONS["exact_repeat"],
        )
    return repeats


# The add_time conflict as the user reads it: the rule and why.
_ADD_TIME_RULE = (
    "a second, different add_time of a deal id (two deals under one id? check them in "
    "Pipedrive); the earliest is created_at, as the log cannot tell the two deals' later "
    "rows apart: the id is one deal from its first creation on, none of its changes "
    "predating it"
)


def _add_time_detail(
    con: duckdb.DuckDBPyConnection, items: list[tuple[str | None, str, int]]
) -> str:
    """Each conflicting deal id with the add_time kept and the ones set aside."""
    ids = sorted({d for d, _, _ in items if d is not None})
    found = con.execute(
        "SELECT s.deal_id, s.created, list(DISTINCT a.created_text ORDER BY a.created_text) "
        "FROM _pd_snap AS s JOIN _pd_adds AS a ON a.deal_id = s.deal_id "
        "AND a.created_key <> s.created_key WHERE list_contains(?, s.deal_id) "
        "GROUP BY ALL ORDER BY s.deal_id",
        [ids],
    ).fetchall()
    shown = [f"{d} ({kept} kept; {', '.join(lost)} set aside)" for d, kept, lost in found]
    return f"{_plural(len(found), 'deal')}: {_few(shown)}"


def _log_detail(code: str, items: list[tuple[str | None, str, int]]) -> str:
    """The ids (or field keys) a set-aside note names."""
    deals: dict[str, int] = {}
    keys: dict[str, int] = {}
    for deal, key, n in items:
        if deal is not None:
            deals[deal] = deals.get(deal, 0) + n
        keys[key] = keys.get(key, 0) + n
    if code in ("unused_key", "known_other_key"):
        return ", ".join(f"{k} ×{n:,}" for k, n in sorted(keys.items()))
    if code in ("no_add_time", "no_stage"):
        shown = [f"{d} ({_plural(n, 'row')})" for d, n in deals.items()]
        return f"{_plural(len(deals), 'deal')}: {_few(shown)}"
    return f"{_plural(len(deals), 'deal')}: {_few(list(deals))}" if deals else ""
