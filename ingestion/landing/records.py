"""The CSV dialect and its strict record parser, in Python: the landing's dialect
(UTF-8, comma, RFC 4180 quotes, a header row), a parser that follows one record across
the lines of a quoted value, and a streaming walk over a file's records that counts lines
the way an editor and DuckDB each do (``source_row_lines``). The error path and the
messages of the diagnosis use it; the happy path never does.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TextIO

from ingestion.landing.layout import LandingFile
from ingestion.schema import Entity

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
