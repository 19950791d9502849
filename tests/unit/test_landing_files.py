"""Malformed landing files: each ends in a LandingError that names the file, the line (as an
editor shows it), the field where it applies, what was wrong and what to do; nothing of the
batch is published. Well-formed quoting keeps loading, with the right ``_source_row``."""

from __future__ import annotations

from pathlib import Path

import pytest

import ingestion.landing.records as landing_records
from ingestion.errors import LandingError
from ingestion.landing.layout import LandingFile
from ingestion.landing.records import source_row_lines
from ingestion.loader import ingest
from ingestion.schema import ENTITIES
from ingestion.warehouse import connect, create_raw_tables

OPP = "opportunity_id,created_at,stage,amount,updated_at"
GOOD = "o1,2026-01-01,prospecting,1,"


@pytest.fixture
def con(tmp_path: Path):
    c = connect(tmp_path / "w.duckdb")
    create_raw_tables(c)
    yield c
    c.close()


def write(landing: Path, rel: str, data: bytes | str) -> Path:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def published(con) -> dict[str, list[str]]:
    """What a batch publishes: the raw tables (not the stage map, which is configuration
    written by every run) and the manifest of published files, wherever it lives."""
    tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE (table_schema = 'raw' AND table_name <> 'stage_map') "
        "OR (table_schema = 'quality' AND table_name = 'ingestion_log')"
    ).fetchall()
    state = {}
    for schema, table in tables:
        where = " WHERE status = 'published'" if table == "ingestion_log" else ""
        rows = con.execute(f"SELECT * FROM {schema}.{table}{where}").fetchall()
        state[f"{schema}.{table}"] = sorted(map(repr, rows))
    return state


def refused(con, landing: Path) -> str:
    """Ingest a landing whose batch b1 holds a bad file (and a good one): the message the
    user gets, after checking that nothing of the batch was published."""
    write(landing, "b1/accounts.csv", "account_id,name\na1,Acme\n")
    before = published(con)
    try:
        report = ingest(con, landing)
    except LandingError as err:
        message = str(err)
    else:  # a loader that rejects the batch instead of raising reports why
        reasons = getattr(report, "rejected_batches", {}).get("b1", [])
        assert reasons, "the batch was published"
        message = "\n".join(reasons)
    assert published(con) == before
    assert "Traceback" not in message
    return message


def assert_parts(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


# --- encoding -----------------------------------------------------------------------------


def test_latin1_byte_gives_line_byte_and_field(con, landing):
    data = f"{OPP}\n{GOOD}\no2,2026-01-01,caf\xe9,1,\n".encode("latin-1")
    path = write(landing, "b1/opportunities.csv", data)
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 3, field 3 (stage), byte 18:",
        "byte 0xE9 is not valid UTF-8",
        "export it again as UTF-8",
    )


def test_bad_byte_after_a_value_spanning_lines_is_on_the_editor_line(con, landing):
    rows = f'{OPP}\no1,2026-01-01,"two\nlines",1,\n\no2,2026-01-01,x,1,caf\xe9\n'
    path = write(landing, "b1/opportunities.csv", rows.encode("latin-1"))
    assert_parts(refused(con, landing), f"{path}: cannot be read at line 5, field 5 (updated_at)")


def test_bad_byte_in_the_header(con, landing):
    path = write(landing, "b1/opportunities.csv", f"{OPP},r\xe9gion\n{GOOD},x\n".encode("latin-1"))
    assert_parts(
        refused(con, landing), f"{path}: cannot be read at line 1, field 6, byte 52:", "UTF-8"
    )


def test_utf16_file(con, landing):
    path = write(landing, "b1/opportunities.csv", f"{OPP}\n{GOOD}\n".encode("utf-16"))
    assert_parts(refused(con, landing), f"{path}: cannot be read at line 1:", "UTF-16", "UTF-8")


def test_utf8_bom_is_accepted(con, landing):
    write(landing, "b1/opportunities.csv", f"\ufeff{OPP}\r\n{GOOD}\r\n".encode())
    ingest(con, landing)
    assert con.execute("SELECT opportunity_id, amount FROM raw.opportunities").fetchall() == [
        ("o1", 1.0)
    ]


# --- ragged rows --------------------------------------------------------------------------


def test_row_with_too_many_fields(con, landing):
    path = write(landing, "b1/opportunities.csv", f"{OPP}\n{GOOD}\no2,2026-01-01,x,1,,extra\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 3:",
        "the row has 6 fields where the header has 5: 1 value more than the header names, "
        "after field 5 (updated_at)",
        "must be enclosed in double quotes",
    )


def test_row_with_too_few_fields(con, landing):
    path = write(landing, "b1/opportunities.csv", f"{OPP}\n{GOOD}\no2,2026-01-01,x\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 3:",
        "the row has 3 fields where the header has 5",
        "missing after field 3 (stage): amount, updated_at",
        "an empty value still needs its comma",
    )


def test_ragged_row_after_values_spanning_lines_names_the_editor_line(con, landing):
    rows = f'{OPP}\no1,2026-01-01,"a\nb\nc",1,\n{GOOD}\no3,2026-01-01\n'
    path = write(landing, "b1/opportunities.csv", rows)
    assert_parts(refused(con, landing), f"{path}: cannot be read at line 6:", "2 fields")


def test_row_separated_by_semicolons(con, landing):
    path = write(landing, "b1/opportunities.csv", f"{OPP}\n{GOOD}\no2;2026-01-01;x;1;\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 3:",
        "the row has 1 field where the header has 5, and the line holds 4 semicolons",
        "it looks semicolon-separated",
    )


# --- quotes -------------------------------------------------------------------------------


def test_quoted_commas_doubled_quotes_and_newlines_load(con, landing):
    header = "opportunity_id,created_at,stage,name"
    rows = [
        'o1,2026-01-01,prospecting,"Acme, Inc."',
        'o2,2026-01-01,prospecting,"say ""hi"""',
        'o3,2026-01-01,prospecting,"two\nlines"',
        "",  # blank lines are skipped
        'o4,2026-01-01,prospecting, "spaced"',
        'o5,2026-01-01,prospecting,5" screen',  # a quote inside an unquoted value is text
    ]
    path = write(landing, "b1/opportunities.csv", "\n".join([header, *rows]) + "\n")
    ingest(con, landing)
    assert con.execute(
        "SELECT opportunity_id, name, _source_row FROM raw.opportunities ORDER BY 1"
    ).fetchall() == [
        ("o1", "Acme, Inc.", 1),
        ("o2", 'say "hi"', 2),
        ("o3", "two\nlines", 3),
        ("o4", "spaced", 4),
        ("o5", '5" screen', 5),
    ]
    f = LandingFile("b1", ENTITIES["opportunities"], path)
    assert source_row_lines(f, [1, 3, 4, 5]) == {1: 2, 3: 4, 4: 7, 5: 8}


def test_lines_are_counted_right_across_chunks(con, landing, monkeypatch):
    """The error path counts big files chunk by chunk; tiny chunks exercise the seams."""
    monkeypatch.setattr(landing_records, "_CHUNK_CHARS", 16)
    lines, row_lines = [OPP], {}
    for row in range(1, 61):
        row_lines[row] = sum(1 + line.count("\n") for line in lines) + 1
        value = '"two\r\nlines, ""quoted"""' if row % 7 == 0 else f"v{row}"
        lines.append(f"o{row},2026-01-01,{value},{row},")
        if row % 11 == 0:
            lines.append("")  # a blank line: not a row, but a line
    lines.append("o61,2026-01-01,x")
    text = "\r\n".join(lines) + "\r\n"
    path = write(landing, "b1/opportunities.csv", text)
    last = text.count("\n")
    assert_parts(refused(con, landing), f"{path}: cannot be read at line {last}:", "3 fields")
    f = LandingFile("b1", ENTITIES["opportunities"], path)
    assert source_row_lines(f, range(1, 61)) == row_lines


def test_unclosed_quote_names_the_line_it_opens_on(con, landing):
    rows = f'{OPP}\n{GOOD}\no2,2026-01-01,"prospecting,1,\no3,2026-01-01,x,1,\n'
    path = write(landing, "b1/opportunities.csv", rows)
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 3, field 3 (stage):",
        "the quote that opens this value is never closed",
        "Add the missing closing quote",
    )


def test_unclosed_quote_closed_lines_later(con, landing):
    rows = f'{OPP}\n{GOOD}\no2,2026-01-01,"prospecting,1,\no3,2026-01-01,x"y,1,\n'
    path = write(landing, "b1/opportunities.csv", rows)
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 3, field 3 (stage):",
        "not closed on line 3; a quote on line 4 closes it and is followed by more text",
        "Add the missing closing quote on line 3",
    )


def test_text_after_a_closing_quote(con, landing):
    path = write(landing, "b1/opportunities.csv", f'{OPP}\no1,2026-01-01,"big"deal,1,\n')
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 2, field 3 (stage):",
        "the quoted value that opens at column 15 is followed by another character (column "
        "20) instead of a comma",
        'a quote inside it must be doubled: "say ""hi"" here"',
    )


def test_stray_quote_inside_an_unquoted_value_that_splits_the_row(con, landing):
    path = write(landing, "b1/opportunities.csv", f'{OPP}\no1,2026-01-01,Acme "Big,Deal",1,x\n')
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 2, field 3 (stage):",
        "the row has 6 fields where the header has 5",
        "quote inside an unquoted value (column 20)",
        "Enclose the whole value in double quotes and double the quotes inside it",
    )


# --- delimiter, header --------------------------------------------------------------------


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab")])
def test_wrong_delimiter(con, landing, delimiter, name):
    rows = [OPP.replace(",", delimiter), GOOD.replace(",", delimiter)]
    path = write(landing, "b1/opportunities.csv", "\n".join(rows) + "\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 1:",
        f"the file looks {name}-separated",
        "must be comma-separated",
    )


def test_empty_file(con, landing):
    path = write(landing, "b1/opportunities.csv", b"")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read: the file is empty (0 bytes)",
        "needs its header row (e.g. opportunity_id,created_at,stage)",
    )


def test_header_only_file_loads_no_rows(con, landing):
    write(landing, "b1/opportunities.csv", OPP + "\n")
    ingest(con, landing)
    assert con.execute("SELECT count(*) FROM raw.opportunities").fetchone() == (0,)


def test_missing_header(con, landing):
    path = write(landing, "b1/opportunities.csv", f"{GOOD}\no2,2026-01-02,meeting,2,\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 1: the header row seems to be missing",
        "line 1 holds values (field(s) 2, 4, 5 look like numbers, dates, e-mail addresses "
        "or are empty), not column names",
        "Add a first line naming the columns",
        "opportunity_id, created_at, stage (required) and owner_id, account_id",
    )


def test_blank_first_line(con, landing):
    path = write(landing, "b1/opportunities.csv", f"\n{OPP}\n{GOOD}\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 1: the line is blank",
        "Remove the blank line(s) above the header",
    )


def test_duplicate_column_names(con, landing):
    path = write(landing, "b1/opportunities.csv", f"{OPP},Stage \n{GOOD},x\n")
    assert_parts(
        refused(con, landing),
        f'{path}: cannot be read at line 1, fields 3 and 6: column "stage" appears twice',
        "Rename or remove one of the two columns",
    )


def test_blank_column_name(con, landing):
    path = write(landing, "b1/opportunities.csv", f"{OPP},\n{GOOD},\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 1, field 6: column 6 of the header has a blank name",
        "The header ends with a comma: remove it",
    )


# --- layout -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "parts"),
    [
        (
            "b1/opportunity.csv",
            ['"opportunity" is not an entity', "(did you mean opportunities.csv?)"],
        ),
        ("b1/deals.csv", ['"deals" is not an entity', "(did you mean opportunities.csv?)"]),
        ("b1/notes.csv", ['"notes" is not an entity', "name the file after the entity"]),
        ("b1/accounts.xlsx", ['".xlsx" is a spreadsheet', "save it as CSV UTF-8"]),
        ("b1/accounts.CSV", ["is not lower case", "rename it to accounts.csv"]),
        ("b1/accounts.csv.gz", ["is a compressed file", "decompress it"]),
        ("b1/accounts", ["has no extension", "export it in one of these formats"]),
    ],
)
def test_files_that_are_not_landing_files(con, landing, rel, parts):
    path = write(landing, rel, "x\n1\n")
    with pytest.raises(LandingError) as err:
        ingest(con, landing)
    assert_parts(str(err.value), f"{path}: not a canonical landing file", *parts)
    assert_parts(str(err.value), "or remove the file from the batch folder")


def test_file_at_the_top_of_the_landing(con, landing):
    write(landing, "opportunities.csv", f"{OPP}\n{GOOD}\n")
    with pytest.raises(LandingError) as err:
        ingest(con, landing)
    assert_parts(
        str(err.value),
        f"{landing / 'opportunities.csv'} is a file at the top of the landing directory",
        f"Move it to {landing}/<batch_id>/opportunities.csv",
    )


# --- Parquet and JSON lines ---------------------------------------------------------------


def test_csv_renamed_to_parquet(con, landing):
    path = write(landing, "b1/opportunities.parquet", f"{OPP}\n{GOOD}\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read: not a Parquet file",
        "give it the .csv or .jsonl extension",
    )


def test_truncated_parquet(con, landing, tmp_path):
    whole = tmp_path / "whole.parquet"
    con.execute(f"COPY (SELECT 'o1' AS opportunity_id FROM range(100)) TO '{whole}'")
    path = write(landing, "b1/opportunities.parquet", whole.read_bytes()[:200])
    assert_parts(refused(con, landing), f"{path}: cannot be read: the Parquet file is truncated")


JSON_OK = '{"opportunity_id": "o1", "stage": "prospecting", "changed_at": "2026-01-01T00:00:00Z"}'


def test_jsonl_malformed_line(con, landing):
    bad = '{"opportunity_id": "o2", "stage": prospecting}'
    path = write(landing, "b1/stage_changes.jsonl", "\n".join([JSON_OK, JSON_OK, bad]) + "\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 3, column 35: malformed JSON (Expecting value)",
        "Each line must be one complete JSON object",
    )


def test_jsonl_line_that_is_not_an_object(con, landing):
    path = write(landing, "b1/stage_changes.jsonl", f"{JSON_OK}\n[1, 2]\n")
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 2: the line is a JSON array, not a JSON object",
        "Each line must be one object",
    )


def test_jsonl_bad_encoding(con, landing):
    data = f'{JSON_OK}\n{{"opportunity_id": "caf\xe9"}}\n'.encode("latin-1")
    path = write(landing, "b1/stage_changes.jsonl", data)
    assert_parts(
        refused(con, landing),
        f"{path}: cannot be read at line 2, byte 24: byte 0xE9 is not valid UTF-8",
    )


def test_empty_jsonl(con, landing):
    path = write(landing, "b1/stage_changes.jsonl", b"")
    assert_parts(refused(con, landing), f"{path}: cannot be read: the file is empty (0 bytes)")


def test_report_style_timestamps_in_either_date_order():
    import duckdb

    from ingestion.sources.export import date_sql, timestamp_sql

    value = "'02/03/26 08:55 PM'"
    (got,) = duckdb.sql(
        f"select {timestamp_sql(value, 'mdy')}, {timestamp_sql(value, 'dmy')}, "
        f"{date_sql(chr(39) + '02/03/2026' + chr(39), 'dmy')}, "
        f"{timestamp_sql(chr(39) + '2026-02-03T20:55:00Z' + chr(39))}, "
        f"{timestamp_sql(chr(39) + '13/45/26 08:55' + chr(39))}"
    ).fetchall()
    assert got == (
        "2026-02-03 20:55:00",  # February 3 (month first), 08:55 PM = 20:55
        "2026-03-02 20:55:00",  # March 2 (day first)
        "2026-03-02",
        "2026-02-03T20:55:00Z",  # ISO passes unchanged: the loader reads it
        "13/45/26 08:55",  # no such date: left as it is, for the gate to quarantine
    )


# --- messages quote no content ------------------------------------------------------------

SECRET = "s3cr3t-Value"  # in each file below; never in a message (nor in the alert it becomes)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("opportunities.csv", f"{OPP}\no2,2026-01-01,{SECRET} caf\xe9,1,\n".encode("latin-1")),
        ("opportunities.csv", f"{OPP},{SECRET}\xe9\n{GOOD},x\n".encode("latin-1")),
        ("opportunities.csv", f"{OPP}\n{GOOD}\no2,2026-01-01,x,1,,{SECRET}\n"),
        ("opportunities.csv", f"{OPP}\n{GOOD}\no2,2026-01-01,{SECRET}\n"),
        ("opportunities.csv", f"{OPP}\n{GOOD}\no2;2026-01-01;{SECRET};1;\n"),
        ("opportunities.csv", f'{OPP}\no1,2026-01-01,{SECRET} "Big,Deal",1,x\n'),
        ("opportunities.csv", f'{OPP}\no1,2026-01-01,"{SECRET}"deal,1,\n'),
        ("opportunities.csv", f'{OPP}\no1,2026-01-01,"{SECRET},1,\no3,2026-01-01,x"{SECRET},1,\n'),
        ("opportunities.csv", f'{OPP}\no1,2026-01-01,"{SECRET},1,\n'),
        ("opportunities.csv", f"{SECRET},2026-01-01,prospecting,1,\n"),
        ("opportunities.csv", f"{SECRET};created_at;stage\n"),
        ("opportunities.csv", f"sep={SECRET}\n{OPP}\n"),
        ("stage_changes.jsonl", f'{JSON_OK}\n{{"opportunity_id": "{SECRET}", stage}}\n'),
        ("stage_changes.jsonl", f'{JSON_OK}\n["{SECRET}"]\n'),
        ("opportunities.parquet", f"{SECRET},2026-01-01,x,1,\n"),
    ],
    ids=[
        "not-utf8",
        "not-utf8-header",
        "extra-field",
        "missing-fields",
        "semicolon-row",
        "stray-quote",
        "text-after-quote",
        "quote-closed-lines-later",
        "unclosed-quote",
        "no-header",
        "semicolon-header",
        "sep-line",
        "malformed-json",
        "json-array",
        "text-as-parquet",
    ],
)
def test_messages_name_where_never_what_the_file_holds(con, landing, name, data):
    path = write(landing, f"b1/{name}", data)
    message = refused(con, landing)
    assert str(path) in message  # where: the file, and the line when there is one
    assert SECRET not in message
    assert SECRET.lower() not in message.lower()
