"""Landing-level checks: freshness of the newest batch, volume of each new batch.

They look at the ingestion log rather than at rows, so they are plain SQL, recorded in
``quality.validation_results`` beside the Great Expectations results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from ingestion.warehouse import QUALITY_SCHEMA

_BATCH_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T_ ](\d{2}):?(\d{2})(?::?(\d{2}))?)?")


@dataclass(frozen=True)
class LandingOutcome:
    rule: str
    entity: str
    severity: str
    success: bool
    observed: str
    message: str


def batch_time(batch_id: str, folder: Path | None = None) -> datetime | None:
    """When a batch was exported: from its name (2026-11-25T0600, 2026-11-25), else the
    folder's modification time."""
    m = _BATCH_TIME.match(batch_id)
    if m:
        day, hh, mm, ss = m.groups()
        return datetime.fromisoformat(day) + timedelta(
            hours=int(hh or 0), minutes=int(mm or 0), seconds=int(ss or 0)
        )
    if folder is not None and folder.exists():
        return datetime.fromtimestamp(folder.stat().st_mtime, UTC).replace(tzinfo=None)
    return None


def freshness(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    as_of: datetime,
    max_age_hours: float,
    severity: str = "warn",
) -> LandingOutcome:
    """The newest published batch must be younger than ``max_age_hours`` at as_of."""
    batches = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT batch_id FROM {QUALITY_SCHEMA}.ingestion_log "
            f"WHERE status = 'published'"
        ).fetchall()
    ]
    times = [t for b in batches if (t := batch_time(b, landing / b)) is not None]
    rule = "landing.freshness"
    if not times:
        return LandingOutcome(rule, "landing", severity, False, "no batch published yet",
                              "No batch has been published yet; check the export job.")  # fmt: skip
    newest = max(times)
    age = (as_of - newest).total_seconds() / 3600
    ok = age <= max_age_hours
    observed = f"newest batch {newest:%Y-%m-%d %H:%M} is {age:.1f} h old at as_of"
    message = (
        observed
        if ok
        else f"{observed}, more than quality.freshness_max_age_hours ({max_age_hours:g} h). "
        f"Check that the CRM export still runs and lands in {landing}."
    )
    return LandingOutcome(rule, "landing", severity, ok, observed, message)


def volume(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    min_ratio: float,
    max_ratio: float,
    severity: str = "warn",
) -> list[LandingOutcome]:
    """Each file published in this run against the median of earlier published batches.

    A batch that does not carry an entity (no file, or the empty file an adapter writes for
    an object its export lacks) is not a volume change: empty files are left out on both
    sides, so a daily export of deals alone raises nothing about accounts.
    """
    rows = con.execute(
        f"""WITH this_run AS (
                SELECT entity, batch_id, input_rows FROM {QUALITY_SCHEMA}.ingestion_log
                WHERE run_id = ? AND status = 'published' AND input_rows > 0),
            earlier AS (
                SELECT l.entity, t.batch_id, l.input_rows
                FROM {QUALITY_SCHEMA}.ingestion_log l JOIN this_run t
                  ON l.entity = t.entity AND l.batch_id < t.batch_id
                WHERE l.status = 'published' AND l.input_rows > 0)
            SELECT t.entity, t.batch_id, t.input_rows,
                   (SELECT median(e.input_rows) FROM earlier e
                     WHERE e.entity = t.entity AND e.batch_id = t.batch_id),
                   (SELECT count(*) FROM earlier e
                     WHERE e.entity = t.entity AND e.batch_id = t.batch_id)
            FROM this_run t ORDER BY t.entity, t.batch_id""",
        [run_id],
    ).fetchall()
    outcomes = []
    for entity, batch_id, count, median, previous in rows:
        # The first batch is often a full export and later ones increments: compare once
        # there are three earlier batches, so the median is an increment.
        if previous < 3 or not median:
            continue
        ratio = count / median
        ok = min_ratio <= ratio <= max_ratio
        observed = f"{count:,} rows in batch {batch_id}, {ratio:.2f}× the median {median:,.0f}"
        message = observed if ok else (
            f"{entity}: {observed}, outside quality.volume_min_ratio..volume_max_ratio "
            f"({min_ratio:g}..{max_ratio:g}). A truncated or duplicated export? Check the "
            f"batch; if the change is real, adjust the bounds."
        )  # fmt: skip
        outcomes.append(LandingOutcome(f"{entity}.volume", entity, severity, ok, observed, message))
    return outcomes


def record(
    con: duckdb.DuckDBPyConnection, outcomes: list[LandingOutcome], run_id: str, at: datetime
) -> None:
    for o in outcomes:
        con.execute(
            f"INSERT INTO {QUALITY_SCHEMA}.validation_results VALUES "
            f"(?, ?, NULL, ?, NULL, ?, 'sql', NULL, ?, ?, NULL, NULL, ?, '[]', ?)",
            [run_id, at, o.entity, o.rule, o.severity, o.success, o.observed, o.message],
        )  # fmt: skip
