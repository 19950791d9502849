"""Validation throughput: the GX hygiene suites vs. the same checks as one DuckDB query.

    .venv/bin/python bench/bench_validation.py 1000000 [--landing DIR] [--keep DIR]
        [--entities opportunities,leads,...] [--narrow] [--clean] [--max-rss-gb 14]

1. A synthetic landing (generated, or reused with ``--landing``) is loaded into a new
   DuckDB file: each entity's CSVs typed as in raw.* and deduplicated (latest version
   per key, one row per event key), with ``_source_file`` / ``_source_row``.
2. Per entity, in a fresh child process (so that its peak RSS is its own): the frame in
   the hygiene contract is built straight from raw.* (reference flags, the stage change's
   opportunity_created_at and the contacts' e-mail flag by SQL joins; ``__parses`` all
   true, raw being typed), then ``validate_batch`` is timed on it (after a warm-up call
   on an empty frame, so GX's import and context set-up are reported apart).
3. In the parent, ONE hand-written DuckDB query computes the same rules' failure counts
   over raw.*; it is timed, and its counts are compared with GX's rule by rule.

Each side is timed twice and the best run is shown (the dev VM is shared).

A child whose RSS passes ``--max-rss-gb`` is stopped and reported as not fitting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.loader import parse_sql  # noqa: E402
from ingestion.schema import CORE_ENTITIES, ENTITIES, ONE_VERSION_PER_KEY, SQL_TYPES  # noqa: E402
from ingestion.stages import StageMap  # noqa: E402

END = dt.date(2026, 11, 26)
REPEAT = 2  # timed runs of each side; the tables show the best (the VM is shared)
MEMORY_LIMIT = "4GB"


def load(landing: Path, warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse))
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE SCHEMA raw")
    con.register("_labels", StageMap().to_frame())
    con.execute("CREATE TABLE raw.stage_map AS SELECT * FROM _labels")
    rows = {}
    for name, entity in ENTITIES.items():
        files = sorted(landing.glob(f"*/{name}.csv"))
        typed = ", ".join(
            f"CAST({parse_sql(c, c.name)} AS {SQL_TYPES[c.type]}) AS {c.name}"
            for c in entity.columns
        )
        if not files:
            cols = ", ".join(
                f"CAST(NULL AS {SQL_TYPES[c.type]}) AS {c.name}" for c in entity.columns
            )
            con.execute(
                f"CREATE TABLE raw.{name} AS SELECT {cols}, CAST(NULL AS VARCHAR) AS _source_file, "
                f"CAST(NULL AS BIGINT) AS _source_row LIMIT 0"
            )
            rows[name] = 0
            continue
        version = "_source_file DESC, _source_row DESC"
        if "updated_at" in entity.column_names:
            version = f"updated_at DESC NULLS LAST, {version}"
        # File by file, so that _source_row is the row's line in its file (single-file
        # scans keep file order), as the loader numbers it.
        scans = " UNION ALL BY NAME ".join(
            f"SELECT *, '{f.parent.name}/{f.name}' AS _source_file, "
            f"row_number() OVER () AS _source_row "
            f"FROM read_csv('{f}', all_varchar = true)"
            for f in files
        )
        con.execute(
            f"""CREATE TABLE raw.{name} AS
                SELECT {typed}, _source_file, _source_row FROM ({scans})
                QUALIFY row_number() OVER (
                    PARTITION BY {", ".join(entity.key)} ORDER BY {version}) = 1"""
        )
        (rows[name],) = con.execute(f"SELECT count(*) FROM raw.{name}").fetchone()
    con.close()
    return rows


# About one row in 10,000 of a few rules gets a defect, so that both sides also count
# failures (and GX reports failing rows) rather than only confirming clean data.
DEFECTS = {
    "accounts": ["employee_count = -1"],
    "contacts": ["email = replace(email, '@', '(at)')", "phone = '+1 12'"],
    "leads": [
        "channel = 'Webinar'",
        "score = score + 200",
        "qualified_at = created_at - INTERVAL 1 DAY",
    ],
    "opportunities": [
        "amount = -amount - 1",
        "stage = 'Demo Booked'",
        "probability = 50",
        "close_date = CAST(created_at AS DATE) - 30, is_closed = true",
        "owner_id = 'USR-UNKNOWN'",
    ],
    "stage_changes": ["changed_at = changed_at - INTERVAL 3650 DAY"],
    "activities": ["activity_type = 'lunch'", "opportunity_id = 'OPP-UNKNOWN'"],
}


def inject(warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse))
    changed = {}
    for name, updates in DEFECTS.items():
        for n, update in enumerate(updates, start=1):
            where = f"hash(_source_file, _source_row) % 10007 = {n}"
            (count,) = con.execute(f"UPDATE raw.{name} SET {update} WHERE {where}").fetchone()
            changed[f"{name}: {update}"] = count
    con.close()
    return changed


# --- 2. GX, one entity per child process --------------------------------------------------

REFERENCES = {
    "opportunities": (("account_id", "accounts", "account_id"), ("owner_id", "users", "user_id")),
    "stage_changes": (("opportunity_id", "opportunities", "opportunity_id"),),
    "activities": (("opportunity_id", "opportunities", "opportunity_id"),),
    "leads": (("converted_opportunity_id", "opportunities", "opportunity_id"),),
    "quotas": (("owner_id", "users", "user_id"),),
}


def frame_sql(name: str) -> str:
    """The frame contract straight from raw.*: every contract column, lineage, flags."""
    entity = ENTITIES[name]
    select = [f"c.{col}" for col in entity.column_names] + ["c._source_file", "c._source_row"]
    select += [f"TRUE AS {c.name}__parses" for c in entity.columns if c.type != "string"]
    joins = []
    for column, target, key in REFERENCES.get(name, ()):
        select.append(
            f"(c.{column} IS NULL OR EXISTS (SELECT 1 FROM raw.{target} r "
            f"WHERE r.{key} = c.{column})) AS {column}__known"
        )
    if name in ONE_VERSION_PER_KEY:
        # raw holds one row per key: no version of it conflicts with another.
        select.append("FALSE AS key__conflicting")
    if name == "stage_changes":
        joins.append("LEFT JOIN raw.opportunities o ON o.opportunity_id = c.opportunity_id")
        select.append("o.created_at AS opportunity_created_at")
    if name == "contacts":
        select.append(
            "EXISTS (SELECT 1 FROM raw.contacts o WHERE lower(o.email) = lower(c.email) "
            "AND o.contact_id <> c.contact_id) AS email__seen_before"
        )
    sql = f"SELECT {', '.join(select)} FROM raw.{name} c {' '.join(joins)}"
    if os.environ.get("BENCH_NARROW"):
        from ingestion.hygiene.rules import frame_columns

        sql = f"SELECT {', '.join(frame_columns(name))} FROM ({sql})"
    return sql


def child(warehouse: Path, name: str) -> None:
    """Build one entity's frame, validate it, print a JSON line of timings and counts."""
    started = time.perf_counter()
    from ingestion.hygiene.gx import validate_batch

    labels = set(StageMap().label_map())
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET enable_progress_bar = false")
    # Warm-up: GX import, context, suite (what the first batch of a process pays).
    validate_batch(name, con.execute(f"{frame_sql(name)} LIMIT 0").df(), labels=labels)
    setup = time.perf_counter() - started

    started = time.perf_counter()
    frame = con.execute(frame_sql(name)).df()
    con.close()
    build = time.perf_counter() - started
    frame_mib = frame.memory_usage(deep=False).sum() / 2**20
    rss_frame = _rss_mib()

    runs = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        outcomes = validate_batch(name, frame, labels=labels)
        runs.append(time.perf_counter() - started)
    validate = min(runs)
    print(
        json.dumps(
            {
                "entity": name,
                "rows": len(frame),
                "columns": frame.shape[1],
                "setup_s": setup,
                "frame_s": build,
                "validate_s": validate,
                "validate_runs_s": runs,
                "rules": len(outcomes),
                "frame_mib_shallow": frame_mib,
                "rss_after_frame_mib": rss_frame,
                # VmHWM, not getrusage: ru_maxrss carries the parent's peak across exec.
                "peak_rss_mib": _rss_mib(field="VmHWM"),
                "failures": {o.rule.name: o.unexpected_count for o in outcomes},
                "failed": [o.describe() for o in outcomes if not o.success],
            }
        ),
        flush=True,
    )


def _rss_mib(pid: int | str = "self", field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_child(warehouse: Path, name: str, max_rss_mib: float) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", name, "--warehouse", str(warehouse)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _rss_mib(proc.pid))
        if peak > max_rss_mib:
            proc.kill()
            proc.wait()
            return {"entity": name, "error": f"stopped: RSS above {max_rss_mib:,.0f} MiB"}
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {"entity": name, "error": err.strip().splitlines()[-1] if err else "failed"}
    return json.loads(out.strip().splitlines()[-1])


# --- 3. the same checks as one DuckDB query -----------------------------------------------

EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
PHONE = r"\+?[\d ().\-/]+(\s*(x|ext\.?)\s*\d+)?"
CHANNELS = "'email','social','paid','referral','event','website','outbound','partner','other'"
TYPES = "'email','call','meeting','demo','proposal','follow_up','onboarding','other'"
STATUSES = "'new','working','qualified','disqualified','converted'"
LABEL = r"lower(regexp_replace(trim({c}), '\s+', ' ', 'g'))"


def _unique(table: str, key: str, name: str) -> str:
    return (
        f"(SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM raw.{table} "
        f'GROUP BY {key} HAVING count(*) > 1)) AS "{name}"'
    )


def _not_null(table: str, cols: list[str], alias: str = "") -> list[str]:
    return [f'count(*) FILTER (WHERE {alias}{c} IS NULL) AS "{table}.{c}_not_null"' for c in cols]


SQL = f"""
WITH labels AS (SELECT source_label FROM raw.stage_map),
accounts AS (
    SELECT {", ".join(_not_null("accounts", ["account_id", "name"]))},
        count(*) FILTER (WHERE employee_count < 0) AS "accounts.employee_count_non_negative",
        count(*) FILTER (WHERE annual_revenue < 0) AS "accounts.annual_revenue_non_negative",
        {_unique("accounts", "account_id", "accounts.account_id_unique")}
    FROM raw.accounts),
users AS (
    SELECT {", ".join(_not_null("users", ["user_id", "name"]))},
        count(*) FILTER (WHERE NOT regexp_full_match(email, '{EMAIL}')) AS "users.email_format",
        {_unique("users", "user_id", "users.user_id_unique")}
    FROM raw.users),
contacts AS (
    SELECT {", ".join(_not_null("contacts", ["contact_id"]))},
        count(*) FILTER (WHERE NOT regexp_full_match(email, '{EMAIL}'))
            AS "contacts.email_format",
        count(*) FILTER (WHERE NOT (length(regexp_replace(phone, '\\D', '', 'g')) >= 6
                                    AND regexp_full_match(phone, '{PHONE}', 'i')))
            AS "contacts.phone_format",
        count(*) FILTER (WHERE same_email > 1) AS "contacts.email_not_duplicated",
        {_unique("contacts", "contact_id", "contacts.contact_id_unique")}
    FROM (SELECT *, CASE WHEN email IS NOT NULL
                    THEN count(*) OVER (PARTITION BY lower(trim(email))) END AS same_email
          FROM raw.contacts)),
leads AS (
    SELECT {", ".join(_not_null("leads", ["lead_id", "created_at"]))},
        count(*) FILTER (WHERE NOT regexp_full_match(email, '{EMAIL}')) AS "leads.email_format",
        count(*) FILTER (WHERE lower(trim(channel)) NOT IN ({CHANNELS}))
            AS "leads.channel_in_value_set",
        count(*) FILTER (WHERE lower(status) NOT IN ({STATUSES})) AS "leads.status_in_value_set",
        count(*) FILTER (WHERE score NOT BETWEEN 0 AND 100) AS "leads.score_between_0_and_100",
        count(*) FILTER (WHERE qualified_at < created_at)
            AS "leads.qualified_at_not_before_created",
        count(*) FILTER (WHERE converted_at < created_at)
            AS "leads.converted_at_not_before_created",
        count(*) FILTER (WHERE converted_opportunity_id IS NOT NULL AND o.opportunity_id IS NULL)
            AS "leads.converted_opportunity_id_exists",
        {_unique("leads", "lead_id", "leads.lead_id_unique")}
    FROM raw.leads l
    LEFT JOIN (SELECT opportunity_id FROM raw.opportunities) o
        ON o.opportunity_id = l.converted_opportunity_id),
opportunities AS (
    SELECT {", ".join(_not_null("opportunities", ["opportunity_id", "created_at", "stage"]))},
        count(*) FILTER (WHERE {LABEL.format(c="stage")} NOT IN (SELECT source_label FROM labels))
            AS "opportunities.stage_mapped",
        count(*) FILTER (WHERE amount < 0) AS "opportunities.amount_non_negative",
        count(*) FILTER (WHERE probability NOT BETWEEN 0 AND 1)
            AS "opportunities.probability_between_0_and_1",
        count(*) FILTER (WHERE is_closed AND close_date < CAST(created_at AS DATE))
            AS "opportunities.close_date_not_before_created",
        count(*) FILTER (WHERE o.account_id IS NOT NULL AND a.account_id IS NULL)
            AS "opportunities.account_id_exists",
        count(*) FILTER (WHERE o.owner_id IS NOT NULL AND u.user_id IS NULL)
            AS "opportunities.owner_id_exists",
        {_unique("opportunities", "opportunity_id", "opportunities.opportunity_id_unique")}
    FROM raw.opportunities o
    LEFT JOIN (SELECT account_id FROM raw.accounts) a ON a.account_id = o.account_id
    LEFT JOIN (SELECT user_id FROM raw.users) u ON u.user_id = o.owner_id),
stage_changes AS (
    SELECT {", ".join(_not_null("stage_changes", ["opportunity_id", "stage", "changed_at"], "s."))},
        count(*) FILTER (WHERE {LABEL.format(c="stage")} NOT IN (SELECT source_label FROM labels))
            AS "stage_changes.stage_mapped",
        count(*) FILTER (WHERE amount < 0) AS "stage_changes.amount_non_negative",
        count(*) FILTER (WHERE changed_at < o.created_at)
            AS "stage_changes.changed_at_not_before_opportunity_created",
        count(*) FILTER (WHERE s.opportunity_id IS NOT NULL AND o.opportunity_id IS NULL)
            AS "stage_changes.opportunity_id_exists",
        {_unique("stage_changes", "opportunity_id, stage, changed_at", "stage_changes.key_unique")}
    FROM raw.stage_changes s
    LEFT JOIN (SELECT opportunity_id, created_at FROM raw.opportunities) o
        ON o.opportunity_id = s.opportunity_id),
activities AS (
    SELECT {", ".join(_not_null("activities", ["activity_id", "activity_type", "occurred_at"]))},
        count(*) FILTER (WHERE lower(trim(activity_type)) NOT IN ({TYPES}))
            AS "activities.activity_type_in_value_set",
        count(*) FILTER (WHERE t.opportunity_id IS NOT NULL AND o.opportunity_id IS NULL)
            AS "activities.opportunity_id_exists",
        {_unique("activities", "activity_id", "activities.activity_id_unique")}
    FROM raw.activities t
    LEFT JOIN (SELECT opportunity_id FROM raw.opportunities) o
        ON o.opportunity_id = t.opportunity_id)
UNPIVOT (SELECT * FROM accounts, users, contacts, leads, opportunities, stage_changes, activities)
ON COLUMNS(*) INTO NAME rule VALUE failures
"""


def run_sql(warehouse: Path) -> tuple[float, dict[str, int]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET enable_progress_bar = false")
    runs = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        rows = con.execute(SQL).fetchall()
        runs.append(time.perf_counter() - started)
    con.close()
    print(f"SQL runs: {', '.join(f'{r:.1f}s' for r in runs)}")
    return min(runs), {rule: int(n) for rule, n in rows}


# --- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("opportunities", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--landing", type=Path, help="reuse this landing instead of generating")
    parser.add_argument("--keep", type=Path, help="work here and keep the warehouse")
    parser.add_argument("--entities", default=",".join(CORE_ENTITIES))
    parser.add_argument("--max-rss-gb", type=float, default=14.0)
    parser.add_argument("--clean", action="store_true", help="inject no defects")
    parser.add_argument(
        "--narrow",
        action="store_true",
        help="frames of only the columns the rules read (hygiene.frame_columns)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.warehouse, args.child)
        return 0

    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="bench_validation_"))
    work = args.keep or tmp
    work.mkdir(parents=True, exist_ok=True)
    warehouse = work / "validation.duckdb"
    try:
        landing = args.landing
        if landing is None:
            from ingestion.synthetic import generate

            landing = work / "landing"
            started = time.perf_counter()
            # Clean: the defects are the ones inject() adds (none with --clean).
            generate(
                landing,
                opportunities=args.opportunities,
                batches=args.batches,
                end=END,
                clean=True,
            )
            print(f"generated {landing} in {time.perf_counter() - started:.1f}s")
        if not warehouse.exists():
            started = time.perf_counter()
            rows = load(landing, warehouse)
            print(f"loaded raw.* in {time.perf_counter() - started:.1f}s: {rows}")
            if not args.clean:
                print(f"injected defects: {inject(warehouse)}")

        if args.narrow:
            os.environ["BENCH_NARROW"] = "1"  # read by the children
        results = []
        for name in args.entities.split(","):
            r = run_child(warehouse, name, args.max_rss_gb * 1024)
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k not in ("failures",)}), flush=True)
        sql_seconds, sql_counts = run_sql(warehouse)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    report(args, results, sql_seconds, sql_counts)
    return 0


def report(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    sql_seconds: float,
    sql_counts: dict[str, int],
) -> None:
    print()
    shape = "narrow (hygiene.frame_columns)" if args.narrow else "every contract column"
    print(
        f"opportunities={args.opportunities:,} cpus={os.cpu_count()} date={dt.date.today()} "
        f"frames: {shape}"
    )
    print()
    print(
        "| entity | rows | rules | frame build (s) | GX validate (s) | GX rows/s | peak RSS (MiB) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    total_rows = total_validate = total_build = 0.0
    gx_counts: dict[str, int] = {}
    for r in results:
        if "error" in r:
            print(f"| {r['entity']} | — | — | — | {r['error']} | — | — |")
            continue
        total_rows += r["rows"]
        total_validate += r["validate_s"]
        total_build += r["frame_s"]
        gx_counts.update(r["failures"])
        print(
            f"| {r['entity']} | {r['rows']:,} | {r['rules']} | {r['frame_s']:.1f} "
            f"| {r['validate_s']:.1f} | {r['rows'] / r['validate_s']:,.0f} "
            f"| {r['peak_rss_mib']:,.0f} |"
        )
    if total_validate:
        print(
            f"| **all** | {total_rows:,.0f} | | {total_build:.1f} | {total_validate:.1f} "
            f"| {total_rows / total_validate:,.0f} | |"
        )
    setup = [r["setup_s"] for r in results if "setup_s" in r]
    if setup:
        print(f"\nGX first-call set-up per process (import, context, suite): {min(setup):.1f}s")
    print(
        f"\nOne DuckDB query, {len(sql_counts)} rules over raw.*: {sql_seconds:.1f}s "
        f"({total_rows / sql_seconds:,.0f} rows/s over the validated entities)"
    )
    compared = sorted(set(sql_counts) & set(gx_counts))
    differ = [(r, gx_counts[r], sql_counts[r]) for r in compared if gx_counts[r] != sql_counts[r]]
    only_gx = sorted(r for r in gx_counts if r not in sql_counts)
    print(f"Rules compared: {len(compared)}; differing counts: {differ or 'none'}")
    print(f"GX-only rules (parse flags, all true on typed raw): {len(only_gx)}")
    failing = {r: n for r, n in gx_counts.items() if n}
    print(f"Failing rules (GX counts): {failing or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
