"""Pipedrive: CSV exports of the API's objects (field keys as headers) → canonical entities.

Files of a batch (names matched ignoring case, spaces and hyphens taken as underscores,
singular or plural): ``deals``, ``stages``, ``users``, ``activities``, the deal change log
(``deal_changes``, ``deal_changelog``, ``deal_flow`` or ``deal_updates``), and optionally
``organizations`` and ``persons``. Two files of one kind in a batch (``activity.csv`` and
``activities.csv``) are read together. A file the adapter does not read is named in the
notes, its rows counted: they would otherwise go nowhere without a word.

What Pipedrive does differently from the canonical model, and how it is bridged:

- A deal's stage is a ``stage_id``; the label the stage map sees is the stage's NAME
  (``stages.csv``), so the default labels below apply. An incremental export often has no
  ``stages.csv``: the newest one of this or an earlier batch of the landing is used.
- Won and lost are deal *statuses*, not stages: a won deal keeps its last pipeline stage.
  So a won (lost) deal's snapshot stage is ``closed_won`` (``closed_lost``), its Pipedrive
  stage name is kept as the attribute ``pipedrive_stage``, and its stage history gets an
  entry into ``closed_won`` at ``won_time`` (``closed_lost`` at ``lost_time``).
- The stage history comes from the deal change log (``field_key = stage_id`` rows). The
  first change's ``old_value`` is the stage the deal was created in, entered at
  ``add_time``. Change logs are usually incremental, so "first change" is decided over
  the change logs of this batch and every earlier batch of the landing.
- A batch without a deals file has its deals rebuilt from a complete change log (its
  ``add_time`` rows, see ``_rebuild_deals``); every change-log row is used or set aside
  with a reason.
- One id on two different rows (a deal, an activity, a user ...) is a conflict: one row
  is kept by a stated rule, the others are set aside and named (``_keep_one_per_id``).
- Timestamps are ``YYYY-MM-DD HH:MM:SS`` in UTC: they are marked as UTC (``Z``) so the
  pipeline's ``source_timezone`` (meant for offset-less CRM exports) does not shift them.

Every row set aside is counted per export file with its reason twice: in a conversion
note (printed as a warning with the run) and in the batch's reconciliation
(``Conversion.feed``, ``quality.source_reconciliation``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.config import SourceSpec
from ingestion.errors import LandingError
from ingestion.landing.layout import batch_folders
from ingestion.sources.export import (
    Conversion,
    Export,
    ExportBatch,
    bool_sql,
    date_sql,
    quote,
    sql_str,
    timestamp_sql,
)

# Pipedrive's default pipeline, and the after-sales stages teams add after it (Pipedrive
# has none by default; these are the common names), so that after-sales follow-up shows
# in the marts without a stage_labels entry. Won/lost are statuses, mapped by the adapter.
DEFAULT_STAGE_LABELS: dict[str, str] = {
    "Qualified": "qualification",
    "Contact Made": "meeting",
    "Demo Scheduled": "meeting",
    "Proposal Made": "proposal",
    "Negotiations Started": "negotiation",
    "Implementation/Onboarding": "onboarding",
    "Follow-up/Customer Success": "follow_up",
    "Customer Success": "follow_up",
    "Renewal/Expansion": "renewal",
}

# Export file names (compared by ``_name_key``).
DEALS_NAMES = ("deals", "deal")
STAGES_NAMES = ("stages", "stage")
USERS_NAMES = ("users", "user")
ACTIVITIES_NAMES = ("activities", "activity")
ORGANIZATIONS_NAMES = ("organizations", "organization")
PERSONS_NAMES = ("persons", "person")
CHANGELOG_NAMES = ("deal_changes", "deal_changelog", "deal_flow", "deal_updates")

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

# What a missing column costs, for the notes (the first name is the one the note gives).
_DEAL_COLUMNS = {
    ("title",): "opportunities have no name",
    ("value",): "opportunities have no amount",
    ("currency",): "amounts are taken to be in the reporting currency",
    ("add_time",): "opportunities have no created_at and are quarantined",
    ("update_time",): "a re-exported deal replaces the earlier one by batch order only",
    ("stage_id",): "opportunities have no stage and are quarantined",
    ("status",): "no deal is known to be won, lost or deleted",
    ("won_time",): "won deals close at the changelog's status change, else close_time",
    ("lost_time",): "lost deals close at the changelog's status change, else close_time",
    ("expected_close_date",): "open deals have no close_date",
    ("org_id",): "opportunities have no account",
    ("probability",): "probability is the stage's deal_probability",
    ("lost_reason",): "lost_reason comes from the changelog only",
}
_ACTIVITY_COLUMNS = {
    ("due_date", "due_to"): "occurred_at is the activity's add_time",
    ("done",): "activities have no is_completed",
    ("deal_id",): "activities are not linked to deals (no touchpoints)",
}

_ISO_NO_OFFSET = r"'^\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$'"
# How many ids a note names before "and N more".
_FEW = 5
_IDS = itertools.count(1)


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


def _missing(export: Export, wanted: dict[tuple[str, ...], str]) -> list[str]:
    return [
        f"{export.path.name} has no {names[0]} column: {meaning}"
        for names, meaning in wanted.items()
        if not any(export.has(n) for n in names)
    ]


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _few(items: Sequence[str]) -> str:
    """A few ids (or id descriptions) for a note, and how many more there are."""
    shown = ", ".join(items[:_FEW])
    return shown + (f" and {len(items) - _FEW:,} more" if len(items) > _FEW else "")


def _note_aside(conv: Conversion, file: str, rows: int, reason: str, detail: str = "") -> None:
    """The user's line on rows set aside: file, count, reason, a few ids. (The same count
    goes into the reconciliation through ``Conversion.feed``.)"""
    if rows > 0:
        conv.notes.append(
            f"{file}: {_plural(rows, 'row')} set aside, {reason}"
            + (f": {detail}" if detail else "")
        )


# --- finding and reading the files ----------------------------------------------------------


def _name_key(stem: str) -> str:
    """How a file name is compared: any case, spaces and hyphens as underscores (a
    spreadsheet's "Deal Changes.csv" is deal_changes)."""
    return re.sub(r"[\s\-]+", "_", stem.strip().lower())


def _files(folder: Path, names: Iterable[str]) -> list[Path]:
    """Every CSV file of the folder named like one of ``names``, in name order."""
    wanted = {_name_key(n) for n in names}
    return [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() == ".csv" and _name_key(p.stem) in wanted
    ]


def _earlier_files(batch: ExportBatch, names: Iterable[str]) -> list[list[Path]]:
    """Per batch before this one (oldest first), its files named like ``names``
    (incremental exports leave stages.csv out and hold only new changelog rows)."""
    found = [
        _files(folder, names)
        for folder in batch_folders(batch.folder.parent)
        if folder.name < batch.folder.name
    ]
    return [paths for paths in found if paths]


def _label_files(paths: Sequence[Path]) -> str:
    return " + ".join(p.name for p in paths)


def _read_rows(batch: ExportBatch, paths: Sequence[Path]) -> tuple[Export, list[Export]]:
    """One view over the files of one kind, headers normalised, with each row's file
    (``_pd_file``; ``_pd_seq``, its place among the files) and place in it (``_pd_row``,
    file order, numbered as the loader numbers rows); several files are stacked by column
    name. Returns it and each file as read (what the reconciliation counts)."""
    selects = []
    raws = []
    headers: dict[str, str] = {}
    for seq, path in enumerate(paths):
        e = batch.read_path(path)
        raws.append(e)
        columns = ", ".join(
            f"{quote(actual)} AS {quote(norm)}" for norm, actual in e.headers.items()
        )
        selects.append(
            f"SELECT {columns}, {', '.join(e.lineage())}, {sql_str(path.name)} AS _pd_file, "
            f"{seq} AS _pd_seq, row_number() OVER () AS _pd_row FROM {e.view}"
        )
        headers |= {norm: norm for norm in e.headers}
    view = f"_pd_rows_{next(_IDS)}"
    batch.con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS {' UNION ALL BY NAME '.join(selects)}"
    )
    # Export.path only names the file(s) in notes: several files are named together.
    return Export(Path(_label_files(paths)), view, headers, batch.date_order), raws


# --- one row per id ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Kept:
    """The rows of one kind left after ``_keep_one_per_id``, and what was set aside."""

    export: Export  # the rows kept (exact repeats of a kept row included)
    table: str  # every row, with _pd_file and _pd_aside (true: set aside)
    conflicts: list[str]  # the ids on rows of different content, in file order
    rule: str  # which row of such an id is kept, for the notes


def _keep_one_per_id(
    batch: ExportBatch, e: Export, *, key: Sequence[str], version: Sequence[str]
) -> _Kept:
    """The rows of ``e`` with one version per id: the rows identical to the kept one.

    An id on rows whose content differs is a conflict: the loader would keep one of them
    without a word (and not always the one a user would). The row kept is the one with
    the latest ``version`` timestamp (Pipedrive's update_time: the newest state of the
    record), else the last one in file order (files in name order): an export is written
    top to bottom, so a later row is the later write. The others are set aside. Exact
    repeats of the kept row pass on: the loader stores them once and counts them as
    duplicates in quality.ingestion_log. Content is compared as converted (values trimmed,
    empty as null): rows that differ only in spaces are repeats."""
    key_sql = e.first(*key)
    version_col = next((v for v in version if e.has(v)), None)
    version_sql = (
        f"TRY_CAST({utc_sql(e.col(version_col), e.date_order)} AS TIMESTAMPTZ)"
        if version_col
        else "NULL::TIMESTAMPTZ"
    )
    content = f"to_json(list_value({', '.join(e.col(h) for h in e.headers) or 'NULL'}))"
    table = f"_pd_kept_{next(_IDS)}"
    batch.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH r AS (
            SELECT *, {key_sql} AS _pd_key, {content} AS _pd_content,
                {version_sql} AS _pd_version
            FROM {e.view}
        ),
        k AS (
            SELECT *,
                first_value(_pd_content) OVER (
                    PARTITION BY _pd_key
                    ORDER BY _pd_version DESC NULLS LAST, _pd_seq DESC, _pd_row DESC
                ) AS _pd_kept_content,
                count(DISTINCT _pd_content) OVER (PARTITION BY _pd_key) AS _pd_versions
            FROM r
        )
        -- A row without id is no duplicate of another: it passes, and the gate names it.
        SELECT *, coalesce(_pd_key IS NOT NULL AND _pd_content <> _pd_kept_content, false)
            AS _pd_aside
        FROM k
        """
    )
    conflicts = [
        r[0]
        for r in batch.con.execute(
            f"SELECT _pd_key FROM {table} WHERE _pd_key IS NOT NULL AND _pd_versions > 1 "
            f"GROUP BY _pd_key ORDER BY min(_pd_seq), min(_pd_row)"
        ).fetchall()
    ]
    rule = (
        f"the row with the latest {version_col} is kept, else the last in file order"
        if version_col
        else "the last in file order is kept, the file having no update time"
    )
    kept = Export(e.path, f"(SELECT * FROM {table} WHERE NOT _pd_aside)", e.headers, e.date_order)
    return _Kept(kept, table, conflicts, rule)


def _read_entity(
    batch: ExportBatch,
    conv: Conversion,
    names: Sequence[str],
    entity: str | None,
    *,
    key: Sequence[str] = ("id",),
    version: Sequence[str] = ("update_time",),
    what: str,
    reference: str | None = None,
) -> Export | None:
    """This batch's files of one kind, read together, one version per id; the rows set
    aside are noted and fed to the reconciliation per file. ``entity`` None: read for
    ``reference`` only (stage names)."""
    paths = _files(batch.folder, names)
    if not paths:
        return None
    rows, raws = _read_rows(batch, paths)
    kept = _keep_one_per_id(batch, rows, key=key, version=version)
    conflict = f"{what} id on two or more different rows ({kept.rule})"
    per_file = dict(
        batch.con.execute(
            f"SELECT _pd_file, count(*) FILTER (WHERE _pd_aside) FROM {kept.table} GROUP BY 1"
        ).fetchall()
    )
    for raw in raws:
        name = raw.path.name
        if kept.conflicts:
            ids = f"{_plural(len(kept.conflicts), 'id')}: {_few(kept.conflicts)}"
            _note_aside(conv, name, per_file.get(name, 0), conflict, ids)
        emitted = f"SELECT * FROM {kept.table} WHERE _pd_file = {sql_str(name)} AND NOT _pd_aside"
        if entity is None:
            conv.feed(raw, None, rest=reference)
        else:
            conv.feed(raw, entity, emitted, rest=conflict)
    return kept.export


# --- the batch ---------------------------------------------------------------------------


def convert(batch: ExportBatch, spec: SourceSpec) -> Conversion:
    """One Pipedrive export batch → canonical entities (``stages`` is not emitted: the
    canonical stages entity defines canonical stages, Pipedrive's are labels)."""
    conv = Conversion()
    con = batch.con
    order = batch.date_order
    deals = _read_entity(batch, conv, DEALS_NAMES, "opportunities", what="deal")
    users = _read_entity(batch, conv, USERS_NAMES, "users", key=("id", "user_id"),
                         version=("modified", "update_time"), what="user")  # fmt: skip
    activities = _read_entity(batch, conv, ACTIVITIES_NAMES, "activities",
                              key=("id", "activity_id"), what="activity")  # fmt: skip
    organizations = _read_entity(batch, conv, ORGANIZATIONS_NAMES, "accounts",
                                 what="organization")  # fmt: skip
    persons = _read_entity(batch, conv, PERSONS_NAMES, "contacts", what="person")
    log_files = _files(batch.folder, CHANGELOG_NAMES)
    if not (deals or users or activities or organizations or persons or log_files):
        raise LandingError(
            f"{batch.folder}: no Pipedrive export file found; expected deals.csv, "
            f"stages.csv, users.csv, activities.csv, deal_changes.csv (or deal_changelog, "
            f"deal_flow, deal_updates; optional: organizations.csv, persons.csv)."
        )

    has_stages = _stages_view(batch, conv)
    logs = _changelog_view(batch, conv, log_files)
    if not has_stages:
        conv.notes.append(
            "no stages file (in this or an earlier batch): stage ids cannot be turned into "
            "stage names, so stage labels read 'stage_id <id>' (map them under "
            "stage_labels: in the config), and an empty deal probability stays empty"
        )
    if deals is None:
        rebuilt = _rebuild_deals(batch, conv, logs)
        if rebuilt:
            conv.entities["opportunities"] = _REBUILT_OPPORTUNITIES_SQL
        conv.entities["stage_changes"] = _stage_changes_sql(rebuild=True)
    else:
        conv.notes += _missing(deals, _DEAL_COLUMNS)
        if not deals.has("user_id") and not deals.has("owner_id"):
            conv.notes.append(f"{deals.path.name} has no user_id column: deals have no owner")
        _deals_view(con, deals, order)
        _feed_log_beside_deals(conv, logs)
        conv.entities["opportunities"] = _opportunities_sql(deals)
        conv.entities["stage_changes"] = _stage_changes_sql(rebuild=False)

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
    _note_unread(batch, conv)
    return conv


def _note_unread(batch: ExportBatch, conv: Conversion) -> None:
    """Name every file of the batch the adapter did not read, its rows counted and set
    aside: a change log under a name the adapter does not know would otherwise vanish
    without a word."""
    read = {e.path.name for e in batch.reads if e.path.parent == batch.folder}
    fix = (
        "name it like deals, stages, users, activities, deal_changes (or deal_changelog, "
        "deal_flow, deal_updates), organizations or persons (.csv), or move it out of the "
        "batch folder"
    )
    for path in sorted(batch.folder.iterdir()):
        if path.name.startswith((".", "_")) or not path.is_file() or path.name in read:
            continue
        reason = "not a file the Pipedrive adapter reads"
        if path.suffix.lower() == ".csv":
            try:
                raw = batch.read_path(path)
                (rows,) = batch.con.execute(f"SELECT count(*) FROM {raw.view}").fetchone()
            except LandingError:
                conv.notes.append(f"{path.name}: {reason}, and not readable as CSV: {fix}")
                continue
            conv.feed(raw, None, rest=reason)
            if rows:
                _note_aside(conv, path.name, rows, reason, fix)
                continue
        conv.notes.append(f"{path.name}: {reason}, not loaded: {fix}")


# --- stages ------------------------------------------------------------------------------


def _stages_view(batch: ExportBatch, conv: Conversion) -> bool:
    """``_pd_stages(stage_id, name, deal_probability)`` from this batch's stages file, else
    the newest earlier one; empty without any."""
    key, version = ("id", "stage_id"), ("update_time",)
    reference = "read for reference (stage ids → names and probabilities)"
    stages = _read_entity(batch, conv, STAGES_NAMES, None, key=key, version=version,
                          what="stage", reference=reference)  # fmt: skip
    if stages is None:
        earlier = _earlier_files(batch, STAGES_NAMES)
        if earlier:
            # Its conflicts were noted when that batch was converted: not again.
            rows, _ = _read_rows(batch, earlier[-1])
            stages = _keep_one_per_id(batch, rows, key=key, version=version).export
            conv.notes.append(
                f"no stages file: stage names and probabilities come from batch "
                f"{earlier[-1][0].parent.name}"
            )
    if stages is None:
        batch.con.execute(
            "CREATE OR REPLACE TEMP VIEW _pd_stages AS SELECT NULL::VARCHAR AS stage_id, "
            "NULL::VARCHAR AS name, NULL::VARCHAR AS deal_probability WHERE false"
        )
        return False
    stage_id = stages.first(*key)
    # One version per id is left; any_value only picks among exact repeats.
    batch.con.execute(
        f"CREATE OR REPLACE TEMP VIEW _pd_stages AS SELECT {stage_id} AS stage_id, "
        f"any_value({stages.first('name', 'stage_name')}) AS name, "
        f"any_value({stages.col('deal_probability')}) AS deal_probability "
        f"FROM {stages.view} WHERE {stage_id} IS NOT NULL GROUP BY 1"
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
