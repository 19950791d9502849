"""One Spark session per process, configured from the pipeline config.

Tables live in Spark's warehouse folder (``spark.warehouse_dir``, by default
``<warehouse stem>.spark/`` beside the DuckDB path), registered in a Hive metastore. On this
machine that metastore is an embedded Derby database in ``<warehouse stem>.spark-session/``,
which one JVM at a time may open. A run's steps share this process's session: the pipeline
runs dbt in this process (orchestration.defs.transform.in_process), where dbt-spark's
session method gets the same session, so a run starts one JVM. :func:`stop_session` ends
it (and releases the metastore) before a session of another deployment starts. On a
cluster the conf points at the cluster's metastore (``spark.hadoop.hive.metastore.uris``)
instead.

The same properties reach a dbt started by hand through ``spark-defaults.conf`` in a conf
folder (:func:`write_conf_dir`, read by spark-submit through SPARK_CONF_DIR), so it sees
the loader's catalog.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ingestion.config import PipelineConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Spark's own logging is chatty (every stage, Hive's schema checks); errors still show.
_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
# The metastore logs `CREATE DATABASE IF NOT EXISTS` of an existing one as an error.
logger.hms.name = org.apache.hadoop.hive.metastore.RetryingHMSHandler
logger.hms.level = off
"""

_ACTIVE: dict[str, object] = {}


def session_dir(cfg: PipelineConfig) -> Path:
    """This machine's side of the Spark setup: conf folder, local metastore, scratch."""
    return cfg.warehouse.resolve().with_name(cfg.warehouse.stem + ".spark-session")


def spark_conf(cfg: PipelineConfig) -> dict[str, str]:
    """Every Spark property of the deployment; the config's spark.conf wins."""
    local = session_dir(cfg)
    conf = {
        "spark.master": cfg.spark.master,
        "spark.app.name": "crm-pipeline",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": cfg.spark_warehouse_dir,
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={local / 'metastore_db'};create=true"
        ),
        # derby.log beside the metastore instead of the working directory; the JVM in UTC
        # like the SQL session, so no local time zone leaks into a timestamp.
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={local} -Duser.timezone=UTC",
        "spark.sql.session.timeZone": "UTC",
        # dbt-spark's session forces ANSI off; the loader must compute with the same rules.
        "spark.sql.ansi.enabled": "false",
        "spark.local.dir": str(local / "tmp"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # Spark's 1g default is too little for a million opportunities in local mode,
        # where the executors live in the driver.
        "spark.driver.memory": "4g",
        # Parquet tables written by the loader carry timestamps as Spark reads them back.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    if cfg.spark.master.startswith("local"):
        # Spark's 200 shuffle partitions suit a cluster; on a few local cores each costs
        # a task per step for nothing.
        conf["spark.sql.shuffle.partitions"] = "8"
    conf.update(cfg.spark.conf)
    return conf


def write_conf_dir(cfg: PipelineConfig) -> Path:
    """spark-defaults.conf (and quiet logging) for a Spark started elsewhere: dbt-spark's
    session reads it when SPARK_CONF_DIR points at the returned folder."""
    folder = session_dir(cfg) / "conf"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} {value}" for key, value in spark_conf(cfg).items()]
    (folder / "spark-defaults.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "log4j2.properties").write_text(_LOG4J, encoding="utf-8")
    return folder


@contextlib.contextmanager
def conf_env(cfg: PipelineConfig) -> Iterator[Path]:
    """SPARK_CONF_DIR set to this deployment's conf folder while the block runs (a
    subprocess started in it, such as dbt, inherits it)."""
    folder = write_conf_dir(cfg)
    before = os.environ.get("SPARK_CONF_DIR")
    os.environ["SPARK_CONF_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("SPARK_CONF_DIR", None)
        else:
            os.environ["SPARK_CONF_DIR"] = before


def get_session(cfg: PipelineConfig) -> SparkSession:
    """This process's session for ``cfg``; a session of another deployment is ended first
    (its JVM holds that deployment's metastore)."""
    conf = spark_conf(cfg)
    key = repr(sorted(conf.items()))
    if _ACTIVE.get("key") == key:
        return _ACTIVE["session"]  # type: ignore[return-value]
    stop_session()
    with conf_env(cfg):
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.enableHiveSupport()
        for name, value in conf.items():
            builder = builder.config(name, value)
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    _ACTIVE.update(key=key, session=spark)
    return spark


def stop_session() -> None:
    """End this process's Spark session and its JVM, which releases the local metastore
    for the next process (dbt). A no-op without one."""
    spark = _ACTIVE.pop("session", None)
    _ACTIVE.pop("key", None)
    if spark is None:
        return
    from pyspark import SparkContext

    spark.stop()  # type: ignore[attr-defined]
    gateway = SparkContext._gateway
    if gateway is not None:
        # pyspark keeps the JVM for the next session; only its exit closes Derby.
        proc = getattr(gateway, "proc", None)
        with contextlib.suppress(Exception):
            gateway.shutdown()
        if proc is not None:
            proc.stdin.close() if proc.stdin else None
            try:
                proc.wait(timeout=30)
            except Exception:
                proc.kill()
                proc.wait()
        SparkContext._gateway = None
        SparkContext._jvm = None
