"""The landing directory: its layout, reading its files, and demo data for it.

Layout: ``<landing>/<batch_id>/<entity>.<csv|parquet|jsonl>``, batches in name order.
Reading is strict: the header is read by Python, never guessed, and a file DuckDB cannot
read gives a LandingError naming the file and what to fix.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from ingestion.config import PipelineConfig
from ingestion.errors import LandingError
from ingestion.schema import ENTITIES, LANDING_FORMATS, Entity


def has_batches(landing: Path) -> bool:
    return landing.is_dir() and any(
        p.is_dir() and not p.name.startswith((".", "_")) for p in landing.iterdir()
    )


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
        if not item.is_dir():
            raise LandingError(
                f"{item} is a file at the top of the landing directory; files belong in a "
                f"batch folder: {landing}/<batch_id>/{item.name}."
            )
        seen: dict[str, Path] = {}
        for path in sorted(item.iterdir()):
            if path.name.startswith((".", "_")) or path.is_dir():
                continue
            stem, _, ext = path.name.partition(".")
            if ext not in LANDING_FORMATS or stem not in ENTITIES:
                raise LandingError(
                    f"{path}: not a canonical landing file. Expected <entity>.<format> with "
                    f"entity one of {', '.join(ENTITIES)} and format one of "
                    f"{', '.join(LANDING_FORMATS)}. Rename or remove the file."
                )
            if stem in seen:
                raise LandingError(
                    f"Batch {item.name} holds {stem} twice ({seen[stem].name} and "
                    f"{path.name}); keep one file per entity in a batch."
                )
            seen[stem] = path
            files.append(LandingFile(item.name, ENTITIES[stem], path))
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _csv_header(f: LandingFile) -> list[str]:
    """The header row, read by Python so that DuckDB never guesses it (no sniffing)."""
    try:
        with f.path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise LandingError(
            f"{f.path}: not UTF-8 ({exc.reason} near byte {exc.start}). Export the file as UTF-8."
        ) from exc
    if not header or not any(h.strip() for h in header):
        raise LandingError(
            f"{f.path}: the file is empty or has no header row. The first line must name "
            f"the columns, e.g. {','.join(f.entity.required_columns)}."
        )
    return header


def scan_sql(f: LandingFile, header: list[str] | None = None) -> str:
    """A SQL table expression over the file: its columns, by their header names."""
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
    return f"read_json('{path}', format = 'newline_delimited')"


def read_header(con: duckdb.DuckDBPyConnection, f: LandingFile) -> list[str]:
    """The file's column names as written."""
    if f.path.suffix == ".csv":
        return _csv_header(f)
    try:
        return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan_sql(f)}").fetchall()]
    except duckdb.Error as exc:
        raise LandingError(
            f"{f.path}: cannot be read as {f.path.suffix[1:].upper()}: {first_line(exc)}."
        ) from exc


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_error(f: LandingFile, exc: duckdb.Error) -> LandingError:
    """A user-facing error for a file DuckDB failed to read."""
    return LandingError(
        f"{f.path}: cannot be read: {first_line(exc)}. Fix the file (UTF-8, comma-"
        f"separated, quoted fields closed, the same number of fields on every line)."
    )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
