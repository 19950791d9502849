"""engine: spark gives the same numbers as DuckDB.

The whole pipeline (`crm-pipeline run --config <spark config>`) runs on Apache Spark (local
mode) and on DuckDB, on the same landings with the same as_of, as three sources of one
run: the hand-made known-answer fixture with a third batch of bad rows (the gate's
quarantine path), a synthetic landing of a few thousand opportunities with the demo's
defective leads and activities, and the Salesforce fixture's exports (its adapter). One
run per engine: a Spark run's fixed costs (its JVM, its metastore, dbt's ~150 nodes at
about a second each) are most of its time, whatever the rows, and the three landings'
ids are apart, so each landing's rows reach the marts as they would alone.
Every mart must hold the same rows, value by value, with the same column types; every
landing file must have met the same fate (rows loaded, quarantined, duplicates; published
or rejected), every quarantined row the same (each defect for the rule it breaks), and
every export row the same (converted or set aside, with its reason).
The Spark run prints the same summary, writes the report and publishes the same marts
(serving file, Parquet, PostgreSQL). Last, one more run per engine with a batch that
fails a dbt test: dbt in the Spark run's process fails the run as on DuckDB, and
nothing is published.

Slow by nature (a JVM, dbt-spark, GX's Spark engine): the two runs happen once per module
and every test reads their results. They are read from the files Spark wrote, with DuckDB:
the marts and quality records from the copy the Spark run makes in its DuckDB file
(ingestion.spark.mirror), the raw tables from their Parquet folders; so no test starts a
JVM of its own.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import math
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from pipeline_helpers import query

from ingestion.config import PipelineConfig, load_config
from orchestration.cli import main
from orchestration.defs.transform.project import dbt_project
from orchestration.lib.contracts import enforced_not_null_tests
from orchestration.lib.unchanged import staging_nodes

pytestmark = [pytest.mark.slow, pytest.mark.spark]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYNTHETIC_END = dt.date(2026, 11, 20)
AS_OF = "2026-11-20T07:00:00Z"
DIRTY = "2026-04-14T0000"
PG_ENV = "CRM_TEST_SPARK_PG_URL"

# A third batch of the known-answer landing with bad rows, for the gate's row-level paths.
DIRTY_BATCH = {
    "opportunities.csv": (
        "opportunity_id,created_at,stage,amount,owner_id,email_domain\n"
        "O11,2026-04-01T00:00:00Z,prospecting,900,u1,a.example\n"
        "O12,2026-04-02T00:00:00Z,prospecting,-50,u1,b.example\n"  # negative amount
        "O13,not a date,prospecting,100,u1,c.example\n"  # created_at does not parse
        "O14,2026-04-03T00:00:00Z,prospecting,300,u9,d.example\n"  # unknown owner: warn
    ),
    "stage_changes.csv": (
        "opportunity_id,stage,changed_at\n"
        "O11,prospecting,2026-04-01T00:00:00Z\n"
        "O99,prospecting,2026-04-01T00:00:00Z\n"  # no such opportunity
        "O12,prospecting,2026-04-02T00:00:00Z\n"  # its opportunity was quarantined
        "O14,qualification,2026-04-04T00:00:00Z\n"
    ),
}


@dataclass(frozen=True)
class Run:
    """One engine's run: its warehouse (on Spark: the DuckDB file the run copies its marts
    and quality records into), what the CLI printed, and its exit code."""

    warehouse: Path
    out: str
    err: str
    code: int


def _run(warehouse: Path, as_of: str, config: Path, *source: str) -> Run:
    """`crm-pipeline run` in this process, its output captured."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["run", "--config", str(config), "--warehouse", str(warehouse), "--as-of", as_of]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, *source])
    # Kept beside the run for whoever reads a failure.
    (warehouse.parent / "cli-stdout.txt").write_text(out.getvalue(), encoding="utf-8")
    (warehouse.parent / "cli-stderr.txt").write_text(err.getvalue(), encoding="utf-8")
    return Run(warehouse, out.getvalue(), err.getvalue(), code)


def _run_both(
    tmp: Path, as_of: str, settings: str, *source: str, postgres: dict[str, str] | None = None
) -> tuple[Run, Run]:
    """The DuckDB run and the Spark run of the same landings, with the same settings; with
    ``postgres``, each engine's run publishes to its own database."""
    runs = []
    for engine, extra in (("duck", ""), ("spark", "engine: spark\nspark: {master: 'local[2]'}\n")):
        config = tmp / f"{engine}.yaml"
        config.write_text(settings + extra, encoding="utf-8")
        with pytest.MonkeyPatch.context() as mp:
            if postgres:
                mp.setenv(PG_ENV, postgres[engine])
            runs.append(_run(tmp / engine / "warehouse.duckdb", as_of, config, *source))
    return runs[0], runs[1]


@pytest.fixture(scope="module")
def postgres(postgres_server) -> dict[str, str]:
    """A database per engine for the known-answer runs' PostgreSQL publish."""
    return {e: postgres_server.fresh_database(f"t_spark_{e}") for e in ("duck", "spark")}


def _settings(root: Path) -> str:
    """Both engines' settings (the engine aside) for the landings under ``root``."""
    return (
        # Two of the dirty batch's four opportunities fail: quarantined, not rejected.
        "quality: {quarantine_max_share: 0.6}\n"
        f"publish: {{postgres: {{env: {PG_ENV}, schema: marts}}}}\n"
        "sources:\n"
        f"  - {{name: crm, kind: crm, landing_dir: {root / 'known_answer'}}}\n"
        f"  - {{name: synthetic, kind: crm, landing_dir: {root / 'synthetic'}}}\n"
        f"  - {{name: salesforce, kind: salesforce, landing_dir: {root / 'salesforce'}}}\n"
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, postgres) -> tuple[Run, Run]:
    """The DuckDB run and the Spark run of the three landings."""
    from ingestion.synthetic import generate

    root = tmp_path_factory.mktemp("spark_engine")
    known = root / "known_answer"
    shutil.copytree(FIXTURES / "known_answer", known)
    (known / DIRTY).mkdir()
    for name, text in DIRTY_BATCH.items():
        (known / DIRTY / name).write_text(text, encoding="utf-8")
    # With the demo's defective leads and activities (ingestion/synthetic/defects.py): the
    # Spark gate quarantines them as DuckDB's does (test_both_gates_quarantine_...).
    generate(root / "synthetic", opportunities=2000, batches=2, seed=7, end=SYNTHETIC_END)
    shutil.copytree(FIXTURES / "salesforce", root / "salesforce")
    pair = _run_both(root, AS_OF, _settings(root), postgres=postgres)
    for run in pair:
        assert run.code == 0, f"{run.warehouse}:\n{run.err}"
    return pair


def _marts(warehouse: Path) -> list[tuple[str, list[str]]]:
    tables = [
        r[0]
        for r in query(
            warehouse,
            "select table_name from information_schema.tables where table_schema = 'marts' "
            "order by table_name",
        )
    ]
    return [
        (
            t,
            [
                r[0]
                for r in query(
                    warehouse,
                    "select column_name from information_schema.columns where table_schema = "
                    f"'marts' and table_name = '{t}' order by ordinal_position",
                )
            ],
        )
        for t in tables
    ]


def _normal(value: object) -> object:
    """One representation per value across the engines' drivers (Decimal, numpy)."""
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()  # type: ignore[union-attr]
    return value


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        # Percentiles and ratios are computed by different code on each engine; money and
        # durations are summed exactly on both (macros/types.sql).
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return type(a) is type(b) and a == b


def _key(row: tuple) -> tuple:
    return tuple((v is None, str(v)) for v in row)


def _differences(
    table: str, columns: list[str], spark_rows: list[tuple], duck_rows: list[tuple]
) -> list[str]:
    """Where one table's rows on Spark and on DuckDB differ, value by value (``_same``),
    whatever order they come in."""
    got = sorted((tuple(_normal(v) for v in r) for r in spark_rows), key=_key)
    want = sorted((tuple(_normal(v) for v in r) for r in duck_rows), key=_key)
    if len(got) != len(want):
        return [f"{table}: {len(got)} rows on Spark, {len(want)} on DuckDB"]
    return [
        f"{table}.{column}: Spark {x!r}, DuckDB {y!r} (row {w})"
        for g, w in zip(got, want, strict=True)
        for column, x, y in zip(columns, g, w, strict=True)
        if not _same(x, y)
    ]


def _types(warehouse: Path) -> list[tuple]:
    return query(
        warehouse,
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' order by table_name, ordinal_position",
    )


def test_every_mart_matches_duckdb_value_by_value(runs):
    duck, spark = (r.warehouse for r in runs)
    marts = _marts(duck)
    assert len(marts) >= 15, "every mart of dbt_project/models/marts"
    # The same marts, the same columns in the same order, the same types.
    assert _types(spark) == _types(duck)
    problems: list[str] = []
    total_rows = 0
    for table, columns in marts:
        select = f"select {', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)} from marts.{table}"
        want = query(duck, select)
        total_rows += len(want)
        problems += _differences(table, columns, query(spark, select), want)
    assert not problems, "\n".join(problems[:30])
    assert total_rows > 1000
    # The hand-made landing's deals are among them, on both engines: the fixture's ten
    # and the two of the dirty batch that passed the gate (O11, O14).
    known = (
        "select count(*) from marts.fct_opportunities "
        "where regexp_full_match(opportunity_id, 'O[0-9]+')"
    )
    assert query(spark, known) == query(duck, known) == [(10 + 2,)]


def _quarantine(warehouse: Path) -> list[tuple]:
    """quality.quarantine, all but when and in which run, its JSON as parsed values."""
    rows = query(
        warehouse,
        "select entity, batch_id, source_file, source_row, raw_row, failed_rules, export_file, "
        "export_line, export_column from quality.quarantine",
    )
    parsed = [
        (*r[:4], json.dumps(json.loads(r[4]), sort_keys=True), tuple(json.loads(r[5])), *r[6:])
        for r in rows
    ]
    return sorted(parsed, key=_key)


def test_every_landing_file_meets_the_same_fate(runs):
    duck, spark = (r.warehouse for r in runs)
    columns = (
        "source_file, status, input_rows, loaded_rows, quarantined_rows, duplicate_rows, "
        "rejected_rows"
    )
    sql = f"select {columns} from quality.ingestion_log order by source_file"
    want = query(duck, sql)
    assert want and want == query(spark, sql)
    # Every quarantined row the same, its raw values and export references included.
    assert _quarantine(duck) == _quarantine(spark)
    # Every rule's verdict on every file, and how many rows it failed, too; and the
    # landing checks' and the export reconciliation's findings.
    verdicts = (
        "select coalesce(source_file, ''), entity, rule, severity, success, unexpected_count, "
        "observed from quality.validation_results"
    )
    assert sorted(query(duck, verdicts)) == sorted(query(spark, verdicts))


def test_every_export_row_of_an_adapter_is_accounted_for_the_same_way(runs):
    """Salesforce on both engines: the same adapter converts the exports; every export
    row read is converted or set aside with a reason, recorded the same way."""
    duck, spark = (r.warehouse for r in runs)
    sql = (
        "select source, batch_id, export_file, entity, rows_read, rows_emitted, "
        "rows_set_aside, set_aside::varchar, skip_reason from quality.source_reconciliation"
    )
    want = sorted(query(duck, sql), key=_key)
    assert want == sorted(query(spark, sql), key=_key)
    assert {r[1] for r in want} == {"2026-03-07T0600", "2026-03-14T0600"}
    # Set aside by the adapter with its reason: the quantity and product-family quotas.
    quotas = [r for r in want if r[1] == "2026-03-07T0600" and r[2] == "ForecastingQuota.csv"]
    assert quotas and quotas[0][6] == 2 and len(json.loads(quotas[0][7])) >= 1
    for row in want:
        assert row[4] == row[5] + row[6] or row[8] is not None, row
    # Ids namespaced by the source on both engines: the fixture's 8 deals beside the
    # canonical landing's.
    ids = (
        "select starts_with(opportunity_id, 'salesforce:'), count(*) "
        "from marts.fct_opportunities group by 1 order by 1"
    )
    assert query(spark, ids) == query(duck, ids)
    assert query(spark, ids)[1] == (True, 8) and query(spark, ids)[0][1] >= 1000


def _raw(run: Run, table: str) -> list[str]:
    """A raw table as text rows, all but _ingested_at and _attributes: from the DuckDB
    warehouse, or from the Spark table's Parquet files."""
    if run.warehouse.parent.name == "duck":
        sql = f"select * exclude (_ingested_at, _attributes) from raw.{table}"
        return sorted(str(r) for r in query(run.warehouse, sql))
    from ingestion.spark.mirror import parquet_files, parquet_select

    files = parquet_files(run.warehouse.with_name("warehouse.spark") / "raw.db" / table)
    if not files:
        return []
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        sql = f"select * exclude (_ingested_at, _attributes) from ({parquet_select(con, files)})"
        return sorted(str(r) for r in con.execute(sql).fetchall())


def test_both_gates_quarantine_flag_and_publish_the_same_rows(runs):
    """The dirty batch of the known-answer landing: the same rows quarantined for the
    same rules (known by hand), the same verdicts, the same raw tables."""
    duck_run, spark_run = runs
    quarantined = (
        "select source_file, source_row, failed_rules from quality.quarantine "
        f"where source_file like '{DIRTY}/%' order by 1, 2"
    )
    want = [
        (f"{DIRTY}/opportunities.csv", 2, ["opportunities.amount_non_negative"]),
        (
            f"{DIRTY}/opportunities.csv",
            3,
            ["opportunities.created_at_not_null", "opportunities.created_at_parses"],
        ),
        (f"{DIRTY}/stage_changes.csv", 2, ["stage_changes.opportunity_id_exists"]),
        (f"{DIRTY}/stage_changes.csv", 3, ["stage_changes.opportunity_id_exists"]),
    ]
    for run in (duck_run, spark_run):
        rows = [(f, r, json.loads(rules)) for f, r, rules in query(run.warehouse, quarantined)]
        assert rows == want
        log = query(
            run.warehouse,
            "select status, input_rows, loaded_rows, quarantined_rows, duplicate_rows, "
            "rejected_rows from quality.ingestion_log "
            f"where source_file = '{DIRTY}/opportunities.csv'",
        )
        assert log == [("published", 4, 2, 2, 0, 0)]
        warn = query(
            run.warehouse,
            "select severity, success, unexpected_count from quality.validation_results "
            f"where source_file = '{DIRTY}/opportunities.csv' "
            "and rule = 'opportunities.owner_id_exists'",
        )
        assert warn == [("warn", False, 1)]
    for table in ("opportunities", "stage_changes", "activities", "accounts", "users"):
        want_rows = _raw(duck_run, table)
        assert want_rows and _raw(spark_run, table) == want_rows, table


# The demo's defects (ingestion/synthetic/defects.py): one extra row per 2,000 clean rows
# of leads and of activities, the kinds of an entity alternating, each failing one rule.
DEFECT_RULES = {
    "activities": {
        "LinkedIn InMail": "activities.activity_type_in_value_set",  # a custom activity type
        "no date": "activities.occurred_at_not_null",
    },
    "leads": {"no id": "leads.lead_id_not_null", "Nurturing": "leads.status_in_value_set"},
}


def _defect(entity: str, row: dict[str, str]) -> str | None:
    """The rule a synthetic landing row was made to fail, or None for a clean row."""
    if entity == "activities":
        if row["activity_type"] == "LinkedIn InMail":
            return DEFECT_RULES[entity]["LinkedIn InMail"]
        return DEFECT_RULES[entity]["no date"] if not row["occurred_at"] else None
    if not row["lead_id"]:
        return DEFECT_RULES[entity]["no id"]
    return DEFECT_RULES[entity]["Nurturing"] if row["status"] == "Nurturing" else None


def test_both_gates_quarantine_every_defective_row_of_the_synthetic_landing(runs):
    """Each defect row of the synthetic landing, found in its file by the field it breaks,
    is quarantined on both engines for that one rule, and no clean row is. How many, by
    hand from the files' sizes: the first batch's activities.csv holds 17,603 clean rows,
    17,603 // 2,000 = 8 defects, 4 of each kind; its leads.csv 5,206 clean rows, 2
    defects, 1 of each; the second batch (25 activities, 21 leads) reaches no further
    multiple of 2,000, and the other entities get none."""
    landing = runs[0].warehouse.parent.parent / "synthetic"
    want = []
    for path in sorted(landing.glob("*/*.csv")):
        if path.stem not in DEFECT_RULES:
            continue
        with path.open(newline="", encoding="utf-8") as fh:
            for number, row in enumerate(csv.DictReader(fh), start=1):
                if rule := _defect(path.stem, row):
                    want.append((path.stem, f"{path.parent.name}/{path.name}", number, [rule]))
    first = "2026-11-19T0600"
    assert Counter((f, r[0]) for _, f, _, r in want) == {
        (f"{first}/activities.csv", "activities.activity_type_in_value_set"): 4,
        (f"{first}/activities.csv", "activities.occurred_at_not_null"): 4,
        (f"{first}/leads.csv", "leads.lead_id_not_null"): 1,
        (f"{first}/leads.csv", "leads.status_in_value_set"): 1,
    }
    batches = tuple(sorted(p.name for p in landing.iterdir()))
    sql = (
        "select entity, source_file, source_row, failed_rules from quality.quarantine "
        f"where batch_id in {batches} order by source_file, source_row"
    )
    for run in runs:
        got = [(e, f, n, json.loads(rules)) for e, f, n, rules in query(run.warehouse, sql)]
        assert got == sorted(want, key=lambda r: (r[1], r[2])), run.warehouse
        # Quarantined, not rejected: the rest of each file is published.
        log = query(
            run.warehouse,
            "select source_file, status, quarantined_rows from quality.ingestion_log "
            f"where source_file in ('{first}/activities.csv', '{first}/leads.csv') order by 1",
        )
        assert log == [
            (f"{first}/activities.csv", "published", 8),
            (f"{first}/leads.csv", "published", 2),
        ]


def _summary(text: str, run: Run) -> list[str]:
    """The CLI's lines, without timings and with the run's folder as <run>."""
    lines = []
    for line in text.replace(str(run.warehouse.parent), "<run>").splitlines():
        if line.startswith(("[", "Full log", "Spark tables:", "See the full log")):
            continue
        line = re.sub(r"run_id = '[^']+'", "run_id = <id>", line)
        # Each engine's run publishes to a PostgreSQL database and role of its own.
        lines.append(re.sub(r"t_spark_(duck|spark)", "t_spark_<engine>", line))
    return lines


def _checks_passed(lines: list[str]) -> int:
    (count,) = [int(m[1]) for line in lines if (m := re.match(r"(\d+) checks passed\.", line))]
    return count


def test_the_spark_run_prints_the_same_summary(runs):
    """KPIs, forecast, publish targets and report on stdout; the checks, the export
    reconciliation and the quarantine on stderr: as on DuckDB, and where Spark's tables
    are."""
    duck, spark = runs
    assert _summary(spark.out, spark) == _summary(duck.out, duck)
    assert f"Spark tables: marts.* under {spark.warehouse.with_name('warehouse.spark')}" in (
        spark.out
    )
    assert (
        "KPI summary" in spark.out
        and "Report: <run>/reports/latest.html" in _summary(spark.out, spark)[-1]
    )
    err = [line for line in _summary(spark.err, spark) if not line.startswith("warning")]
    want = [line for line in _summary(duck.err, duck) if not line.startswith("warning")]
    keep = ("export file", "quarantined with their reasons")
    assert [x for x in err if any(k in x for k in keep)] == [
        x for x in want if any(k in x for k in keep)
    ]
    # Spark also runs the mart not_null tests that DuckDB leaves to its NOT NULL
    # constraints (orchestration/lib/contracts.py): that many more checks, all passed.
    left_out = len(enforced_not_null_tests(json.loads(dbt_project.manifest_path.read_text())))
    assert left_out == 24
    assert _checks_passed(err) == _checks_passed(want) + left_out
    assert any(line.startswith("salesforce: ") and "export files" in line for line in err)
    assert any(re.search(r"\b\d+ row\(s\) quarantined", line) for line in err)


def test_the_spark_run_writes_the_report_and_publishes_the_same_marts(runs, postgres, tmp_path):
    """The report, the serving file, the Parquet copies and PostgreSQL, from the Spark
    run's marts as from the DuckDB run's."""
    import psycopg

    from ingestion.publish import parquet_dir, serving_path

    duck, spark = (r.warehouse for r in runs)
    assert (spark.parent / "reports" / "latest.html").is_file()
    marts = _marts(duck)
    problems: list[str] = []
    with (
        duckdb.connect() as con,
        psycopg.connect(postgres["spark"]) as pg_spark,
        psycopg.connect(postgres["duck"]) as pg_duck,
    ):
        for table, columns in marts:
            select = ", ".join(f'"{c}"' for c in columns)
            sql = f"select {select} from marts.{table}"
            problems += _differences(
                f"serving {table}", columns,
                query(serving_path(spark), sql), query(serving_path(duck), sql),
            )  # fmt: skip
            spark_file, duck_file = (
                d / f"{table}.parquet" for d in (parquet_dir(spark), parquet_dir(duck))
            )
            problems += _differences(
                f"parquet {table}", columns,
                con.execute(f"select {select} from read_parquet('{spark_file}')").fetchall(),
                con.execute(f"select {select} from read_parquet('{duck_file}')").fetchall(),
            )  # fmt: skip
            problems += _differences(
                f"postgres {table}", columns,
                pg_spark.execute(sql).fetchall(), pg_duck.execute(sql).fetchall(),
            )  # fmt: skip
    assert not problems, "\n".join(problems[:30])
    # `crm-pipeline report` on the Spark deployment, after the run.
    out = tmp_path / "report.html"
    config = spark.parent.parent / "spark.yaml"
    assert main(["report", "--config", str(config), "--warehouse", str(spark),
                 "--out", str(out)]) == 0  # fmt: skip
    html = out.read_text(encoding="utf-8")
    assert "80.0%" in html or "win rate" in html.lower()


# A later batch of the known-answer landing: one opportunity in a currency no exchange
# rate covers. The hygiene gate passes it (any currency code is a currency); dbt's
# assert_amount_reporting_has_fx_rate test fails on fct_opportunities.
NO_RATE_BATCH = "2026-04-16T0000"
NO_RATE_OPPORTUNITY = (
    "opportunity_id,created_at,stage,owner_id,account_id,amount,currency,lead_source,"
    "close_date,is_closed,is_won,lost_reason,updated_at,is_deleted\n"
    "O15,2026-04-10T00:00:00Z,prospecting,u1,a1,700,JPY,referral,2026-06-30,false,false,,"
    "2026-04-10T00:00:00Z,false\n"
)
FX_TEST = "assert_amount_reporting_has_fx_rate"


def _published(warehouse: Path, postgres_url: str) -> tuple:
    """What the readers of a deployment see: the serving file's and the Parquet files'
    bytes, and the run PostgreSQL's marts come from."""
    import psycopg

    from ingestion.publish import parquet_dir, serving_path

    with psycopg.connect(postgres_url) as pg:
        (pg_run,) = pg.execute("select run_id from marts._publication").fetchone()
    parquet = {p.name: p.read_bytes() for p in sorted(parquet_dir(warehouse).iterdir())}
    return serving_path(warehouse).read_bytes(), parquet, pg_run


def _spark_cfg(run: Run) -> PipelineConfig:
    """The settings the Spark run's steps had, built as the CLI builds them."""
    from orchestration.lib.pipeline import PipelineResource

    config = run.warehouse.parent.parent / "spark.yaml"
    cfg = load_config(config).with_overrides(warehouse=run.warehouse)
    return PipelineResource(
        config_path=str(config),
        source=cfg.source,
        landing_dir=str(cfg.landing_dir),
        warehouse=str(cfg.warehouse),
    ).settings()


@dataclass(frozen=True)
class FailedRuns:
    duck: Run
    spark: Run
    published_before: dict[str, tuple]
    spark_context: object  # the Spark run's SparkContext, before the failed run


@pytest.fixture(scope="module")
def failed(runs, postgres) -> FailedRuns:
    """The next run of each deployment, with a batch whose opportunity fails a dbt test.
    It changes the module's deployments: the tests that use it come last in the module."""
    from pyspark import SparkContext

    root = runs[0].warehouse.parent.parent
    before = {
        run.warehouse.parent.name: _published(run.warehouse, postgres[run.warehouse.parent.name])
        for run in runs
    }
    context = SparkContext._active_spark_context
    assert context is not None, "the Spark run's session ends with the process, not the run"
    (root / "known_answer" / NO_RATE_BATCH).mkdir()
    (root / "known_answer" / NO_RATE_BATCH / "opportunities.csv").write_text(
        NO_RATE_OPPORTUNITY, encoding="utf-8"
    )
    duck, spark = _run_both(root, AS_OF, _settings(root), postgres=postgres)
    return FailedRuns(duck, spark, before, context)


def test_a_failing_dbt_test_fails_the_spark_run_as_it_fails_the_duckdb_run(failed, postgres):
    """dbt in the Spark run's process: its failing test blocks the run with the same
    message, alert and exit code as on DuckDB, no traceback; nothing is published; the
    marts hold what DuckDB's hold (every model rebuilt: none depends on
    fct_opportunities, so dbt skips none)."""
    verdicts: dict[str, dict[str, str]] = {}
    for run in (failed.duck, failed.spark):
        engine = run.warehouse.parent.name
        assert run.code == 1, run.err  # blocked by data quality
        assert f"blocked: check marts/fct_opportunities:{FX_TEST} failed:" in run.err
        assert (
            f"error: step dbt_models: dbt tests failed: test.crm_pipeline.{FX_TEST}. The models "
            "they test were built; the models downstream of them were skipped."
        ) in run.err
        assert "everything downstream of them was skipped and keeps its previous version" in (
            run.err
        )
        assert "Traceback" not in run.out + run.err and "Published" not in run.out
        # The alert says why.
        alerts = [
            json.loads(line)
            for line in (run.warehouse.parent / "logs" / "alerts.jsonl").read_text().splitlines()
        ]
        assert alerts[-1]["kind"] == "run_failed", engine
        assert alerts[-1]["message"].startswith(
            f"step dbt_models: dbt tests failed: test.crm_pipeline.{FX_TEST}."
        )
        # dbt's own record: the test failed on the one opportunity without a rate.
        results = json.loads((run.warehouse.parent / "dbt_target" / "run_results.json").read_text())
        (verdict,) = [r for r in results["results"] if r["unique_id"].endswith(FX_TEST)]
        assert (verdict["status"], verdict["failures"]) == ("fail", 1), engine
        verdicts[engine] = {r["unique_id"]: r["status"] for r in results["results"]}
        # Nothing published: the serving file, the Parquet files and PostgreSQL unchanged.
        assert _published(run.warehouse, postgres[engine]) == failed.published_before[engine]
        # The tested mart was rebuilt with the opportunity, its amount left unconverted.
        assert query(
            run.warehouse,
            "select amount, currency, amount_reporting from marts.fct_opportunities "
            "where opportunity_id = 'O15'",
        ) == [(700.0, "JPY", None)], engine
    assert _summary(failed.spark.err, failed.spark) == _summary(failed.duck.err, failed.duck)
    # dbt ran the same nodes on both engines, with the same verdicts; Spark also the mart
    # not_null tests DuckDB leaves to its NOT NULL constraints, which pass there, and the
    # staging views: DuckDB's run tested the new batch's rows in delta mode, on the views
    # its previous run built (Spark always builds and tests in full).
    manifest = json.loads(dbt_project.manifest_path.read_text())
    assert "Not rerun: 10 staging views: the dbt project and the stage map are as when run" in (
        failed.duck.err
    )
    views, _ = staging_nodes(manifest)
    left_out = enforced_not_null_tests(manifest)
    extra = {u: v for u, v in verdicts["spark"].items() if u not in verdicts["duck"]}
    # A test's unique id is test.<project>.<name>[.<hash>].
    assert sorted(u.split(".")[2] for u in extra if u.startswith("test.")) == left_out
    assert {u for u in extra if not u.startswith("test.")} == views and len(views) == 10
    assert set(extra.values()) == {"pass", "success"}
    assert {u: v for u, v in verdicts["spark"].items() if u not in extra} == verdicts["duck"]
    assert len(verdicts["duck"]) > 100
    # Every mart as DuckDB left it: rebuilt, or skipped and kept from the run before.
    duck, spark = failed.duck.warehouse, failed.spark.warehouse
    problems: list[str] = []
    for table, columns in _marts(duck):
        select = f"select {', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)} from marts.{table}"
        problems += _differences(table, columns, query(spark, select), query(duck, select))
    assert not problems, "\n".join(problems[:30])


def test_the_spark_session_outlives_a_failed_dbt_build(failed):
    """The next run in this process gets the same, working session: dbt's thread ended,
    the SparkContext still up and the one the run's settings map to, and it reads the
    marts dbt rebuilt."""
    import threading

    from ingestion.spark.session import get_session

    assert not [t for t in threading.enumerate() if t.name == "dbt" and t.is_alive()]
    spark = get_session(_spark_cfg(failed.spark))
    assert spark.sparkContext is failed.spark_context
    rows = spark.sql(
        "select amount, currency, amount_reporting from marts.fct_opportunities "
        "where opportunity_id = 'O15'"
    ).collect()
    assert [tuple(r) for r in rows] == [(700.0, "JPY", None)]
