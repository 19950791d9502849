"""The configuration file: defaults, overrides and the errors a user can make."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ingestion.config import ForecastSettings, PipelineConfig, load_config, parse_as_of
from ingestion.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "crm.yaml"
    p.write_text(text)
    return p


def test_no_file_means_defaults():
    cfg = load_config(None)
    assert cfg == PipelineConfig()
    assert cfg.source == "synthetic"
    assert cfg.warehouse == Path("data/warehouse.duckdb")


def test_file_values_and_command_line_overrides(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "source: crm\nlanding_dir: exports\nschedule: {cron: '30 5 * * *', timezone: "
            "Europe/Paris}\nstage_labels: {'Demo Booked': meeting}\n",
        )
    )
    assert (cfg.source, cfg.landing_dir, cfg.schedule.cron) == (
        "crm",
        Path("exports"),
        "30 5 * * *",
    )
    assert cfg.stage_map.label_map()["demo booked"] == "meeting"
    assert cfg.quality.gate_workers is None  # one per core, decided at run time
    assert load_config(write(tmp_path, "quality: {gate_workers: 3}\n")).quality.gate_workers == 3
    cfg = cfg.with_overrides(landing_dir=Path("other"), source=None)
    assert cfg.alert_state == Path("data/logs/alerts.sent.json")
    assert (cfg.source, cfg.landing_dir) == ("crm", Path("other"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sourse: crm\n", "unknown setting(s) sourse"),
        ("source: salesforc\n", "unknown source 'salesforc'"),
        ("source_timezone: Mars/Olympus\n", "unknown time zone 'Mars/Olympus'"),
        ("synthetic: {opportunities: lots}\n", "synthetic.opportunities must be a int"),
        ("stage_labels: {Demo: demo_stage}\n", "maps 'Demo' to 'demo_stage', which is not a stage"),
        ("stages: [{stage: a, stage_order: 1, category: weird}]\n", "category 'weird'"),
        ("source: [unclosed\n", "crm.yaml:2:1: not valid YAML"),
        ("memory_limit: lots\n", "memory_limit 'lots' is not a size"),
        ("sensor: {interval_seconds: 0}\n", "sensor.interval_seconds must be a positive"),
        ("sensor: {settle: 5}\n", "unknown sensor setting(s) settle"),
        ("retries: {max_retries: -1}\n", "retries.max_retries must be a positive"),
        ("retries: {delay_seconds: soon}\n", "retries.delay_seconds must be a int"),
        ("alerts: {delivery_attempts: 0}\n", "alerts.delivery_attempts must be at least 1"),
        ("alerts: {timeout_seconds: 0}\n", "alerts.timeout_seconds must be above 0"),
        ("alerts: {repeat_after_hours: -1}\n", "alerts.repeat_after_hours must be a non-negative"),
        ("alerts: {webhook: 'https://x'}\n", "unknown alerts setting(s) webhook"),
        ("value_labels: {leads.stage: {a: b}}\n", "values can be mapped for activities"),
        ("value_labels: {leads.status: {Nurturing: warm}}\n", "maps 'Nurturing' to 'warm'"),
        ("sources: [{name: a, kind: salesforce}]\n", "needs name, kind and landing_dir"),
        ("sources: [{name: A, kind: crm, landing_dir: x}]\n", "must be lower case"),
        ("date_order: ymd\n", "date_order must be mdy or dmy"),
        ("source: mapping\n", "or mapping:FILE"),
        ("engine: postgres\n", "engine must be duckdb (one DuckDB file, the default) or spark"),
        ("spark: local\n", "spark must be a mapping"),
        ("spark: {masters: local}\n", "unknown spark setting(s) masters"),
        ("spark: {master: ''}\n", "spark.master must be a Spark master URL"),
        ("spark: {conf: {driver.memory: 8g}}\n", "names starting with spark."),
        ("spark: {conf: {spark.master: yarn}}\n", "not under spark.conf"),
        ("quality: {gate_workers: 0}\n", "quality.gate_workers is a number of processes"),
        ("quality: {gate_workers: 1.5}\n", "1 or more (1 validates in the run's own process)"),
    ],
)
def test_config_errors_say_what_and_where(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert message in str(err.value)
    assert "crm.yaml" in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_parse_as_of():
    assert parse_as_of("2026-11-26T06:00:00+02:00") == datetime(2026, 11, 26, 4)
    assert parse_as_of("2026-11-26T06:00:00Z") == datetime(2026, 11, 26, 6)
    assert parse_as_of("2026-11-26") == datetime(2026, 11, 26)
    with pytest.raises(ConfigError, match="not an ISO 8601 timestamp"):
        parse_as_of("yesterday")


def test_the_example_config_in_the_repo_is_valid():
    example = Path(__file__).parents[2] / "crm_pipeline.example.yaml"
    cfg = load_config(example)
    assert cfg.source == "synthetic"
    assert cfg.stage_map.label_map()["contract sent"] == "negotiation"
    assert cfg.forecast == ForecastSettings()  # the file shows the defaults


def test_automation_and_alert_settings(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "warehouse: /srv/crm/w.duckdb\n"
            "sensor: {interval_seconds: 15, settle_seconds: 0}\n"
            "retries: {max_retries: 0, delay_seconds: 5}\n"
            "alerts: {log: /var/log/crm/alerts.jsonl, repeat_after_hours: 6, "
            "delivery_attempts: 5, backoff_seconds: 0.5, timeout_seconds: 3}\n",
        )
    )
    assert (cfg.sensor.interval_seconds, cfg.sensor.settle_seconds) == (15, 0)
    assert (cfg.retries.max_retries, cfg.retries.delay_seconds) == (0, 5)
    a = cfg.alerts
    assert (a.repeat_after_hours, a.delivery_attempts, a.backoff_seconds, a.timeout_seconds) == (
        6.0,
        5,
        0.5,
        3.0,
    )
    # An absolute alert log stays where it is; the delivery state goes beside it.
    assert cfg.alert_log == Path("/var/log/crm/alerts.jsonl")
    assert cfg.alert_state == Path("/var/log/crm/alerts.sent.json")


def test_forecast_defaults(tmp_path):
    assert load_config(None).forecast == ForecastSettings(365, 20, 30)
    # A file without the section, and an empty `forecast:`, keep every default.
    assert load_config(write(tmp_path, "source: synthetic\n")).forecast == ForecastSettings(
        365, 20, 30
    )
    assert load_config(write(tmp_path, "forecast:\n")).forecast == ForecastSettings(365, 20, 30)


def test_forecast_values(tmp_path):
    cfg = load_config(
        write(tmp_path, "forecast: {lookback_days: 90, min_closed_deals: 1, follow_up_days: 14}\n")
    )
    assert cfg.forecast == ForecastSettings(lookback_days=90, min_closed_deals=1, follow_up_days=14)
    # One setting given: the other two keep their defaults.
    cfg = load_config(write(tmp_path, "forecast:\n  min_closed_deals: 5\n"))
    assert cfg.forecast == ForecastSettings(
        lookback_days=365, min_closed_deals=5, follow_up_days=30
    )


# What each setting counts and its default, as the error message names them.
FORECAST_HINTS = {
    "lookback_days": "days, at least 1 (e.g. lookback_days: 365)",
    "min_closed_deals": "deals, at least 1 (e.g. min_closed_deals: 20)",
    "follow_up_days": "days, at least 1 (e.g. follow_up_days: 30)",
}


@pytest.mark.parametrize(
    ("name", "yaml_value", "shown"),
    [
        # YAML reads `true` as a bool, which Python would otherwise take for the int 1.
        ("lookback_days", "true", "True"),
        ("lookback_days", "90.5", "90.5"),
        ("follow_up_days", "30.0", "30.0"),
        ("min_closed_deals", "'20'", "'20'"),
        ("min_closed_deals", "0", "0"),
        ("follow_up_days", "-7", "-7"),
    ],
)
def test_bad_forecast_values_say_what_where_and_what_to_write(tmp_path, name, yaml_value, shown):
    path = write(tmp_path, f"forecast:\n  {name}: {yaml_value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}: forecast.{name} must be a whole number of {FORECAST_HINTS[name]}, not {shown}."
    )


def test_forecast_section_shape_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "forecast: {lookback: 90}\n"))
    assert str(err.value) == (
        f"{tmp_path / 'crm.yaml'}: unknown forecast setting(s) lookback; "
        f"known: follow_up_days, lookback_days, min_closed_deals."
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "forecast: 30\n"))
    assert str(err.value) == f"{tmp_path / 'crm.yaml'}: forecast must be a mapping."


def test_a_bad_forecast_setting_exits_2_from_the_command_line(tmp_path, capsys):
    from orchestration.cli import main

    config = write(tmp_path, "forecast: {lookback_days: 0}\n")
    warehouse = tmp_path / "w.duckdb"
    code = main(["run", "--config", str(config), "--warehouse", str(warehouse)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"error: {config}: forecast.lookback_days must be a whole number of days, at least 1 "
        f"(e.g. lookback_days: 365), not 0.\n"
    )
    assert not warehouse.exists()  # refused before anything ran


def test_forecast_settings_reach_dbt(tmp_path):
    from orchestration.defs.transform.assets import dbt_vars

    cfg = load_config(
        write(tmp_path, "forecast: {lookback_days: 180, min_closed_deals: 8, follow_up_days: 45}\n")
    )
    got = dbt_vars(cfg)
    # as_of is not a var: it changes every run and a changed var costs a full parse.
    assert "as_of" not in got
    assert (
        got["forecast_lookback_days"],
        got["forecast_min_closed_deals"],
        got["forecast_follow_up_days"],
    ) == (180, 8, 45)


def test_engine_defaults_to_duckdb_and_spark_settings_are_read(tmp_path):
    cfg = load_config(None)
    assert cfg.engine == "duckdb"
    # Spark's tables default to a folder beside the warehouse file, so two warehouses on
    # one machine never share one.
    assert cfg.spark_warehouse_dir == str(Path("data/warehouse.spark").resolve())
    assert cfg.with_overrides(warehouse="/srv/a/w1.duckdb").spark_warehouse_dir == (
        "/srv/a/w1.spark"
    )
    cfg = load_config(
        write(
            tmp_path,
            "engine: spark\nwarehouse: /srv/w.duckdb\n"
            "spark: {master: 'local[2]', conf: {spark.driver.memory: 8g, "
            "spark.sql.adaptive.enabled: true, spark.sql.shuffle.partitions: 16}}\n",
        )
    )
    assert (cfg.engine, cfg.spark.master) == ("spark", "local[2]")
    # YAML's booleans and numbers reach Spark as the text Spark expects.
    assert cfg.spark.conf == {
        "spark.driver.memory": "8g",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.shuffle.partitions": "16",
    }
    assert cfg.spark_warehouse_dir == "/srv/w.spark"
    remote = load_config(write(tmp_path, "spark: {warehouse_dir: 's3a://bucket/crm'}\n"))
    assert remote.spark_warehouse_dir == "s3a://bucket/crm"
