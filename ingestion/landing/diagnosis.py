"""The errors of reading a landing file: what DuckDB's error says (``first_line``,
without any value it quotes), and locating the offending record of a CSV, JSON lines or
Parquet file to say what is wrong there (file, line, field) and what to do. Each returns a
LandingError.
"""

from __future__ import annotations

import codecs
import json
import re

import duckdb

from ingestion.errors import LandingError
from ingestion.landing.layout import LandingFile
from ingestion.landing.records import (
    _BAD_BYTE,
    _DELIMITERS,
    _MAX_RECORD_LINES,
    _field_name,
    _open_text,
    _Record,
    _where,
)

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


_FORMAT_ADVICE = {
    "csv": "Landing CSV files are UTF-8, comma-separated, with a header row, quoted values "
    "closed, and the same number of fields on every line.",
    "jsonl": "JSON lines files hold one JSON object per line, UTF-8 encoded.",
    "parquet": "Export the file again as Parquet.",
}


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
