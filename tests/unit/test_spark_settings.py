"""engine: spark without starting Spark: the properties a run gives Spark and dbt-spark,
what the Spark gate derives for each rule, and what the Spark engine refuses."""

from __future__ import annotations

import pytest

from ingestion.config import PipelineConfig, SparkSettings
from ingestion.hygiene.rules import check_columns, checks_for
from ingestion.schema import ENTITIES


def test_spark_properties_put_everything_beside_the_warehouse(tmp_path):
    from ingestion.spark.session import spark_conf, write_conf_dir

    cfg = PipelineConfig(warehouse=tmp_path / "w1.duckdb", engine="spark")
    conf = spark_conf(cfg)
    assert conf["spark.master"] == "local[*]"
    assert conf["spark.sql.warehouse.dir"] == str(tmp_path / "w1.spark")
    assert (
        str(tmp_path / "w1.spark-session" / "metastore_db")
        in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
    )
    assert conf["spark.sql.session.timeZone"] == "UTC"
    # dbt-spark's session turns ANSI off; the loader must compute by the same rules.
    assert conf["spark.sql.ansi.enabled"] == "false"
    assert conf["spark.sql.shuffle.partitions"] == "8"  # a local master
    # The config's properties win; a cluster master keeps Spark's own partition count.
    cluster = PipelineConfig(
        warehouse=tmp_path / "w2.duckdb",
        engine="spark",
        spark=SparkSettings(
            master="spark://head:7077",
            warehouse_dir="s3a://bucket/crm",
            conf={"spark.driver.memory": "16g"},
        ),
    )
    conf = spark_conf(cluster)
    assert conf["spark.driver.memory"] == "16g"
    assert conf["spark.sql.warehouse.dir"] == "s3a://bucket/crm"
    assert "spark.sql.shuffle.partitions" not in conf
    # A dbt run by hand (dbt_project/profiles.yml) gets them through SPARK_CONF_DIR.
    folder = write_conf_dir(cluster)
    lines = (folder / "spark-defaults.conf").read_text().splitlines()
    assert "spark.master spark://head:7077" in lines
    assert "spark.driver.memory 16g" in lines
    assert (folder / "log4j2.properties").is_file()


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_the_spark_gate_derives_every_check_column_of_the_catalog(entity):
    from ingestion.spark.hygiene import _check_expr

    e = ENTITIES[entity]
    frame_columns = {*e.column_names, "_source_row", "_source_file", "key__conflicting",
                     "opportunity_created_at", "email__seen_before"}  # fmt: skip
    for name in check_columns(checks_for(entity)):
        assert _check_expr(e, name, frame_columns)
    # A flag column the file did not have reads as its default, like the DuckDB runner's.
    assert _check_expr(e, "amount__parses", set()) == "true"
    assert _check_expr(e, "key__conflicting", set()) == "false"
