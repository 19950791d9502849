"""The landing directory: its layout, reading its files, and demo data for it.

Layout: ``<landing>/<batch_id>/<entity>.<csv|parquet|jsonl>``, batches in name order.

Reading is strict and its errors are precise. The happy path is DuckDB only: Python reads
the CSV header (the first line, never guessed) and DuckDB's strict CSV reader reads the
rest. Only when DuckDB rejects a file is the file read again in Python, streaming and
stopping at the offending record, to say where the problem is (file, line, field) and
what to do. Every such error is a LandingError.

Line numbers are the ones an editor shows: 1-based, the header is line 1, and a quoted
value spanning lines counts each of its lines. DuckDB's "CSV Error on Line: N" counts
records instead (a newline inside quotes does not start a line; blank lines do count), so
N is translated before it is shown.

Data rows: ``_source_row`` (``row_number() OVER ()`` over ``scan_sql``) is the ordinal of
the data row, 1-based, header excluded, blank lines skipped: the order DuckDB reads rows
in, which is file order. A row's line is ``_source_row + 1`` as long as no blank line and
no value spanning lines comes before it; otherwise ``source_row_lines`` gives the line.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import chain
from pathlib import Path
from typing import TextIO

import duckdb

from ingestion.config import PipelineConfig
from ingestion.errors import LandingError
from ingestion.schema import ENTITIES, LANDING_FORMATS, Entity


def batch_folders(landing: Path) -> list[Path]:
    """The batch folders of a landing directory, in name (processing) order.

    A batch folder that is a symbolic link leading outside the landing directory is
    refused (LandingError): whatever it points at is not the user's export."""
    if not landing.is_dir():
        return []
    folders = sorted(
        p for p in landing.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )
    for folder in folders:
        if folder.is_symlink():  # a plain folder of the landing cannot lead outside it
            refuse_outside_link(landing, folder)
    return folders


def refuse_outside_link(landing: Path, path: Path) -> None:
    """Refuse ``path`` (a batch folder or a file of the landing directory ``landing``)
    when its real location is outside ``landing``: a symbolic link to ``/etc/passwd``
    named ``opportunities.csv`` would otherwise be read, and its first line quoted in
    an error message that also goes to every alert sink.

    The message names where the link sits, never its target (a path that may itself say
    too much) nor anything of its content: the check reads no byte of it. A link that
    stays inside the landing directory is fine.
    """
    try:
        inside = path.resolve().is_relative_to(landing.resolve())
    except (OSError, RuntimeError):  # a loop of links (RuntimeError before Python 3.13)
        raise LandingError(
            f"{path}: a symbolic link that cannot be followed (it loops back on itself); "
            f"nothing of it was read. Replace it with the export itself, or remove it."
        ) from None
    if not inside:
        what = "batch folder" if path.parent == landing and path.is_dir() else "file"
        raise LandingError(
            f"{path}: this {what} is a symbolic link that points outside the landing "
            f"directory {landing}; it is refused, and nothing it points at was read. Copy "
            f"the export into the landing directory instead of linking to it (a link to a "
            f"place inside {landing} is fine), or remove the link."
        )


def check_batch_links(landing: Path, folder: Path) -> None:
    """Refuse a batch folder holding a file that is a symbolic link leading outside the
    landing directory, before anything of the batch is read (even its fingerprint)."""
    refuse_outside_link(landing, folder)
    for path in folder.iterdir():
        if path.is_symlink():  # a plain file in a checked folder cannot lead outside
            refuse_outside_link(landing, path)


def has_batches(landing: Path) -> bool:
    return bool(batch_folders(landing))


def settled_batches(
    landing: Path, settle_seconds: float, now: float
) -> tuple[list[str], list[str]]:
    """Batches whose files all stopped changing ``settle_seconds`` before ``now`` (epoch
    seconds), and those still being written. A folder that has stayed empty that long is
    in neither list: it is not an export, and must not hold back the ones after it."""
    ready, writing = [], []
    for folder in batch_folders(landing):
        try:
            mtimes = [p.stat().st_mtime for p in folder.iterdir() if p.is_file()]
            changed = max(mtimes, default=folder.stat().st_mtime)
        except FileNotFoundError:  # removed while we looked
            continue
        if changed > now - settle_seconds:
            writing.append(folder.name)
        elif mtimes:
            ready.append(folder.name)
    return ready, writing


def prepare_landing(config: PipelineConfig, *, end: date) -> str | None:
    """For the synthetic source, generate the demo batches when the landing is empty.

    Returns a one-line summary of what was generated, or None when nothing was needed.
    Real sources are never generated into: their landing is the user's export.
    """
    if config.source != "synthetic" or has_batches(config.landing_dir):
        return None
    from ingestion.synthetic import generate

    s = config.synthetic
    summary = generate(
        config.landing_dir,
        opportunities=s.opportunities,
        batches=s.batches,
        seed=s.seed,
        end=end,
    )
    return str(summary)


@dataclass(frozen=True)
class LandingFile:
    batch_id: str
    entity: Entity
    path: Path

    @property
    def relative(self) -> str:
        return f"{self.batch_id}/{self.path.name}"


def discover(landing: Path) -> list[LandingFile]:
    """List the landing files in processing order, refusing anything that isn't one."""
    if not landing.is_dir():
        raise LandingError(
            f"Landing directory {landing} does not exist. Point --landing at a folder "
            f"holding one sub-folder per batch (<landing>/<batch_id>/<entity>.csv)."
        )
    files: list[LandingFile] = []
    for item in sorted(landing.iterdir()):
        if item.name.startswith((".", "_")):
            continue
        if item.is_symlink():
            # Before anything else: even "is a directory" must not be asked of a target
            # outside, and a file's message must not depend on what it points at.
            refuse_outside_link(landing, item)
        if not item.is_dir():
            raise LandingError(
                f"{item} is a file at the top of the landing directory; files belong in a "
                f"batch folder, one per export. Move it to {landing}/<batch_id>/{item.name} "
                f"(e.g. {landing}/2026-11-25T0600/{item.name}) or remove it."
            )
        seen: dict[str, Path] = {}
        for path in sorted(item.iterdir()):
            if path.name.startswith((".", "_")):
                continue
            if path.is_symlink():
                refuse_outside_link(landing, path)
            if path.is_dir():
                continue
            stem, _, ext = path.name.partition(".")
            if ext not in LANDING_FORMATS or stem not in ENTITIES:
                raise LandingError(_not_a_landing_file(path, stem, ext))
            if stem in seen:
                raise LandingError(
                    f"Batch {item.name} holds {stem} twice ({seen[stem].name} and "
                    f"{path.name}); keep one file per entity in a batch: remove or move "
                    f"the other one."
                )
            seen[stem] = path
            files.append(LandingFile(item.name, ENTITIES[stem], path))
    return files


# What CRMs call the canonical entities, for "did you mean" in layout errors.
_ENTITY_SYNONYMS = {
    "deals": "opportunities",
    "companies": "accounts",
    "organizations": "accounts",
    "people": "contacts",
    "persons": "contacts",
    "owners": "users",
    "reps": "users",
    "tasks": "activities",
    "events": "activities",
    "engagements": "activities",
    "stage_history": "stage_changes",
    "deal_stages": "stages",
    "pipeline_stages": "stages",
}


def _not_a_landing_file(path: Path, stem: str, ext: str) -> str:
    """Why a file in a batch folder is refused, and the rename or export that fixes it."""
    formats = ", ".join(f".{x}" for x in LANDING_FORMATS)
    entities = ", ".join(ENTITIES)
    problems, fixes = [], []
    if stem not in ENTITIES:
        problems.append(f'"{stem}" is not an entity')
        fixes.append("name the file after the entity it holds")
        close = _ENTITY_SYNONYMS.get(stem.lower()) or next(
            iter(difflib.get_close_matches(stem.lower(), ENTITIES, n=1, cutoff=0.8)), None
        )
        if close:
            fixes[-1] += f" (did you mean {close}.{ext if ext in LANDING_FORMATS else 'csv'}?)"
    if ext not in LANDING_FORMATS:
        if ext.lower() in LANDING_FORMATS:
            problems.append(f'the extension ".{ext}" is not lower case')
            fixes.append(f"rename it to {stem}.{ext.lower()}")
        elif ext.endswith(("gz", "zip", "bz2", "zst", "xz")):
            problems.append(f'".{ext}" is a compressed file')
            fixes.append("decompress it into the batch folder (and remove the archive)")
        elif ext in ("xlsx", "xls", "ods", "numbers"):
            problems.append(f'".{ext}" is a spreadsheet')
            fixes.append(f"save it as CSV UTF-8 (comma-delimited) under the name {stem}.csv")
        else:
            has = f"the extension .{ext}" if ext else "no extension"
            problems.append(f'"{path.name}" has {has}')
            fixes.append(f"landing files are {formats}: export it in one of these formats")
    return (
        f"{path}: not a canonical landing file: {'; '.join(problems)}. Expected "
        f"<entity>.<format> with entity one of {entities} and format one of {formats}. "
        f"To fix it, {' and '.join(fixes)}; or remove the file from the batch folder."
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# Reading and its error messages
# ---------------------------------------------------------------------------------------

# A header line longer than this is not a header: the file is not a CSV with a header row.
_MAX_HEADER_CHARS = 1 << 20
# How far the diagnosis follows a quoted value that does not close.
_MAX_RECORD_LINES = 1_000
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_SIGNATURES = {
    b"PK\x03\x04": "a zip archive or an Excel workbook (.xlsx)",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls)",
    b"PAR1": "a Parquet file",
    b"\x1f\x8b": "a gzip-compressed file",
}
# Header values that look like data, not like column names: numbers, dates, e-mails, empty.
_DATA_LIKE = re.compile(r"\s*(?:[-+]?\d[\d.]*|\d{4}-\d\d-\d\d.*|\S+@\S+\.\S+|true|false|)\s*", re.I)
# One CSV field that does not leave a quote open at the end of the line.
_FIELD = r'(?: *"(?:[^"]|"")*+" *|[^,"\r\n ][^,\r\n]*+| +(?:[^,"\r\n ][^,\r\n]*+)?|)'
_WHOLE_RECORD = re.compile(rf"{_FIELD}(?:,{_FIELD})*+(?:\r\n|\r|\n)?")
# A quoted value (its doubled quotes removed) between delimiters or line ends.
# (It starts with the quote, so that the regex engine jumps from quote to quote.)
_QUOTED_VALUE = re.compile(r'"(?<=[,\n]")[^"]*"(?=[,\r\n]|\Z)')
_BLANK_LINE = re.compile(r"\n(?=\r?\n)")
_CHUNK_CHARS = 1 << 20
_BAD_BYTE = re.compile("[\udc80-\udcff]")


def _where(f: LandingFile, line: int | None = None, **detail: object) -> str:
    """The start of every message: the file, then where in it."""
    parts = [f"line {line}"] if line else []
    parts += [f"{k} {v}" for k, v in detail.items() if v is not None]
    return f"{f.path}: cannot be read" + (" at " + ", ".join(parts) if parts else "")


def _field_name(header: list[str], index: int) -> str:
    """'3 (stage)' for field 3 of a row; fields past the header say so."""
    if index <= len(header):
        return f"{index} ({header[index - 1].strip() or 'unnamed'})"
    return f"{index} (past the {len(header)} header columns)"


def _expected_columns(entity: Entity) -> str:
    optional = [c for c in entity.column_names if c not in entity.required_columns]
    return f"{', '.join(entity.required_columns)} (required)" + (
        f" and {', '.join(optional)} (optional)" if optional else ""
    )


def _open_text(path: Path) -> TextIO:
    """The file as text lines, any line ending kept; bytes that are not UTF-8 survive as
    lone surrogates so that they can be located."""
    return path.open(encoding="utf-8", errors="surrogateescape", newline="")


@dataclass
class _Field:
    line: int  # where the field starts: line and 0-based character column
    col: int
    text: str = ""
    quoted: bool = False
    stray_quote: tuple[int, int] | None = None  # a quote inside an unquoted value


@dataclass
class _Record:
    """One CSV record as DuckDB's strict reader sees it, with where each field starts."""

    first_line: int
    last_line: int = 0
    fields: list[_Field] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # its first lines, for messages
    # "unclosed": a quote opened at quote_at is never closed; "unclosed_far": not within
    # _MAX_RECORD_LINES lines; "after_quote": text follows a closing quote, at `at`.
    problem: str | None = None
    at: tuple[int, int] = (0, 0)
    quote_at: tuple[int, int] = (0, 0)

    def line(self, number: int) -> str:
        index = number - self.first_line
        return self.lines[index] if 0 <= index < len(self.lines) else ""

    def field_at(self, line: int, col: int) -> int:
        """The 1-based number of the field that holds a position."""
        starts = [(fl.line, fl.col) for fl in self.fields]
        return max(1, sum(1 for s in starts if s <= (line, col)))


_START, _UNQUOTED, _QUOTED, _CLOSED = range(4)


def _parse_record(lines: Iterable[str], first_line: int, max_lines: int | None = None) -> _Record:
    """Parse the record that starts with the first of ``lines`` (RFC 4180, as DuckDB does:
    a quote opens a value only at its start, spaces before it allowed; inside, a quote is
    doubled; a quote inside an unquoted value is kept as text). Consumes only its lines."""
    rec = _Record(first_line, first_line - 1)
    state, fld, buf = _START, _Field(first_line, 0), []

    def end_field(line: int, col: int) -> None:
        nonlocal fld, buf, state
        fld.text = "".join(buf)
        rec.fields.append(fld)
        fld, buf, state = _Field(line, col + 1), [], _START

    lineno = first_line - 1
    for line in lines:
        lineno += 1
        rec.last_line = lineno
        if len(rec.lines) < 10:
            rec.lines.append(line)
        if max_lines is not None and lineno - first_line >= max_lines:
            rec.problem, rec.at = "unclosed_far", rec.quote_at
            end_field(lineno, 0)  # the open field, so that field_at can name it
            return rec
        trailing_space = False
        for col, c in enumerate(line):
            if state == _QUOTED:
                if c == '"':
                    state, trailing_space = _CLOSED, False
                else:
                    buf.append(c)
            elif c == ",":
                end_field(lineno, col)
            elif c in "\r\n":
                end_field(lineno, col)
                return rec
            elif state == _UNQUOTED:
                if c == '"' and fld.stray_quote is None:
                    fld.stray_quote = (lineno, col)
                buf.append(c)
            elif state == _START:
                if c == '"':
                    state, fld.quoted, buf = _QUOTED, True, []
                    rec.quote_at = (lineno, col)
                else:
                    buf.append(c)
                    state = _START if c == " " else _UNQUOTED
            elif c == '"' and not trailing_space:  # _CLOSED: a doubled quote
                buf.append(c)
                state = _QUOTED
            elif c == " ":
                trailing_space = True
            else:
                rec.problem, rec.at = "after_quote", (lineno, col)
                end_field(lineno, col)
                return rec
    if state == _QUOTED:
        rec.problem, rec.at = "unclosed", rec.quote_at
    if lineno >= first_line:
        end_field(lineno, 0)
    return rec


def _read_chunk(fh: TextIO) -> str:
    """About a megabyte of text that ends at the end of a line (or of the file)."""
    chunk = fh.read(_CHUNK_CHARS)
    if chunk and not chunk.endswith("\n"):
        # Completes the line; after a lone \r it reads the \n of a \r\n split by read().
        chunk += fh.readline()
    return chunk


def _without_quoted_values(chunk: str) -> str | None:
    """The chunk (starting at a record) with each quoted value replaced by "x", so that
    its lines are its records; None when a quote is left that a well-formed quoted value
    does not explain (a stray or open quote, spaces around one): the chunk then needs
    the record parser. Once doubled quotes are removed, a value is one regex match."""
    if '"' not in chunk:
        return chunk
    simple = _QUOTED_VALUE.sub("x", "\n" + chunk.replace('""', ""))[1:]
    return None if '"' in simple else simple


def _records(
    fh: TextIO, skip: Callable[[int, int], bool]
) -> Iterator[tuple[int, int, int, str, Iterator[str]]]:
    """(DuckDB's line number, editor line, data row or 0, first line, the lines after it)
    of each record, in file order.

    DuckDB's line numbers count records, blank lines included; editor lines count every
    line; data rows are numbered like ``_source_row`` (no header, no blank lines).
    Resuming the generator reads the rest of the record, so a caller that stops at a
    record can parse it with ``_parse_record(chain([first], rest), line)``.

    A chunk of the file in which every quote belongs to a well-formed quoted value is
    counted without a Python loop and skipped while ``skip(duckdb_line, rows)``, the
    counts at its end, says that what is sought lies further on.
    """
    duckdb_line = line_number = rows = 0
    while chunk := _read_chunk(fh):
        simple = _without_quoted_values(chunk)
        if simple is not None and simple.count("\r") == simple.count("\r\n"):
            records = simple.count("\n") + (not simple.endswith("\n"))
            blank = len(_BLANK_LINE.findall("\n" + simple))
            data = records - blank - (duckdb_line == 0)
            if skip(duckdb_line + records, rows + data):
                duckdb_line, rows = duckdb_line + records, rows + data
                line_number += chunk.count("\n") + (not chunk.endswith("\n"))
                continue
        own = io.StringIO(chunk, newline="")
        rest = chain(own, fh)
        for line in own:
            duckdb_line += 1
            line_number += 1
            row = 0
            if duckdb_line > 1 and line.strip("\r\n"):
                rows = row = rows + 1
            yield duckdb_line, line_number, row, line, rest
            if '"' in line and not _WHOLE_RECORD.fullmatch(line):
                line_number = _parse_record(chain([line], rest), line_number).last_line


def _csv_header(f: LandingFile) -> list[str]:
    """The header row, read by Python so that DuckDB never guesses it (no sniffing).

    Refuses, with the line and field: an empty file, a file that is not UTF-8 text, a
    blank first line, a header that is one column holding ';' or a tab (wrong delimiter),
    a first line of data (missing header), blank and duplicate column names.
    """
    path, entity = f.path, f.entity
    example = ",".join(entity.required_columns)
    with path.open("rb") as raw:
        head = raw.read(4)
    if not head:
        raise LandingError(
            f"{_where(f)}: the file is empty (0 bytes). Even an export without rows needs "
            f"its header row (e.g. {example}); export the file again, or remove it from "
            f"the batch."
        )
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise LandingError(
            f'{_where(f, 1)}: the file is UTF-16 encoded (Excel\'s "Unicode Text"). '
            f"Re-export it as UTF-8 and comma-separated (Excel: CSV UTF-8)."
        )
    for signature, what in _SIGNATURES.items():
        if head.startswith(signature):
            raise LandingError(
                f"{_where(f)}: this is {what}, not CSV text. Export the data as CSV UTF-8 "
                f"(comma-separated) under this name, or give the file its real extension."
            )
    with _open_text(path) as fh:
        first = fh.readline(_MAX_HEADER_CHARS)
        if len(first) == _MAX_HEADER_CHARS and not first.endswith(("\n", "\r")):
            raise LandingError(
                f"{_where(f, 1)}: the first line is longer than {_MAX_HEADER_CHARS:,} "
                f"characters, so it is not a header row. The first line must name the "
                f"columns, e.g. {example}."
            )
        bad = _BAD_BYTE.search(first)
        if bad:
            raise _not_utf8(f, 1, first, bad.start(), ([], _parse_record([first], 1)))
        if "\x00" in first:
            raise LandingError(
                f"{_where(f, 1)}: the line holds NUL bytes, so the file is UTF-16 or "
                f"binary, not UTF-8 text. Re-export it as CSV UTF-8 (comma-separated)."
            )
        first = first.removeprefix("\ufeff")
        if not first.strip():
            if not fh.read(1 << 16).strip():
                raise LandingError(
                    f"{_where(f)}: the file holds only blank lines, not even a header row. "
                    f"Export it again with its header row (e.g. {example}), or remove it "
                    f"from the batch."
                )
            raise LandingError(
                f"{_where(f, 1)}: the line is blank, but line 1 must be the header row "
                f"naming the columns, e.g. {example}. Remove the blank line(s) above the "
                f"header."
            )
        if first.lower().startswith("sep="):
            raise LandingError(
                f"{_where(f, 1)}: the line is Excel's separator hint (a line starting with "
                f"sep=), not the header. Remove that line so that the header row is line 1."
            )
        rec = _parse_record(chain([first], fh), 1, max_lines=_MAX_RECORD_LINES)
    if rec.problem:
        raise _quote_problem(f, rec, [])
    names = [fld.text for fld in rec.fields]
    _check_delimiter(f, names)
    normalized = [n.strip().lower() for n in names]
    if not set(normalized) & set(entity.column_names) and any(map(_DATA_LIKE.fullmatch, names)):
        # Line 1 is data here: which fields look like it, never what they hold.
        data = [str(i) for i, n in enumerate(names, 1) if _DATA_LIKE.fullmatch(n)]
        shown = ", ".join(data[:6]) + (", …" if len(data) > 6 else "")
        raise LandingError(
            f"{_where(f, 1)}: the header row seems to be missing: line 1 holds values "
            f"(field(s) {shown} look like numbers, dates, e-mail addresses or are empty), "
            f"not column names, and the required column(s) "
            f"{', '.join(entity.required_columns)} are absent. Add a first line naming the "
            f"columns, in any order; {entity.name} has {_expected_columns(entity)}."
        )
    _check_names(f, names, line=1)
    return names


def _check_delimiter(f: LandingFile, names: list[str]) -> None:
    """A header that is one column holding ';' or a tab: another delimiter than ','."""
    if len(names) != 1:
        return
    counts = {d: names[0].count(d) for d in _DELIMITERS}
    delimiter = max(counts, key=lambda d: counts[d])
    if counts[delimiter]:
        raise LandingError(
            f"{_where(f, 1)}: the header is a single column holding {counts[delimiter]} "
            f"{_DELIMITERS[delimiter]}(s): the file looks {_DELIMITERS[delimiter]}-separated. "
            f"Landing CSV files must be "
            f"comma-separated: export it again with ',' as the separator (Excel: CSV UTF-8 "
            f"(Comma delimited); a spreadsheet in a locale with decimal commas uses ';')."
        )


def _check_names(f: LandingFile, names: list[str], line: int | None = None) -> None:
    """Column names must be present and unique (ignoring case and surrounding spaces)."""
    for i, name in enumerate(names, 1):
        if not name.strip():
            trailing = (
                " The header ends with a comma: remove it (and any trailing comma on the rows)."
                if i == len(names) > 1
                else ""
            )
            raise LandingError(
                f"{_where(f, line, field=i)}: column {i} of the header has a blank name. "
                f"Name the column, or remove it from the header and from every row.{trailing}"
            )
    first_seen: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        key = name.strip().lower()
        if key in first_seen:
            raise LandingError(
                f"{_where(f, line, fields=f'{first_seen[key]} and {i}')}: column "
                f'"{key}" appears twice in the header (names are compared ignoring case '
                f"and surrounding spaces). Rename or remove one of the two columns."
            )
        first_seen[key] = i


def scan_sql(f: LandingFile, header: list[str] | None = None) -> str:
    """A SQL table expression over the file: its columns, by their header names.

    CSV is read strictly: no sniffing, the header's columns as VARCHAR, RFC 4180 quotes,
    and a row with more or fewer fields than the header is an error, not padded.
    """
    path = str(f.path).replace("'", "''")
    ext = f.path.name.partition(".")[2]
    if ext == "csv":
        columns = ", ".join(
            "'" + h.replace("'", "''") + "': 'VARCHAR'" for h in (header or _csv_header(f))
        )
        return (
            f"read_csv('{path}', auto_detect = false, header = true, delim = ',', "
            f"quote = '\"', escape = '\"', strict_mode = true, columns = {{{columns}}})"
        )
    if ext == "parquet":
        return f"read_parquet('{path}')"
    # records = true: a line that is not an object is an error, not a file-wide JSON column.
    return f"read_json('{path}', format = 'newline_delimited', records = true)"


def read_header(con: duckdb.DuckDBPyConnection, f: LandingFile) -> list[str]:
    """The file's column names as written."""
    if f.path.suffix == ".csv":
        return _csv_header(f)
    if f.path.stat().st_size == 0:
        raise LandingError(
            f"{_where(f)}: the file is empty (0 bytes). Export it again, or remove it from "
            f"the batch."
        )
    try:
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan_sql(f)}").fetchall()]
    except duckdb.Error as exc:
        raise read_error(f, exc) from exc
    _check_names(f, names)
    return names


# A value quoted in an error message ("Could not convert string 'x' to INT64").
_QUOTED_TEXT = re.compile(r"'(?:[^']|'')*'")


def first_line(exc: BaseException) -> str:
    """What an error says went wrong, for a user's message: its first line, without any
    value it quotes. A message (and the alert it becomes) carries a file's column names
    at most, never its content, and DuckDB may echo a row ("Original Line: ...", on a
    later line) or a value (in single quotes)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0].split("Original Line:")[0].rstrip()
    return _QUOTED_TEXT.sub("'…'", line)


def read_error(f: LandingFile, exc: duckdb.Error) -> LandingError:
    """A user-facing error for a file DuckDB failed to read: where, what, what to do.

    The error path re-reads the file in Python, streaming and only as far as the
    offending line; the happy path never does.
    """
    ext = f.path.name.partition(".")[2]
    if isinstance(exc, duckdb.OutOfMemoryException):  # not the file's fault
        return LandingError(
            f"{f.path}: DuckDB ran out of memory reading it ({first_line(exc)}). Raise "
            f"memory_limit in the configuration, or free memory, and run again."
        )
    try:
        if ext == "csv":
            return _csv_problem(f, exc)
        if ext == "jsonl":
            return _jsonl_problem(f, exc)
        return _parquet_problem(f, exc)
    except LandingError as err:
        return err
    except (OSError, ValueError) as err:  # the diagnosis is best effort; the message is not
        return LandingError(
            f"{_where(f)}: {first_line(exc)} (and the file could not be re-read to say "
            f"where: {first_line(err)}). {_FORMAT_ADVICE.get(ext, '')}"
        )


_FORMAT_ADVICE = {
    "csv": "Landing CSV files are UTF-8, comma-separated, with a header row, quoted values "
    "closed, and the same number of fields on every line.",
    "jsonl": "JSON lines files hold one JSON object per line, UTF-8 encoded.",
    "parquet": "Export the file again as Parquet.",
}


def _csv_problem(f: LandingFile, exc: duckdb.Error) -> LandingError:
    text = str(exc)
    match = re.search(r"CSV Error on Line: (\d+)", text)
    if not match:
        return LandingError(f"{_where(f)}: {first_line(exc)}. {_FORMAT_ADVICE['csv']}")
    target = int(match.group(1))
    header = _csv_header(f)
    rec = None
    with _open_text(f.path) as fh:
        for duckdb_line, line_number, _, first, rest in _records(
            fh, skip=lambda duckdb_line, _: duckdb_line < target
        ):
            if duckdb_line == target:
                rec = _parse_record(chain([first], rest), line_number, _MAX_RECORD_LINES)
                break
    if rec is None:  # DuckDB and this parser disagree on the records: say what DuckDB said
        return LandingError(
            f"{_where(f)}: DuckDB reports a problem in record {target} (records counted "
            f"from the header, values spanning lines counted once): "
            f"{_duckdb_reason(text)}. "
            f"{_FORMAT_ADVICE['csv']}"
        )
    if "Invalid unicode" in text:
        for number in range(rec.first_line, rec.first_line + len(rec.lines)):
            bad = _BAD_BYTE.search(rec.line(number))
            if bad:
                return _not_utf8(f, number, rec.line(number), bad.start(), (header, rec))
        return _first_bad_byte(f)
    if rec.problem:
        return _quote_problem(f, rec, header)
    counts = re.search(r"Expected Number of Columns: \d+ Found: (\d+)", text)
    if counts:
        found = len(rec.fields) if len(rec.fields) != len(header) else int(counts.group(1))
        return _ragged(f, rec, header, found)
    limit = re.search(r"Maximum line size of (\d+) bytes", text)
    if limit:
        return LandingError(
            f"{_where(f, rec.first_line)}: the row is longer than DuckDB's limit of "
            f"{int(limit.group(1)):,} bytes. Check the line for a value that should not be "
            f"there (a whole document pasted into a field); shorten or remove it."
        )
    return LandingError(
        f"{_where(f, rec.first_line)}: {_duckdb_reason(text)}. {_FORMAT_ADVICE['csv']}"
    )


def _duckdb_reason(text: str) -> str:
    """The line of a DuckDB CSV error that says what was wrong (not the echoed row)."""
    for line in text.splitlines():
        if line.startswith(("Expected Number", "Value with", "Invalid unicode", "Maximum")):
            return line.rstrip(".")
    return first_line(Exception(text))


def _not_utf8(
    f: LandingFile,
    line_number: int,
    line: str,
    col: int,
    record: tuple[list[str], _Record] | None,
) -> LandingError:
    """A byte that is not UTF-8: its line, byte column and field, and how to re-export.

    The value around the byte is not shown: an error message (and the alert it becomes)
    carries a file's column names at most, never its content. The byte's code stays: it
    is what tells Windows-1252 from another encoding, and one non-ASCII byte says
    nothing of a value."""
    raw = line.encode("utf-8", "surrogateescape")
    byte_col = len(line[:col].encode("utf-8", "surrogateescape")) + 1
    value = raw[byte_col - 1]
    field_name = None
    if record:
        header, rec = record
        index = rec.field_at(line_number, col)
        field_name = _field_name(header, index) if header else str(index)
    return LandingError(
        f"{_where(f, line_number, field=field_name, byte=byte_col)}: byte 0x{value:02X} is "
        f"not valid UTF-8. The file is not UTF-8 encoded: export it again as UTF-8 (Excel: "
        f"CSV UTF-8), or convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8."
    )


def _first_bad_byte(f: LandingFile) -> LandingError:
    """The first byte that is not UTF-8, searched line by line (error path only)."""
    with _open_text(f.path) as fh:
        for number, line in enumerate(fh, 1):
            bad = _BAD_BYTE.search(line)
            if bad:
                return _not_utf8(f, number, line, bad.start(), None)
    return LandingError(f"{_where(f)}: DuckDB found text that is not UTF-8. Export as UTF-8.")


def _quote_problem(f: LandingFile, rec: _Record, header: list[str]) -> LandingError:
    """An unclosed quote, or text after a closing quote, said from where the value opens."""
    (q_line, q_col), (at_line, at_col) = rec.quote_at, rec.at
    index = rec.field_at(q_line, q_col)
    where = _where(f, q_line, field=_field_name(header, index) if header else index)
    double = 'If the quote is part of the value, double it ("5"" screen") or leave the value '
    double += "unquoted."
    # The value itself is never quoted (messages carry column names at most): the line,
    # the field and the column say where to look.
    if rec.problem == "after_quote":
        if at_line == q_line:
            return LandingError(
                f"{where}: the quoted value that opens at column {q_col + 1} is followed by "
                f"another character (column {at_col + 1}) instead of a comma or the end of "
                f"the line. A quoted value ends at its closing quote, and a quote inside it "
                f'must be doubled: "say ""hi"" here". Fix the quotes in this value.'
            )
        return LandingError(
            f"{where}: the quoted value that opens here is not closed on line {q_line}; a "
            f"quote on line {at_line} closes it and is followed by more text, so lines "
            f"{q_line}-{at_line} run together. Add the missing closing quote on line "
            f"{q_line}. {double}"
        )
    if rec.problem == "unclosed_far":
        return LandingError(
            f"{where}: the quote that opens this value is not closed within the next "
            f"{_MAX_RECORD_LINES:,} lines, so they would all be read as one value. Add the "
            f"missing closing quote. {double}"
        )
    return LandingError(
        f"{where}: the quote that opens this value is never closed, so the rest of the file "
        f"(to line {rec.last_line}) would be read as one value. Add the missing closing "
        f"quote. {double}"
    )


def _ragged(f: LandingFile, rec: _Record, header: list[str], found: int) -> LandingError:
    """A row with more or fewer fields than the header, and the likely cause."""
    expected = len(header)
    spans = (
        f" (the row runs from line {rec.first_line} to line {rec.last_line}: a quoted value "
        f"spans lines)"
        if rec.last_line > rec.first_line
        else ""
    )
    what = f"the row has {found} field{'s' * (found != 1)} where the header has {expected}{spans}"
    # A quote inside an unquoted value, and a later value ending in a quote: someone quoted
    # a value containing a comma, but not from its first character ('Acme "Big, Deal"').
    stray = next(
        (
            i
            for i, fl in enumerate(rec.fields, 1)
            if fl.stray_quote and any(not g.quoted and g.text.endswith('"') for g in rec.fields[i:])
        ),
        None,
    )
    raw = rec.line(rec.first_line)
    if stray is not None and found > expected:
        fl = rec.fields[stray - 1]
        return LandingError(
            f"{_where(f, fl.stray_quote[0], field=_field_name(header, stray))}: {what}. "
            f"The field has a quote inside an unquoted value (column "
            f"{fl.stray_quote[1] + 1}): a quote only opens a quoted value at the start of "
            f"a field, so the commas after it split the value. Enclose the whole value in "
            f'double quotes and double the quotes inside it, e.g. "Acme ""Big, Deal""".'
        )
    for delimiter, name in _DELIMITERS.items():
        if found < expected and raw.count(delimiter) + 1 >= expected:
            return LandingError(
                f"{_where(f, rec.first_line)}: {what}, and the line holds "
                f"{raw.count(delimiter)} {name}s: it looks {name}-separated. Every line "
                f"must be comma-separated like the header; export the file again with ','."
            )
    if found > expected:
        extra = found - expected
        return LandingError(
            f"{_where(f, rec.first_line)}: {what}: {extra} value{'s' * (extra != 1)} "
            f"more than the header names, after field {_field_name(header, expected)}. A value "
            f'that holds a comma must be enclosed in double quotes ("Acme, Inc."); '
            f"otherwise remove the extra comma(s) so that the line has {expected} fields."
        )
    missing = ", ".join(h.strip() for h in header[found:])
    return LandingError(
        f"{_where(f, rec.first_line)}: {what}; missing after field "
        f"{_field_name(header, found)}: {missing}. Every line needs one field per header "
        f"column; an empty value still needs its comma (e.g. a,b,,)."
    )


def _jsonl_problem(f: LandingFile, exc: duckdb.Error) -> LandingError:
    """Find the offending line: near the one DuckDB names first, then anywhere."""
    match = re.search(r"in line (\d+)", str(exc))
    hint = int(match.group(1)) if match else None
    # DuckDB's JSON line numbers can be one off: check a small window, then the file.
    near = (hint - 2, hint + 1) if hint else (1, None)
    found = _first_bad_json_line(f, near)
    if found is None and hint:
        found = _first_bad_json_line(f, (1, None))
    if found is not None:
        return found
    return LandingError(f"{_where(f)}: {first_line(exc)}. {_FORMAT_ADVICE['jsonl']}")


def _first_bad_json_line(f: LandingFile, window: tuple[int, int | None]) -> LandingError | None:
    low, high = window
    with f.path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if number < low:
                continue
            if high is not None and number > high:
                return None
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return LandingError(
                    f"{_where(f, number, byte=err.start + 1)}: byte 0x{raw[err.start]:02X} "
                    f"is not valid UTF-8. JSON lines must be UTF-8: export the file again "
                    f"as UTF-8."
                )
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                return LandingError(
                    f"{_where(f, number, column=err.colno)}: malformed JSON ({err.msg}). "
                    f"Each line must be one complete JSON object, e.g. "
                    f'{{"{f.entity.key[0]}": "x1"}}: fix or remove the line.'
                )
            if not isinstance(value, dict):
                kind = {list: "a JSON array", str: "a JSON string", bool: "true or false"}
                return LandingError(
                    f"{_where(f, number)}: the line is "
                    f"{kind.get(type(value), 'a JSON value')}, not a JSON object. Each line "
                    f'must be one object, {{"column": value, ...}}; a file holding one JSON '
                    f"array must be rewritten as one object per line."
                )
    return None


def _parquet_problem(f: LandingFile, exc: duckdb.Error) -> LandingError:
    size = f.path.stat().st_size
    with f.path.open("rb") as fh:
        head = fh.read(64)
        fh.seek(max(0, size - 4))
        tail = fh.read(4)
    if size == 0:
        return LandingError(f"{_where(f)}: the file is empty (0 bytes). Export it again.")
    if not head.startswith(b"PAR1"):
        sample = head.decode("utf-8", "replace")
        looks = (
            " It holds text: if it is CSV or JSON lines, give it the .csv or .jsonl extension."
            if sample.isprintable() or "\n" in sample
            else ""
        )
        return LandingError(
            f"{_where(f)}: not a Parquet file (it does not start with the Parquet marker "
            f"PAR1).{looks} Otherwise export it again as Parquet."
        )
    if tail != b"PAR1":
        return LandingError(
            f"{_where(f)}: the Parquet file is truncated: it starts like Parquet but its "
            f"footer is missing (an interrupted copy or export). Copy or export it again."
        )
    return LandingError(
        f"{_where(f)}: the Parquet file is damaged: {first_line(exc)}. Export it again."
    )


def source_row_lines(f: LandingFile, rows: Iterable[int]) -> dict[int, int]:
    """The line (as an editor shows it) of each data row number (``_source_row``).

    For messages about a few rows: it streams the file up to the last row asked for,
    counting without a Python loop where it can. CSV and JSON lines; Parquet has no lines.
    """
    wanted = sorted({r for r in rows if r > 0})
    result: dict[int, int] = {}
    if not wanted or f.path.suffix == ".parquet":
        return result
    with _open_text(f.path) as fh:
        if f.path.suffix == ".csv":
            records = _records(fh, skip=lambda _, rows_read: rows_read < wanted[len(result)])
            found = ((row, line) for _, line, row, _, _ in records if row)
        else:
            numbered = enumerate(fh, 1)
            found = enumerate((n for n, text in numbered if text.strip()), 1)
        for row, line in found:
            if row == wanted[len(result)]:
                result[row] = line
                if len(result) == len(wanted):
                    break
    return result


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
