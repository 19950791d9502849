"""The adapter's entry point: ``convert`` one export batch (which files it reads, what
it notes when one is missing, which path the deals take) and ``DEFAULT_STAGE_LABELS``.
"""

from __future__ import annotations

from ingestion.config import SourceSpec
from ingestion.errors import LandingError
from ingestion.sources.export import Conversion, ExportBatch
from ingestion.sources.pipedrive.canonical import (
    _REBUILT_OPPORTUNITIES_SQL,
    _accounts_sql,
    _activities_sql,
    _contacts_sql,
    _deals_view,
    _opportunities_sql,
    _stage_changes_sql,
    _users_sql,
)
from ingestion.sources.pipedrive.changelog import (
    _changelog_view,
    _feed_log_beside_deals,
    _rebuild_deals,
)
from ingestion.sources.pipedrive.files import (
    ACTIVITIES_NAMES,
    CHANGELOG_NAMES,
    DEALS_NAMES,
    ORGANIZATIONS_NAMES,
    PERSONS_NAMES,
    USERS_NAMES,
    _files,
    _missing,
    _note_aside,
    _read_entity,
    _stages_view,
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
