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

Modules, by concern (import from them, not from the package):

- ``layout``: the layout and its discovery (batch folders, settled batches, demo data,
  ``discover``, ``LandingFile``, ``file_sha256``);
- ``records``: the CSV dialect and its strict record parser, line counting
  (``source_row_lines``);
- ``reader``: reading a file strictly (``scan_sql``, ``read_header``, ``read_error``,
  ``quote_ident``);
- ``diagnosis``: the errors: locating what DuckDB rejected and saying it
  (``first_line``).

The ``_``-prefixed names are private to the package; its modules share them.

May import: duckdb, ingestion.config, ingestion.errors, ingestion.schema (and
ingestion.synthetic lazily, for demo data); nothing of Dagster. Within the package:
layout ← records ← diagnosis ← reader.
"""
