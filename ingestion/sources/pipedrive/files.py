"""Reading Pipedrive's export files: finding a kind of file in a batch (and the newest
earlier one), reading them, keeping one row per id with the rule and the others set aside,
the stages file as stage id → name and probability, and the small SQL and note helpers
the rest of the adapter shares.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingestion.landing.layout import batch_folders
from ingestion.sources.export import (
    Conversion,
    Export,
    ExportBatch,
    bool_sql,
    quote,
    sql_str,
    timestamp_sql,
)

# Export file names (compared by ``_name_key``).
DEALS_NAMES = ("deals", "deal")
STAGES_NAMES = ("stages", "stage")
USERS_NAMES = ("users", "user")
ACTIVITIES_NAMES = ("activities", "activity")
ORGANIZATIONS_NAMES = ("organizations", "organization")
PERSONS_NAMES = ("persons", "person")
CHANGELOG_NAMES = ("deal_changes", "deal_changelog", "deal_flow", "deal_updates")


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
