"""The one configuration file (YAML) and its defaults.

Every setting has a default, so the pipeline runs with no file at all (synthetic source,
one DuckDB file under ``data/``). Secrets never live here: they come from the environment.

Why one module (~700 lines): it is the schema of one file. Each section's settings class
sits beside the function that parses and checks it, so a setting's default, type and
error message are read (and changed) in one place; crm_pipeline.example.yaml mirrors it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ingestion.errors import ConfigError
from ingestion.stages import CATEGORIES, DEFAULT_STAGES, Stage, StageMap

SOURCE_KINDS = ("synthetic", "crm", "salesforce", "hubspot", "pipedrive", "mapping")
DATE_ORDERS = ("mdy", "dmy")
# Where raw.*, quality.* and the marts live and are computed: one DuckDB file, or Apache
# Spark (local or a cluster) for volumes past one machine.
ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class SourceSpec:
    """One source of a deployment: what kind of export, where it lands, how to read it."""

    name: str  # on every row (_source); CRM adapters put it in front of every id
    kind: str  # one of SOURCE_KINDS
    landing_dir: Path
    mapping: Path | None = None  # the mapping file (kind mapping)
    date_order: str = "mdy"  # how report-style dates like 02/03/26 are read
    # Every export holds every record: one missing from a later batch was deleted.
    full_export: bool = False

    @property
    def is_adapter(self) -> bool:
        """A CRM's own export format, converted to the canonical landing before loading."""
        return self.kind not in ("synthetic", "crm")


LANDING_RULES = ("landing.freshness", "landing.volume")


@dataclass(frozen=True)
class SyntheticSettings:
    opportunities: int = 5000
    batches: int = 4
    seed: int = 42
    # True: no defective rows (by default about one lead or activity row in 2,000 is,
    # for the hygiene gate to quarantine; ingestion/synthetic/defects.py).
    clean: bool = False


@dataclass(frozen=True)
class ScheduleSettings:
    cron: str = "0 6 * * *"
    timezone: str = "UTC"


@dataclass(frozen=True)
class SensorSettings:
    """The Dagster sensors that watch the landing directory (`sensor:`)."""

    # How often the daemon looks for new batch folders and for stale data.
    interval_seconds: int = 60
    # A batch folder counts as complete once none of its files changed for this long, so
    # a run never ingests an export that is still being written.
    settle_seconds: int = 60


@dataclass(frozen=True)
class RetrySettings:
    """Retries of a failed step for transient causes (`retries:`); never for bad data."""

    max_retries: int = 2
    # Seconds before the first retry; later retries wait longer (exponential backoff:
    # 1, 3, 7 ... times this).
    delay_seconds: int = 30


@dataclass(frozen=True)
class QualitySettings:
    """The hygiene gate's policy (the `quality:` section)."""

    # Rows failing a row-level ERROR rule go to quality.quarantine; past this share of a
    # file's rows the whole batch is rejected instead (a systematic problem, not a few
    # bad rows).
    quarantine_max_share: float = 0.05
    # The newest batch must be younger than this at as_of.
    freshness_max_age_hours: float = 48.0
    # A new batch's row count must lie within these multiples of the median of the
    # previous batches of the same entity (checked once there are three earlier batches).
    volume_min_ratio: float = 0.1
    volume_max_ratio: float = 10.0
    # Rule name → "error" | "warn", overriding the rule's default severity.
    severity: dict[str, str] = field(default_factory=dict)
    # Processes validating the parts of a batch too large for one frame (DuckDB engine);
    # None: one per core but the first, at most four. 1: all in the run's own process.
    gate_workers: int | None = None


@dataclass(frozen=True)
class AlertSettings:
    """Alert delivery (`alerts:`). Where alerts go beyond the log is set by environment
    variables (CRM_ALERT_WEBHOOK_URL, CRM_SLACK_*, CRM_SMTP_*), because those hold secrets."""

    # JSON lines, one alert per line; always written. Relative paths are taken from the
    # directory of the warehouse.
    log: Path = Path("logs/alerts.jsonl")
    # The same failure is delivered again only after this long (the log gets every one).
    repeat_after_hours: float = 24.0
    # Tries per sink and alert; the wait doubles after each failed try.
    delivery_attempts: int = 3
    backoff_seconds: float = 2.0
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class ForecastSettings:
    """The forecast and after-sales marts (`forecast:`), passed to dbt as vars."""

    # Stage-win probabilities are learned from deals closed in [t - lookback_days, t):
    # long enough to hold many closed deals, short enough to follow a changing market.
    lookback_days: int = 365
    # Below this many closed deals that reached a stage, its learned share is noise, and
    # the configured stage probability is used instead.
    min_closed_deals: int = 20
    # A won deal counts as followed up when an activity on it falls in
    # (closed_at, closed_at + follow_up_days].
    follow_up_days: int = 30


@dataclass(frozen=True)
class PostgresPublishSettings:
    """`publish: postgres:`: load the marts into a PostgreSQL schema after each run."""

    # The environment variable holding the connection string (it has a password, so it
    # never goes in this file).
    env: str = "CRM_POSTGRES_URL"
    # The schema the marts are published to, one table per mart.
    schema: str = "marts"


@dataclass(frozen=True)
class PublishSettings:
    """Where the marts are published besides the serving file and Parquet files (`publish:`)."""

    postgres: PostgresPublishSettings | None = None


@dataclass(frozen=True)
class SparkSettings:
    """Apache Spark (`spark:`), used with `engine: spark`."""

    # Where Spark runs: local[*] (this machine, every core), local[2], spark://host:7077, yarn.
    master: str = "local[*]"
    # spark.sql.warehouse.dir: one folder per database (raw.db, quality.db, marts.db ...)
    # holding one folder of Parquet files per table. None: beside the warehouse file,
    # <warehouse stem>.spark/, so two warehouses on one machine never share tables. A
    # local folder or a URI Spark understands (hdfs://..., s3a://...).
    warehouse_dir: str | None = None
    # Further Spark properties (spark.driver.memory, spark.sql.shuffle.partitions, a Hive
    # metastore's spark.hadoop.hive.metastore.uris ...); they win over the defaults.
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineConfig:
    # synthetic | crm | salesforce | hubspot | pipedrive | mapping:FILE
    source: str = "synthetic"
    landing_dir: Path = Path("data/landing")
    # Report-style dates (02/03/26): month first (mdy) or day first (dmy).
    date_order: str = "mdy"
    full_export: bool = False
    # `sources:` in the file: several sources into one warehouse (replaces source/landing_dir).
    source_list: tuple[SourceSpec, ...] = ()
    # "entity.column" → {CRM value → canonical value}, for the columns with a fixed value
    # set (lead status and channel, activity type): a CRM's custom picklist values.
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    warehouse: Path = Path("data/warehouse.duckdb")
    # duckdb (one file, the default) or spark (settings in `spark`).
    engine: str = "duckdb"
    spark: SparkSettings = field(default_factory=SparkSettings)
    # Time zone of source timestamps that carry no offset.
    source_timezone: str = "UTC"
    reporting_currency: str = "USD"
    # DuckDB's memory cap, for the loader, the checks and dbt. Past it DuckDB spills to
    # disk instead of taking most of the machine (its own default is 80% of RAM).
    memory_limit: str = "2.5GB"
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    sensor: SensorSettings = field(default_factory=SensorSettings)
    retries: RetrySettings = field(default_factory=RetrySettings)
    stage_map: StageMap = field(default_factory=StageMap)
    quality: QualitySettings = field(default_factory=QualitySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)

    @property
    def alert_log(self) -> Path:
        return (
            self.alerts.log
            if self.alerts.log.is_absolute()
            else (self.warehouse.parent / self.alerts.log)
        )

    @property
    def sources(self) -> tuple[SourceSpec, ...]:
        """Every source this deployment loads, in order."""
        if self.source_list:
            return self.source_list
        kind, _, mapping = self.source.partition(":")
        return (
            SourceSpec(
                name=kind,
                kind=kind,
                landing_dir=self.landing_dir,
                mapping=Path(mapping) if mapping else None,
                date_order=self.date_order,
                full_export=self.full_export,
            ),
        )

    @property
    def spark_warehouse_dir(self) -> str:
        """Spark's warehouse folder: the configured one, else <warehouse stem>.spark/
        (local folders absolute, so every process and dbt agree on it)."""
        configured = self.spark.warehouse_dir
        if configured and "://" in configured:
            return configured
        folder = (
            Path(configured)
            if configured
            else self.warehouse.with_name(self.warehouse.stem + ".spark")
        )
        return str(folder.resolve())

    @property
    def alert_state(self) -> Path:
        return self.alert_log.with_name(self.alert_log.stem + ".sent.json")

    def with_overrides(self, **changes: Any) -> PipelineConfig:
        """The config with command-line options applied (None means: keep the file's)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "source" in changes:
            check_source(changes["source"], "--source")
        for key in ("landing_dir", "warehouse"):
            if key in changes:
                changes[key] = Path(changes[key])
        return replace(self, **changes)


def parse_as_of(text: str, where: str = "--as-of") -> datetime:
    """An as_of timestamp as naive UTC; an offset converts, no offset means UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {text!r} is not an ISO 8601 timestamp "
            f"(e.g. 2026-11-26T06:00:00Z or 2026-11-26)."
        ) from exc
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def format_as_of(value: datetime) -> str:
    """as_of as dbt and run tags get it: naive UTC, space-separated."""
    return value.isoformat(sep=" ")


def check_source(kind: str, where: str) -> None:
    name, _, mapping = kind.partition(":")
    if name not in SOURCE_KINDS or (name == "mapping") != bool(mapping):
        raise ConfigError(
            f"{where}: unknown source {kind!r}; choose one of synthetic, crm, salesforce, "
            f"hubspot, pipedrive, or mapping:FILE (FILE: your mapping YAML)."
        )
    if mapping and not Path(mapping).is_file():
        raise ConfigError(f"{where}: the mapping file {mapping} does not exist.")


_TOP_KEYS = {
    "source",
    "landing_dir",
    "warehouse",
    "engine",
    "spark",
    "source_timezone",
    "reporting_currency",
    "memory_limit",
    "date_order",
    "full_export",
    "sources",
    "value_labels",
    "synthetic",
    "schedule",
    "sensor",
    "retries",
    "stages",
    "stage_labels",
    "quality",
    "alerts",
    "forecast",
    "publish",
}


def load_config(path: Path | None) -> PipelineConfig:
    """Read a config file; ``None`` gives the defaults. Relative paths are kept relative
    to the directory the pipeline runs from, like the command-line options."""
    if path is None:
        return PipelineConfig()
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist; pass an existing YAML file.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings.")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; "
            f"known settings are {', '.join(sorted(_TOP_KEYS))}."
        )
    cfg = PipelineConfig()
    source = str(data.get("source", cfg.source))
    check_source(source, f"{path}: source")
    tz = str(data.get("source_timezone", cfg.source_timezone))
    _check_timezone(tz, f"{path}: source_timezone")
    schedule = ScheduleSettings(**_section(data, "schedule", ScheduleSettings, path))
    _check_timezone(schedule.timezone, f"{path}: schedule.timezone")
    synthetic = SyntheticSettings(**_section(data, "synthetic", SyntheticSettings, path))
    sensor = SensorSettings(**_section(data, "sensor", SensorSettings, path))
    retries = RetrySettings(**_section(data, "retries", RetrySettings, path))
    for where, value in {
        **{f"sensor.{k}": v for k, v in vars(sensor).items()},
        **{f"retries.{k}": v for k, v in vars(retries).items()},
    }.items():
        if value < 0 or (where == "sensor.interval_seconds" and value < 1):
            raise ConfigError(f"{path}: {where} must be a positive number of seconds.")
    date_order = str(data.get("date_order", cfg.date_order))
    if date_order not in DATE_ORDERS:
        raise ConfigError(f"{path}: date_order must be mdy or dmy, not {date_order!r}.")
    full_export = data.get("full_export", False)
    if not isinstance(full_export, bool):
        raise ConfigError(f"{path}: full_export must be true or false.")
    return PipelineConfig(
        source=source,
        landing_dir=Path(data.get("landing_dir", cfg.landing_dir)),
        date_order=date_order,
        full_export=full_export,
        source_list=_sources(data, path),
        value_labels=_value_labels(data, path),
        warehouse=Path(data.get("warehouse", cfg.warehouse)),
        engine=_engine(data, path),
        spark=_spark(data, path),
        source_timezone=tz,
        reporting_currency=str(data.get("reporting_currency", cfg.reporting_currency)),
        memory_limit=_memory_limit(data.get("memory_limit", cfg.memory_limit), path),
        synthetic=synthetic,
        schedule=schedule,
        sensor=sensor,
        retries=retries,
        stage_map=_stage_map(data, path),
        quality=_quality(data, path),
        alerts=_alerts(data, path),
        forecast=_forecast(data, path),
        publish=_publish(data, path),
    )


def _engine(data: dict[str, Any], path: Path) -> str:
    engine = data.get("engine", "duckdb")
    if engine not in ENGINES:
        raise ConfigError(
            f"{path}: engine must be duckdb (one DuckDB file, the default) or spark "
            f"(Apache Spark, settings under spark:), not {engine!r}."
        )
    if engine == "spark":
        missing = [m for m in ("pyspark", "dbt.adapters.spark") if not _importable(m)]
        if missing:
            raise ConfigError(
                f"{path}: engine: spark needs pyspark and dbt-spark, which are not installed "
                f"({', '.join(missing)}). Install the spark extra: "
                f"pip install -c constraints.txt -e '.[spark]' (make install does)."
            )
    return str(engine)


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


_SPARK_KEYS = {"master", "warehouse_dir", "conf"}


def _spark(data: dict[str, Any], path: Path) -> SparkSettings:
    section = data.get("spark") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: spark must be a mapping (master, warehouse_dir, conf).")
    unknown = sorted(set(section) - _SPARK_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown spark setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_SPARK_KEYS))}."
        )
    master = section.get("master", SparkSettings.master)
    if not isinstance(master, str) or not master.strip():
        raise ConfigError(
            f"{path}: spark.master must be a Spark master URL such as local[*], local[4] "
            f"or spark://host:7077, not {master!r}."
        )
    warehouse_dir = section.get("warehouse_dir")
    if warehouse_dir is not None and (not isinstance(warehouse_dir, str) or not warehouse_dir):
        raise ConfigError(f"{path}: spark.warehouse_dir must be a folder path.")
    conf = section.get("conf") or {}
    if not isinstance(conf, dict) or any(
        not isinstance(k, str) or not k.startswith("spark.") or isinstance(v, dict | list)
        for k, v in conf.items()
    ):
        raise ConfigError(
            f"{path}: spark.conf maps Spark properties (names starting with spark.) to "
            f"values, e.g. conf: {{spark.driver.memory: 8g, spark.sql.shuffle.partitions: 8}}."
        )
    if "spark.master" in conf or "spark.sql.warehouse.dir" in conf:
        raise ConfigError(
            f"{path}: set spark.master and spark.sql.warehouse.dir with spark.master and "
            f"spark.warehouse_dir, not under spark.conf."
        )
    return SparkSettings(
        master=master.strip(),
        warehouse_dir=warehouse_dir or None,
        # YAML reads true/8 as bool/int; Spark wants them as text (true, 8).
        conf={k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in conf.items()},
    )


def _value_labels(data: dict[str, Any], path: Path) -> dict[str, dict[str, str]]:
    from ingestion.schema import VALUE_SETS

    section = data.get("value_labels") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: value_labels must be a mapping.")
    result = {}
    for key, mapping in section.items():
        if key not in VALUE_SETS:
            raise ConfigError(
                f"{path}: value_labels.{key}: values can be mapped for "
                f"{', '.join(sorted(VALUE_SETS))}."
            )
        if not isinstance(mapping, dict):
            raise ConfigError(f"{path}: value_labels.{key} maps CRM values to canonical ones.")
        for value, target in mapping.items():
            if target not in VALUE_SETS[key]:
                raise ConfigError(
                    f"{path}: value_labels.{key} maps {value!r} to {target!r}; use one of "
                    f"{', '.join(VALUE_SETS[key])}."
                )
        result[key] = {str(k): str(v) for k, v in mapping.items()}
    return result


_SOURCE_KEYS = {"name", "kind", "landing_dir", "mapping", "date_order", "full_export"}


def _sources(data: dict[str, Any], path: Path) -> tuple[SourceSpec, ...]:
    """``sources:``: several sources loading into one warehouse."""
    if "sources" not in data:
        return ()
    raw = data["sources"]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: sources must be a non-empty list.")
    specs = []
    for i, item in enumerate(raw, start=1):
        where = f"{path}: sources[{i}]"
        if not isinstance(item, dict) or not {"name", "kind", "landing_dir"} <= set(item):
            raise ConfigError(f"{where} needs name, kind and landing_dir.")
        unknown = sorted(set(item) - _SOURCE_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}.")
        name, kind = str(item["name"]), str(item["kind"])
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ConfigError(f"{where}: name {name!r} must be lower case letters, digits, _.")
        if kind not in SOURCE_KINDS or kind == "synthetic":
            raise ConfigError(
                f"{where}: kind {kind!r} is not one of "
                f"crm, salesforce, hubspot, pipedrive, mapping."
            )
        mapping = Path(item["mapping"]) if item.get("mapping") else None
        if (kind == "mapping") != (mapping is not None):
            raise ConfigError(f"{where}: a mapping file goes with kind mapping, and only with it.")
        if mapping is not None and not mapping.is_file():
            raise ConfigError(f"{where}: the mapping file {mapping} does not exist.")
        date_order = str(item.get("date_order", "mdy"))
        if date_order not in DATE_ORDERS:
            raise ConfigError(f"{where}: date_order must be mdy or dmy.")
        specs.append(
            SourceSpec(
                name, kind, Path(item["landing_dir"]), mapping, date_order,
                bool(item.get("full_export", False)),
            )
        )  # fmt: skip
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: every source needs its own name.")
    return tuple(specs)


def _alerts(data: dict[str, Any], path: Path) -> AlertSettings:
    values: dict[str, Any] = {}
    for name, value in _section(data, "alerts", AlertSettings, path, types=False).items():
        if name == "log":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}: alerts.log must be a file path.")
            values[name] = Path(value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{path}: alerts.{name} must be a non-negative number.")
        values[name] = int(value) if name == "delivery_attempts" else float(value)
    if values.get("delivery_attempts", 1) < 1:
        raise ConfigError(f"{path}: alerts.delivery_attempts must be at least 1.")
    if values.get("timeout_seconds", 1) <= 0:
        raise ConfigError(f"{path}: alerts.timeout_seconds must be above 0.")
    return AlertSettings(**values)


_FORECAST_UNITS = {"lookback_days": "days", "min_closed_deals": "deals", "follow_up_days": "days"}


def _forecast(data: dict[str, Any], path: Path) -> ForecastSettings:
    values: dict[str, int] = {}
    for name, value in _section(data, "forecast", ForecastSettings, path, types=False).items():
        # bool is an int in Python, and YAML reads `yes` as true: refuse it explicitly.
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"{path}: forecast.{name} must be a whole number of {_FORECAST_UNITS[name]}, "
                f"at least 1 (e.g. {name}: {getattr(ForecastSettings(), name)}), "
                f"not {value!r}."
            )
        values[name] = value
    return ForecastSettings(**values)


def _publish(data: dict[str, Any], path: Path) -> PublishSettings:
    section = _section(data, "publish", PublishSettings, path, types=False)
    if "postgres" not in section:
        return PublishSettings()
    raw = section["postgres"]
    if raw is None:
        raw = {}  # `postgres:` alone: every default
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: publish.postgres must be a mapping, e.g. "
            f"postgres: {{env: CRM_POSTGRES_URL, schema: marts}}."
        )
    if {"url", "dsn", "password", "conninfo"} & set(raw):
        # The value is not echoed: it may hold a password.
        raise ConfigError(
            f"{path}: publish.postgres takes no connection string or password: put the "
            f"connection string in an environment variable and name it with env "
            f"(e.g. env: CRM_POSTGRES_URL)."
        )
    values = _section({"publish.postgres": raw}, "publish.postgres", PostgresPublishSettings,
                      path, types=False)  # fmt: skip
    settings = PostgresPublishSettings(**{k: str(v) for k, v in values.items()})
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", settings.env):
        what = (
            "holds what looks like a connection string (not shown: it may hold a password)"
            if re.search(r"://|=|@", settings.env)
            else f"is {settings.env!r}"
        )
        raise ConfigError(
            f"{path}: publish.postgres.env names the environment variable that holds the "
            f"connection string (e.g. env: CRM_POSTGRES_URL), but {what}."
        )
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", settings.schema) or (
        settings.schema.startswith("pg_")
    ):
        raise ConfigError(
            f"{path}: publish.postgres.schema {settings.schema!r} must be a lower-case "
            f"PostgreSQL name (letters, digits, _; at most 63; not starting with pg_), "
            f"e.g. marts."
        )
    return PublishSettings(postgres=settings)


def _quality(data: dict[str, Any], path: Path) -> QualitySettings:
    section = _section(data, "quality", QualitySettings, path, types=False)
    values: dict[str, Any] = {}
    for name, value in section.items():
        if name == "severity":
            if not isinstance(value, dict) or any(
                str(v).lower() not in ("error", "warn") for v in value.values()
            ):
                raise ConfigError(
                    f"{path}: quality.severity maps rule names to error or warn "
                    f"(e.g. opportunities.close_date_not_before_created: warn)."
                )
            from ingestion.hygiene.rules import check_severities

            severities = {str(k): str(v).lower() for k, v in value.items()}
            # The landing-level checks are not Great Expectations rules.
            gx_rules = {k: v for k, v in severities.items() if k not in LANDING_RULES}
            check_severities(gx_rules)
            values[name] = severities
            continue
        if name == "gate_workers":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"{path}: quality.gate_workers is a number of processes, 1 or more "
                    f"(1 validates in the run's own process); got {value!r}."
                )
            values[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{path}: quality.{name} must be a non-negative number.")
        values[name] = float(value)
    settings = QualitySettings(**values)
    if settings.volume_min_ratio > settings.volume_max_ratio:
        raise ConfigError(f"{path}: quality.volume_min_ratio is above volume_max_ratio.")
    if settings.quarantine_max_share > 1:
        raise ConfigError(f"{path}: quality.quarantine_max_share is a share between 0 and 1.")
    return settings


_SIZE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}  # fmt: skip


def size_bytes(size: str) -> int | None:
    """A size as DuckDB and the config write it (``2.5GB``, ``512 MiB``) in bytes; None
    when it is not one."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", size.strip())
    return int(float(match[1]) * _SIZE_UNITS[match[2]]) if match else None


def _memory_limit(value: object, path: Path) -> str:
    text = str(value).strip()
    if size_bytes(text) is None:
        raise ConfigError(
            f"{path}: memory_limit {value!r} is not a size; write it like 4GB or 512MB."
        )
    return text


def _check_timezone(name: str, where: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{where}: unknown time zone {name!r} (use e.g. UTC).") from exc


def _section(
    data: dict[str, Any], key: str, cls: type, path: Path, *, types: bool = True
) -> dict[str, Any]:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {key} must be a mapping.")
    allowed = set(cls.__dataclass_fields__)
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: unknown {key} setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(allowed))}."
        )
    for name, value in section.items():
        if not types:
            break
        expected = type(getattr(cls(), name))
        if not isinstance(value, expected):
            raise ConfigError(f"{path}: {key}.{name} must be a {expected.__name__}, got {value!r}.")
    return section


def _stage_map(data: dict[str, Any], path: Path) -> StageMap:
    """``stages:`` replaces the canonical stage list; ``stage_labels:`` maps CRM labels."""
    stages = DEFAULT_STAGES
    if "stages" in data:
        raw = data["stages"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"{path}: stages must be a non-empty list.")
        parsed = []
        for i, item in enumerate(raw, start=1):
            where = f"{path}: stages[{i}]"
            if not isinstance(item, dict) or not {"stage", "stage_order", "category"} <= set(item):
                raise ConfigError(f"{where} needs stage, stage_order and category.")
            if item["category"] not in CATEGORIES:
                raise ConfigError(
                    f"{where}: category {item['category']!r} is not one of {', '.join(CATEGORIES)}."
                )
            try:
                parsed.append(
                    Stage(
                        str(item["stage"]),
                        int(item["stage_order"]),
                        str(item["category"]),
                        float(item.get("probability", 0.0)),
                    )
                )
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: {exc}.") from exc
        stages = tuple(parsed)
    names = {s.stage for s in stages}
    labels = data.get("stage_labels") or {}
    if not isinstance(labels, dict):
        raise ConfigError(f"{path}: stage_labels must map CRM labels to canonical stages.")
    for label, stage in labels.items():
        if stage not in names:
            raise ConfigError(
                f"{path}: stage_labels maps {label!r} to {stage!r}, which is not a stage; "
                f"use one of {', '.join(sorted(names))}."
            )
    return StageMap(stages=stages, labels={str(k): str(v) for k, v in labels.items()})
