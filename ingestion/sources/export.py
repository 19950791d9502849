"""Reading a CRM's own export files: what every adapter shares.

An adapter gets an ``ExportBatch`` (one batch folder of one CRM's files) and returns a
``Conversion``: one SQL query per canonical entity, over the export files read as text.
The framework (``ingestion.sources``) runs the queries, namespaces the ids and writes the
canonical landing files the loader reads; the loader then parses, validates and
publishes them like any canonical batch. So an adapter only renames, reshapes and
normalises formats; it never decides whether data is good (the hygiene gate does).

Real exports are messy: a BOM, quoted newlines, trailing empty columns, headers in any
case, extra columns. Files are read with DuckDB as text; headers are compared ignoring
case and surrounding spaces; columns the adapter does not map are carried along, so they
end up as ``_attributes`` in ``raw.*``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ingestion.errors import LandingError
from ingestion.landing.diagnosis import first_line
from ingestion.landing.layout import refuse_outside_link
from ingestion.schema import ENTITIES, EXPORT_LINEAGE

DATE_ORDERS = ("mdy", "dmy")
_VIEWS = itertools.count(1)


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Export:
    """One export file, read as text into a temporary view with its headers normalised."""

    path: Path
    view: str
    # normalised header → the file's own header
    headers: dict[str, str]
    date_order: str = "mdy"

    def has(self, *names: str) -> bool:
        return all(_norm(n) in self.headers for n in names)

    def col(self, name: str) -> str:
        """The column as SQL (empty → NULL), or NULL when the file does not have it."""
        key = _norm(name)
        if key not in self.headers:
            return "NULL"
        return f"nullif(trim({quote(self.headers[key])}), '')"

    def first(self, *names: str) -> str:
        """The first of several possible columns the file has (NULL if none)."""
        present = [self.col(n) for n in names if self.has(n)]
        return present[0] if present else "NULL"

    def ts(self, name: str) -> str:
        return timestamp_sql(self.col(name), self.date_order)

    def date(self, name: str) -> str:
        return date_sql(self.col(name), self.date_order)

    def bool(self, name: str) -> str:
        return bool_sql(self.col(name))

    def lineage(self, column: str | None = None) -> list[str]:
        """SELECT items carrying each row's place in the export file (``_export_file``,
        ``_export_line``) to the canonical row it becomes, so the gate names the user's
        own file and line (``Opportunity.csv:42``), not the converted file. Only for a
        query reading this file's view alone (one canonical row per export row).

        ``column``: for a row derived from one cell of the export row (a wide "date
        entered" column), SQL giving that column's header (``_export_column``), so the
        message names the cell: ``deals.csv:17 (column Date entered Won)``."""
        items = ["_export_file AS _export_file", "_export_line AS _export_line"]
        return items if column is None else [*items, f"{column} AS _export_column"]

    def extras(self, mapped: Iterable[str], entity: str) -> list[str]:
        """SELECT items for the columns the adapter did not map, kept as attributes (the
        loader stores them in ``_attributes``), e.g. Salesforce custom fields ``*__c``.

        Auto-named columns (a trailing comma in the header) are dropped: they hold no
        name to keep a value under."""
        taken = {_norm(m) for m in mapped}
        reserved = set(ENTITIES[entity].column_names)
        items = []
        for key, header in self.headers.items():
            if key in taken or re.fullmatch(r"column\d+", header) or not header.strip():
                continue
            name = _attribute_name(header)
            # A CRM field that happens to share a canonical column's name stays apart.
            items.append(f"{self.col(key)} AS {quote('x_' + name if name in reserved else name)}")
        return items


def _norm(name: str) -> str:
    return " ".join(name.strip().lower().split())


def _attribute_name(header: str) -> str:
    """A carried-along column's name: lower case, other characters as underscores."""
    return re.sub(r"[^0-9a-z_]+", "_", header.strip().lower()).strip("_") or "column"


# Report-style timestamps: 02/23/26 08:55 PM, 2/23/2026 20:55, 23.02.2026 ...
_LOCALE = r"^\d{1,2}[/.]\d{1,2}[/.]\d{2,4}"


def _locale_formats(date_order: str) -> list[str]:
    # Two-digit years first: DuckDB's %Y also takes "26" (as the year 26); %y fails on
    # "2026", so a four-digit year still falls through to %Y.
    day = ["%m/%d/%y", "%m/%d/%Y"] if date_order == "mdy" else ["%d/%m/%y", "%d/%m/%Y"]
    day += ["%d.%m.%y", "%d.%m.%Y"]
    times = [" %I:%M %p", " %I:%M:%S %p", " %H:%M", " %H:%M:%S", ""]
    return [d + t for d in day for t in times]


def timestamp_sql(expr: str, date_order: str = "mdy") -> str:
    """A timestamp as the loader reads it. ISO 8601 (with Z or an offset, or with a space)
    passes unchanged; a report-style value is rewritten as ISO. A value that fits no
    format also passes unchanged, so the gate quarantines the row naming the value,
    instead of it turning silently into a null."""
    formats = "[" + ", ".join(sql_str(f) for f in _locale_formats(date_order)) + "]"
    return (
        f"CASE WHEN regexp_matches({expr}, '{_LOCALE}') THEN coalesce("
        f"strftime(try_strptime(upper({expr}), {formats}), '%Y-%m-%d %H:%M:%S'), {expr}) "
        f"ELSE {expr} END"
    )


def date_sql(expr: str, date_order: str = "mdy") -> str:
    """A date as YYYY-MM-DD (a timestamp's date part; report-style dates rewritten)."""
    ts = timestamp_sql(expr, date_order)
    iso = "'^\\d{4}-\\d{2}-\\d{2}'"
    return f"CASE WHEN regexp_matches({ts}, {iso}) THEN left({ts}, 10) ELSE {ts} END"


def epoch_ms_sql(expr: str) -> str:
    """HubSpot's millisecond epoch timestamps, as ISO; other values pass unchanged."""
    return (
        f"CASE WHEN regexp_matches({expr}, '^\\d{{11,14}}$') "
        f"THEN strftime(make_timestamp(CAST({expr} AS BIGINT) * 1000), '%Y-%m-%dT%H:%M:%SZ') "
        f"ELSE {expr} END"
    )


def bool_sql(expr: str) -> str:
    """true/false, 1/0, yes/no in any case; anything else passes unchanged to the gate."""
    return (
        f"CASE WHEN lower({expr}) IN ('true', '1', 'yes', 't', 'y') THEN 'true' "
        f"WHEN lower({expr}) IN ('false', '0', 'no', 'f', 'n') THEN 'false' ELSE {expr} END"
    )


@dataclass
class ExportBatch:
    """One batch folder of a CRM's export files, and a DuckDB connection to read them."""

    con: duckdb.DuckDBPyConnection
    folder: Path
    date_order: str = "mdy"
    # Every file read through this batch, earlier batches' included: the reconciliation
    # counts the rows of this batch's own files among them (ingestion.sources.reconcile).
    reads: list[Export] = field(default_factory=list)

    @property
    def batch_id(self) -> str:
        return self.folder.name

    def file(self, *names: str) -> Path | None:
        """The file named like one of ``names`` (without extension, any case), if any."""
        wanted = {_norm(n) for n in names}
        for path in sorted(self.folder.iterdir()):
            if path.is_file() and path.suffix.lower() == ".csv" and _norm(path.stem) in wanted:
                return path
        return None

    def read(self, *names: str) -> Export | None:
        path = self.file(*names)
        return None if path is None else self.read_path(path)

    def read_path(self, path: Path, delimiter: str = ",", date_order: str | None = None) -> Export:
        # Every read goes through here, this batch's files and earlier batches' alike: a
        # symbolic link leading outside the landing (the batch folder's parent) is refused
        # before DuckDB opens it.
        refuse_outside_link(self.folder.parent, path)
        # View names are unique per process: an adapter may read earlier batches' files
        # (another ExportBatch) on the same connection beside this one's.
        view = f"_export_{next(_VIEWS)}"
        scan = (
            f"read_csv({sql_str(str(path))}, header = true, all_varchar = true, "
            f"delim = {sql_str(delimiter)}, quote = '\"', escape = '\"', "
            f"null_padding = true, parallel = false)"
        )
        try:
            (records,) = self.con.execute(f"SELECT count(*) FROM {scan}").fetchone()
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT *, "
                f"{sql_str(path.name)} AS _export_file, "
                f"{_line_sql(path, records)} AS _export_line "
                f"FROM (SELECT *, row_number() OVER () AS _export_record FROM {scan})"
            )
            columns = [
                r[0]
                for r in self.con.execute(f"DESCRIBE {view}").fetchall()
                if r[0] not in (*EXPORT_LINEAGE, "_export_record")
            ]
        except duckdb.Error as exc:
            raise LandingError(
                f"{path}: cannot be read as a CSV export with delimiter {delimiter!r} "
                f"({first_line(exc)}). Export it again as UTF-8 with a header row."
            ) from exc
        export = Export(path, view, {_norm(c): c for c in columns}, date_order or self.date_order)
        self.reads.append(export)
        return export


def _line_sql(path: Path, records: int) -> str:
    """The row's line in the file, as text: the line a user opens the file at
    (``42``: the header is line 1) when every record is one line. A file with more
    lines than records + 1 (values spanning lines, blank lines) gets the record number
    instead, saying so: ``record 41 (line 42 without multi-line values)``."""
    lines, last = 0, b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"
    if lines == records + 1:
        return "CAST(_export_record + 1 AS VARCHAR)"
    return (
        "'record ' || _export_record || ' (line ' || (_export_record + 1) || "
        "' without multi-line values)'"
    )


@dataclass
class Conversion:
    """What an adapter made of a batch: one query per canonical entity, and notes on what
    the batch did not have (optional files or columns), for the run's log."""

    entities: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Which export file's rows became which entity's rows, for the reconciliation.
    feeds: list[Feed] = field(default_factory=list)

    def feed(
        self,
        export: Export,
        entity: str | None,
        rows: str | None = None,
        *,
        set_aside: Iterable[tuple[str, str]] = (),
        rest: str | None = None,
    ) -> None:
        """Say how the rows of ``export`` (a file of this batch) become ``entity`` rows.

        ``rows``: the query of the rows it emits, one per file row (counted); None when
        the file is the entity's only source, one row each: the rows written are counted.
        ``entity`` None: a file read for reference only (stage names), nothing emitted.
        ``set_aside``: (reason, SQL condition on the file's view) of the rows it leaves
        out on purpose, the first matching reason counting; ``rest``: the reason of the
        rows neither emitted nor matched, when the adapter knows it (otherwise they are
        "not converted (no reason given by the adapter)": a gap stays visible).
        Rows that one file row fans out into (HubSpot's date-entered stage changes) are
        not a feed: the reconciliation accounts for file rows, not for derived ones."""
        self.feeds.append(Feed(export, entity, rows, tuple(set_aside), rest))


@dataclass(frozen=True)
class Feed:
    """One export file of a batch as the source of one canonical entity (Conversion.feed)."""

    export: Export
    entity: str | None
    rows: str | None = None
    set_aside: tuple[tuple[str, str], ...] = ()
    rest: str | None = None
