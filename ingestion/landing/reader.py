"""Reading a landing file strictly: the CSV header (read by Python, never guessed),
the SQL scan DuckDB reads the file with (``scan_sql``), its column names
(``read_header``), and ``read_error``, which turns a file DuckDB rejected into a
LandingError that says where and why (the diagnosis is in diagnosis.py).
"""

from __future__ import annotations

import codecs
import re
from itertools import chain

import duckdb

from ingestion.errors import LandingError
from ingestion.landing.diagnosis import (
    _FORMAT_ADVICE,
    _duckdb_reason,
    _first_bad_byte,
    _jsonl_problem,
    _not_utf8,
    _parquet_problem,
    _quote_problem,
    _ragged,
    first_line,
)
from ingestion.landing.layout import LandingFile
from ingestion.landing.records import (
    _BAD_BYTE,
    _DATA_LIKE,
    _DELIMITERS,
    _MAX_HEADER_CHARS,
    _MAX_RECORD_LINES,
    _SIGNATURES,
    _expected_columns,
    _open_text,
    _parse_record,
    _records,
    _where,
)


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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
