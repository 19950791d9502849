"""Time the Salesforce adapter's conversion on an export of synthetic size.

    .venv/bin/python bench/bench_adapters.py 1000000 [--batches 4] [--keep DIR]

Generates the synthetic landing, rewrites it as a Salesforce Data Export (Opportunity,
OpportunityHistory, Account, User, Task with the standard API field names, ISO
timestamps with +0000 offsets, Probability in percent), then times
``convert_landing`` (every batch converted to canonical CSVs) in a child process and
reports rows per second and its peak RSS. The conversion is the cost an adapter adds in
front of the loader; the loader and dbt are measured by bench_pipeline.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

from ingestion.synthetic import generate

AS_OF = "2026-11-26"
_TS = "strftime({c}, '%Y-%m-%dT%H:%M:%S.000+0000')"

# Salesforce object → (canonical entity, SELECT items in Salesforce's field names)
_OBJECTS = {
    "Opportunity": (
        "opportunities",
        [
            "opportunity_id AS Id", "account_id AS AccountId", "owner_id AS OwnerId",
            "name AS Name", "stage AS StageName", "amount AS Amount",
            "probability * 100 AS Probability", "close_date AS CloseDate",
            f"{_TS.format(c='created_at')} AS CreatedDate", "is_closed AS IsClosed",
            "is_won AS IsWon", "false AS IsDeleted", "lead_source AS LeadSource",
            "currency AS CurrencyIsoCode", f"{_TS.format(c='updated_at')} AS LastModifiedDate",
        ],
    ),
    "OpportunityHistory": (
        "stage_changes",
        [
            "coalesce(change_id, opportunity_id || '-' || row_number() OVER ()) AS Id",
            "opportunity_id AS OpportunityId", "stage AS StageName",
            f"{_TS.format(c='changed_at')} AS CreatedDate", "amount AS Amount",
        ],
    ),
    "Account": (
        "accounts",
        [
            "account_id AS Id", "name AS Name", "industry AS Industry",
            "country AS BillingCountry", "employee_count AS NumberOfEmployees",
            f"{_TS.format(c='created_at')} AS CreatedDate",
            f"{_TS.format(c='updated_at')} AS LastModifiedDate",
        ],
    ),
    "User": ("users", ["user_id AS Id", "name AS Name", "email AS Email", "team AS Department"]),
    "Task": (
        "activities",
        [
            "activity_id AS Id", "opportunity_id AS WhatId", "owner_id AS OwnerId",
            "subject AS Subject", "CAST(occurred_at AS DATE) AS ActivityDate",
            "CASE activity_type WHEN 'email' THEN 'Email' WHEN 'call' THEN 'Call' "
            "ELSE 'Task' END AS TaskSubtype",
            "CASE WHEN is_completed THEN 'Completed' ELSE 'Not Started' END AS Status",
        ],
    ),
}  # fmt: skip


def to_salesforce(canonical: Path, out: Path) -> int:
    """Rewrite a canonical landing as Salesforce exports; returns the rows written."""
    con = duckdb.connect()
    total = 0
    for batch in sorted(p for p in canonical.iterdir() if p.is_dir()):
        (out / batch.name).mkdir(parents=True)
        for obj, (entity, items) in _OBJECTS.items():
            src = batch / f"{entity}.csv"
            if not src.exists():
                continue
            target = out / batch.name / f"{obj}.csv"
            con.execute(
                f"COPY (SELECT {', '.join(items)} FROM read_csv('{src}', header = true)) "
                f"TO '{target}' (HEADER)"
            )
            (n,) = con.execute(f"SELECT count(*) FROM read_csv('{target}')").fetchone()
            total += n
    return total


_CHILD = """
import json, resource, sys, time
from pathlib import Path
from ingestion.config import SourceSpec
from ingestion.sources import convert_landing
spec = SourceSpec("salesforce", "salesforce", Path(sys.argv[1]))
started = time.perf_counter()
notes = convert_landing(spec, Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("opportunities", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_adapters_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        canonical, export, converted = work / "canonical", work / "salesforce", work / "out"
        for path in (canonical, export, converted):
            shutil.rmtree(path, ignore_errors=True)
        generate(
            canonical,
            opportunities=args.opportunities,
            batches=args.batches,
            end=dt.date.fromisoformat(AS_OF),
            # Clean, as for the runs in bench/RESULTS.md (no rows to quarantine).
            clean=True,
        )
        rows = to_salesforce(canonical, export)
        size = sum(p.stat().st_size for p in export.rglob("*.csv")) / 2**20
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(export), str(converted)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"Salesforce export: {args.opportunities:,} opportunities, {args.batches} batches, "
            f"{rows:,} rows, {size:,.0f} MiB\n"
            f"convert_landing: {result['seconds']:.1f} s "
            f"({rows / result['seconds']:,.0f} rows/s), peak RSS {result['peak_mib']:,.0f} MiB"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
