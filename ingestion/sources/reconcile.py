"""Source-level reconciliation: every row of a CRM's export files accounted for.

The loader reconciles the canonical files it reads (``quality.ingestion_log``: input =
loaded + quarantined + duplicates + rejected). This reconciles the step before it, the
adapter's: for every export file of a batch that the adapter read,

    rows read = rows emitted into a canonical entity + rows set aside,

each group of set-aside rows with its reason (a deleted record, a history row that is no
stage change, a file read for reference only ...). Rows read are counted by the
framework from the file itself; rows emitted from what was written (or from the query the
adapter names for the file, ``Conversion.feed``); the reasons come from the adapter. What
neither accounts for is "not converted (no reason given by the adapter)": a gap between
read and emitted is always visible, never silent.

It also holds the rule that optional objects degrade and deals don't: a canonical entity
the batch's files cannot fill a required column of (the column is missing, or empty in
every row) is not written when the entity is optional (leads, accounts, activities ...):
its files' rows are set aside with that reason, a conversion note says so, the run raises
a WARN, and the rest of the batch loads. Opportunities and stage changes are written as
they are, so the loader rejects the batch naming the missing column, as before.

Per batch the tallies are kept in the batch's notes file beside its canonical files (a
batch is converted once); every run that loads the batch records them in
``quality.source_reconciliation`` and checks them (``record``): a batch whose exports hold
rows but convert into no opportunity, and a set-aside optional file, are WARN findings in
``quality.validation_results`` (rules ``source.no_opportunities`` and
``source.optional_file_set_aside``), reported by the ``source_reconciliation`` check.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingestion.schema import ENTITIES
from ingestion.sources.export import Conversion, Export, ExportBatch, quote, sql_str
from ingestion.warehouse import QUALITY_SCHEMA, create_quality_tables

UNEXPLAINED = "not converted (no reason given by the adapter)"
OVERCOUNTED = "counted twice by the adapter (more rows emitted and set aside than read)"
# Without them there is no funnel: a file of these that cannot fill a required column
# blocks its batch (the loader names the column), as a missing deals file would.
BLOCKING_ENTITIES = frozenset({"opportunities", "stage_changes"})
NO_OPPORTUNITIES = "source.no_opportunities"
FILE_SET_ASIDE = "source.optional_file_set_aside"
RULES = (NO_OPPORTUNITIES, FILE_SET_ASIDE)
# The note on an optional entity left out, after the file's name.
SKIP_NOTE = "no {entity} from this batch"


@dataclass
class FileTally:
    """One export file of a batch, as the source of one canonical entity (or of none)."""

    export_file: str  # the file's name in its batch folder
    entity: str | None  # None: read for reference only, or not used at all
    rows_read: int
    rows_emitted: int
    set_aside: dict[str, int] = field(default_factory=dict)  # reason → rows
    # Why none of its rows could be loaded (an optional entity missing a required column).
    skip_reason: str | None = None

    @property
    def rows_set_aside(self) -> int:
        return self.rows_read - self.rows_emitted

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> FileTally:
        return cls(**data)  # type: ignore[arg-type]


# --- at conversion ------------------------------------------------------------------------

Writer = Callable[[duckdb.DuckDBPyConnection, str, str, Path], int]


def write_entities(
    con: duckdb.DuckDBPyConnection,
    batch: ExportBatch,
    conversion: Conversion,
    out: Path,
    write: Writer,
) -> list[FileTally]:
    """Write each entity's canonical file with ``write`` (which returns the rows written),
    leaving out an optional entity its files cannot fill a required column of (with a
    note); returns the batch's reconciliation."""
    written: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for entity, sql in conversion.entities.items():
        path = out / f"{entity}.csv"
        columns = [r[0] for r in con.execute(f"DESCRIBE ({sql})").fetchall()]
        absent = [c for c in ENTITIES[entity].required_columns if c not in columns]
        if absent and entity not in BLOCKING_ENTITIES:
            skipped[entity] = _skip(conversion, entity, absent, absent=True)
            continue
        written[entity] = write(con, sql, entity, path)
        if entity in BLOCKING_ENTITIES or not written[entity]:
            continue
        # A column the adapter fills from a field the file lacks is empty in every row
        # (HubSpot, Pipedrive and mapping files select NULL for it): read back from the
        # written file, cheaper than the adapter's query again.
        empty = _empty_required(con, entity, path)
        if empty:
            path.unlink()
            del written[entity]
            skipped[entity] = _skip(conversion, entity, empty, absent=False)
    return reconcile(batch, conversion, written, skipped)


def _skip(conversion: Conversion, entity: str, columns: list[str], *, absent: bool) -> str:
    """Note an optional entity left out; returns the reason its files' rows are set aside
    (a phrase about rows: "6 in a file without created_at, which leads require").
    ``absent``: the adapter has no column for it at all, else it is empty in every row."""
    files = sorted({f.export.path.name for f in conversion.feeds if f.entity == entity})
    named = ", ".join(files) or f"the batch's {entity} file"
    cols = ", ".join(columns)
    how = "no such column" if absent else "empty in every row"
    conversion.notes.append(
        f"{named}: {SKIP_NOTE.format(entity=entity)}: the file cannot fill {cols} ({how}), "
        f"which the {entity} contract requires. Its rows are set aside (quality."
        f"source_reconciliation) and the rest of the batch loads; export it with the field "
        f"for {cols} to load them."
    )
    rows = "without" if absent else "with no value in any row for"
    return f"in a file {rows} {cols}, which {entity} require"


def _empty_required(con: duckdb.DuckDBPyConnection, entity: str, path: Path) -> list[str]:
    """The required columns without a value in any row of the written file. Each probe
    stops at its first value: a normal file costs a few rows, not another full read."""
    required = ENTITIES[entity].required_columns
    scan = f"read_csv({sql_str(str(path))}, header = true, all_varchar = true, parallel = false)"
    probes = ", ".join(
        f"(SELECT 1 FROM {scan} WHERE nullif(trim({quote(c)}), '') IS NOT NULL LIMIT 1)"
        for c in required
    )
    if not probes:
        return []
    found = con.execute(f"SELECT {probes}").fetchone()
    return [c for c, hit in zip(required, found, strict=True) if hit is None]


def reconcile(
    batch: ExportBatch,
    conversion: Conversion,
    written: dict[str, int],
    skipped: dict[str, str] | None = None,
) -> list[FileTally]:
    """Rows read, emitted and set aside (with reasons) of every file of this batch that
    the adapter read. ``written``: the rows written per entity; ``skipped``: the optional
    entities left out, with the reason."""
    skipped = skipped or {}
    con = batch.con
    own: dict[Path, Export] = {}
    for export in batch.reads:
        # Earlier batches' files read for context are theirs to account for.
        if export.path.parent == batch.folder:
            own.setdefault(export.path, export)
    read = {path: _count(con, f"SELECT * FROM {e.view}") for path, e in own.items()}
    whole = [f.entity for f in conversion.feeds if f.rows is None and f.entity is not None]
    shared = {e for e in whole if whole.count(e) > 1}
    if shared:
        raise ValueError(f"entities {sorted(shared)} have several sources: give each its rows")
    tallies = []
    for feed in conversion.feeds:
        path = feed.export.path
        if path not in own:
            continue
        tally = FileTally(path.name, feed.entity, read[path], 0)
        if feed.entity in skipped:
            tally.skip_reason = skipped[feed.entity]
            tally.set_aside = {tally.skip_reason: tally.rows_read} if tally.rows_read else {}
            tallies.append(tally)
            continue
        if feed.entity is not None:
            tally.rows_emitted = (
                written.get(feed.entity, 0) if feed.rows is None else _count(con, feed.rows)
            )
        tally.set_aside = _reasons(con, feed.export, feed.set_aside)
        rest = tally.rows_read - tally.rows_emitted - sum(tally.set_aside.values())
        if rest > 0:
            reason = feed.rest or UNEXPLAINED
            tally.set_aside[reason] = tally.set_aside.get(reason, 0) + rest
        elif rest < 0:
            tally.set_aside[OVERCOUNTED] = rest
        tallies.append(tally)
    fed = {f.export.path for f in conversion.feeds}
    for path in sorted(set(own) - fed):
        # Read, but the adapter said nothing of it: every row is an unexplained gap.
        rows = read[path]
        tallies.append(FileTally(path.name, None, rows, 0, {UNEXPLAINED: rows} if rows else {}))
    return tallies


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    (n,) = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
    return int(n)


def _reasons(
    con: duckdb.DuckDBPyConnection, export: Export, set_aside: Iterable[tuple[str, str]]
) -> dict[str, int]:
    groups = list(set_aside)
    if not groups:
        return {}
    # One pass, first matching reason wins: a row is set aside once. The reasons come in
    # the adapter's order (a grouped result's order varies from run to run), so the
    # record and the run's summary list them the same way every time.
    case = " ".join(f"WHEN ({cond}) THEN {i}" for i, (_, cond) in enumerate(groups))
    counts = con.execute(
        f"SELECT CASE {case} END AS reason, count(*) FROM {export.view} "
        "GROUP BY reason ORDER BY reason"
    ).fetchall()
    found: dict[str, int] = {}
    for i, n in counts:
        if i is not None and n:
            reason = groups[i][0]
            found[reason] = found.get(reason, 0) + int(n)
    return found


# --- at loading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRecord:
    """What the notes file of one converted batch says."""

    batch_id: str
    notes: list[str]
    tallies: list[FileTally]


def read_batch(folder: Path, notes_file: str) -> BatchRecord | None:
    path = folder / notes_file
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    tallies = [FileTally.from_dict(t) for t in data.get("reconciliation", [])]
    return BatchRecord(folder.name, list(data.get("notes", [])), tallies)


def record(
    con: duckdb.DuckDBPyConnection,
    source: str,
    batches: list[BatchRecord],
    run_id: str,
    at: datetime | None = None,
) -> list[str]:
    """Record the batches' tallies and their findings for this run; returns the findings'
    messages (each also a failed WARN rule in quality.validation_results)."""
    at = (at or datetime.now(UTC)).replace(tzinfo=None)
    create_quality_tables(con)  # a warehouse from before the table
    rows = [
        (run_id, source, b.batch_id, t.export_file, t.entity, t.rows_read, t.rows_emitted,
         t.rows_set_aside, json.dumps(t.set_aside), t.skip_reason, at)
        for b in batches
        for t in b.tallies
    ]  # fmt: skip
    if rows:
        con.executemany(
            f"INSERT INTO {QUALITY_SCHEMA}.source_reconciliation VALUES "
            f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    messages = []
    for b in batches:
        for rule, entity, export_file, success, observed, message in _findings(source, b):
            con.execute(
                f"INSERT INTO {QUALITY_SCHEMA}.validation_results VALUES "
                f"(?, ?, ?, ?, ?, ?, 'sql', NULL, 'warn', ?, NULL, NULL, ?, '[]', ?)",
                [run_id, at, b.batch_id, entity, export_file, rule, success, observed, message],
            )
            if not success:
                messages.append(message)
    return messages


def _n_rows(n: int) -> str:
    return f"{n:,} row{'' if n == 1 else 's'}"


def _sentences(first: str, *more: str) -> str:
    """A message: the first part as it is (it starts with the source's name), the notes
    after it capitalised, each ending with one full stop."""
    return ". ".join([first.rstrip("."), *(m[:1].upper() + m[1:].rstrip(".") for m in more)]) + "."


def _findings(source: str, b: BatchRecord) -> list[tuple[str, str, str | None, bool, str, str]]:
    """(rule, entity, export file, success, observed, message) of one batch. Messages do
    not name the run: the same finding in two runs is one alert (its dedup key)."""
    found = []
    for t in b.tallies:
        if t.skip_reason is not None and t.entity is not None:
            # The adapter's own note on the file names the export's field (CreatedDate),
            # the reason the canonical column (created_at): both help.
            own = SKIP_NOTE.format(entity=t.entity)
            said = [
                n for n in b.notes
                if n.startswith(t.export_file) and "set aside" in n and own not in n
            ]  # fmt: skip
            parts = [
                f"{source} batch {b.batch_id}: {t.export_file} set aside, "
                f"{_n_rows(t.rows_read)} {t.skip_reason}; no {t.entity} from it",
                *said,
                f"The rest of the batch loads; export {t.export_file} with that field to "
                f"load them.",
            ]
            found.append((
                FILE_SET_ASIDE, t.entity, t.export_file, False,
                f"{_n_rows(t.rows_read)} set aside", _sentences(*parts),
            ))  # fmt: skip
    # A file feeding two entities has its rows read once.
    read = sum({t.export_file: t.rows_read for t in b.tallies}.values())
    opportunities = sum(t.rows_emitted for t in b.tallies if t.entity == "opportunities")
    observed = f"{_n_rows(read)} read, {opportunities:,} opportunities converted"
    if read == 0 or opportunities > 0:
        found.append((NO_OPPORTUNITIES, "opportunities", None, True, observed, observed))
        return found
    # Why: what the adapter noted about opportunities, and where the rows went instead.
    why = [n for n in b.notes if "opportunit" in n.lower()]
    went = [
        f"{t.export_file}: " + ", ".join(f"{n:,} {reason}" for reason, n in t.set_aside.items())
        for t in b.tallies
        if t.set_aside
    ]
    emitted = [
        f"{t.export_file} → {t.entity}: {t.rows_emitted:,}" for t in b.tallies if t.rows_emitted
    ]
    parts = [f"{source} batch {b.batch_id}: {_n_rows(read)} read, no opportunity converted", *why]
    if emitted:
        parts.append("converted instead: " + "; ".join(emitted))
    if went:
        parts.append("set aside: " + "; ".join(went))
    parts.append(
        "If the batch should hold deals, export it again with its deals file "
        "(quality.source_reconciliation has every file's rows)"
    )
    message = _sentences(*parts)
    found.append((NO_OPPORTUNITIES, "opportunities", None, False, observed, message))
    return found
