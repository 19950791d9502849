"""engine: spark gives the same numbers as DuckDB.

The whole pipeline (`crm-pipeline run --config <spark config>`) runs on Apache Spark (local
mode) and on DuckDB, on the same landing with the same as_of: the hand-made known-answer
fixture, and a synthetic landing of a few thousand opportunities. Every
mart must hold the same rows, value by value, and every landing file must have met the
same fate (rows loaded, quarantined, duplicates; published or rejected).

Slow by nature (a JVM, dbt-spark, GX's Spark engine): the runs happen once per module and
every comparison reads their results; one Spark session reads the Spark marts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from pipeline_helpers import query, run_pipeline

from ingestion.config import PipelineConfig

pytestmark = [pytest.mark.slow, pytest.mark.spark]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
KNOWN_ANSWER_AS_OF = "2026-04-15T00:00:00Z"
SYNTHETIC_END = dt.date(2026, 11, 20)
SYNTHETIC_AS_OF = "2026-11-20T07:00:00Z"


def _run_both(tmp: Path, landing: Path, as_of: str) -> tuple[Path, Path]:
    """The DuckDB run's warehouse and the Spark run's (its tables beside it)."""
    duck = tmp / "duck" / "warehouse.duckdb"
    spark = tmp / "spark" / "warehouse.duckdb"
    config = tmp / "spark.yaml"
    config.write_text("engine: spark\nspark: {master: 'local[2]'}\n", encoding="utf-8")
    assert run_pipeline(landing, duck, as_of) == 0
    assert run_pipeline(landing, spark, as_of, "--config", str(config)) == 0
    return duck, spark


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    from ingestion.synthetic import generate

    root = tmp_path_factory.mktemp("spark_engine")
    known = root / "known_answer"
    shutil.copytree(FIXTURES / "known_answer", known / "landing")
    synthetic = root / "synthetic"
    generate(synthetic / "landing", opportunities=2000, batches=2, seed=7, end=SYNTHETIC_END)
    return {
        "known_answer": _run_both(known, known / "landing", KNOWN_ANSWER_AS_OF),
        "synthetic": _run_both(synthetic, synthetic / "landing", SYNTHETIC_AS_OF),
    }


@pytest.fixture(scope="module")
def spark_reader(runs: dict[str, tuple[Path, Path]]):
    """One Spark session per module, opened after the runs (their dbt needs the metastore);
    yields a function reading a Spark table of one run as sorted tuples."""
    from ingestion.spark.session import get_session, stop_session

    def read(run: str, sql: str) -> list[tuple]:
        spark = get_session(PipelineConfig(warehouse=runs[run][1], engine="spark"))
        return [tuple(r) for r in spark.sql(sql).collect()]

    yield read
    stop_session()


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


@pytest.mark.parametrize("run", ["known_answer", "synthetic"])
def test_every_mart_matches_duckdb_value_by_value(runs, spark_reader, run):
    duck, _spark = runs[run]
    marts = _marts(duck)
    assert len(marts) >= 15, "every mart of dbt_project/models/marts"
    problems: list[str] = []
    total_rows = 0
    for table, columns in marts:
        select = f"select {', '.join(f'`{c}`' for c in columns)} from marts.{table}"
        got = sorted((tuple(_normal(v) for v in r) for r in spark_reader(run, select)), key=_key)
        want = sorted(
            (tuple(_normal(v) for v in r) for r in query(duck, select.replace("`", '"'))),
            key=_key,
        )
        total_rows += len(want)
        if len(got) != len(want):
            problems.append(f"{table}: {len(got)} rows on Spark, {len(want)} on DuckDB")
            continue
        for g, w in zip(got, want, strict=True):
            for column, a, b in zip(columns, g, w, strict=True):
                if not _same(a, b):
                    problems.append(f"{table}.{column}: Spark {a!r}, DuckDB {b!r} (row {w})")
    assert not problems, "\n".join(problems[:30])
    assert total_rows > (100 if run == "known_answer" else 1000)


@pytest.mark.parametrize("run", ["known_answer", "synthetic"])
def test_every_landing_file_meets_the_same_fate(runs, spark_reader, run):
    duck, _spark = runs[run]
    columns = (
        "source_file, status, input_rows, loaded_rows, quarantined_rows, duplicate_rows, "
        "rejected_rows"
    )
    sql = f"select {columns} from quality.ingestion_log order by source_file"
    want = query(duck, sql)
    assert want and want == spark_reader(run, sql)
    quarantined = "select entity, source_file, source_row, failed_rules from quality.quarantine"
    assert sorted(query(duck, quarantined)) == sorted(spark_reader(run, quarantined))
    # Every rule's verdict on every file, and how many rows it failed, too.
    verdicts = (
        "select source_file, rule, severity, success, unexpected_count "
        "from quality.validation_results where source_file is not null"
    )
    assert sorted(query(duck, verdicts)) == sorted(spark_reader(run, verdicts))


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


def test_both_loaders_quarantine_flag_and_publish_the_same_rows(tmp_path):
    """The loaders alone (no dbt) on a batch with bad rows: the same rows quarantined for
    the same rules, the same verdicts, the same raw tables; the quarantined rows are
    known by hand."""
    import duckdb

    from ingestion.loader import ingest
    from ingestion.spark.loader import ingest_spark
    from ingestion.spark.session import get_session

    landing = tmp_path / "landing"
    shutil.copytree(FIXTURES / "known_answer", landing)
    (landing / "2026-04-14T0000").mkdir()
    for name, text in DIRTY_BATCH.items():
        (landing / "2026-04-14T0000" / name).write_text(text, encoding="utf-8")
    at = dt.datetime(2026, 4, 15)
    options = {"run_id": "r1", "ingested_at": at, "quarantine_max_share": 0.6}
    con = duckdb.connect(str(tmp_path / "duck.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    ingest(con, landing, **options)
    spark = get_session(PipelineConfig(warehouse=tmp_path / "spark.duckdb", engine="spark"))
    ingest_spark(spark, landing, **options)

    def both(sql: str) -> tuple[list[tuple], list[tuple]]:
        return sorted(map(tuple, con.execute(sql).fetchall()), key=_key), sorted(
            (tuple(r) for r in spark.sql(sql).collect()), key=_key
        )

    quarantined = "select source_file, source_row, failed_rules from quality.quarantine"
    duck, on_spark = both(quarantined)
    batch = "2026-04-14T0000"
    assert [(f, r, json.loads(rules)) for f, r, rules in duck] == [
        (f"{batch}/opportunities.csv", 2, ["opportunities.amount_non_negative"]),
        (
            f"{batch}/opportunities.csv",
            3,
            ["opportunities.created_at_not_null", "opportunities.created_at_parses"],
        ),
        (f"{batch}/stage_changes.csv", 2, ["stage_changes.opportunity_id_exists"]),
        (f"{batch}/stage_changes.csv", 3, ["stage_changes.opportunity_id_exists"]),
    ]
    assert on_spark == duck
    log = (
        "select source_file, status, input_rows, loaded_rows, quarantined_rows, "
        "duplicate_rows, rejected_rows from quality.ingestion_log"
    )
    duck, on_spark = both(log)
    assert (f"{batch}/opportunities.csv", "published", 4, 2, 2, 0, 0) in duck
    assert on_spark == duck
    verdicts = (
        "select source_file, rule, severity, success, unexpected_count "
        "from quality.validation_results"
    )
    duck, on_spark = both(verdicts)
    assert (f"{batch}/opportunities.csv", "opportunities.owner_id_exists", "warn", False, 1) in duck
    assert on_spark == duck
    for table in ("opportunities", "stage_changes", "activities", "accounts", "users"):
        sql = f"select * from raw.{table}"
        want = sorted(
            str(r[:-2]) for r in con.execute(sql).fetchall()
        )  # all but _ingested_at, _attributes
        got = sorted(str(tuple(r)[:-2]) for r in spark.sql(sql).collect())
        assert got == want, table
    con.close()
