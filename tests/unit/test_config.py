"""The configuration file: defaults, overrides and the errors a user can make."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ingestion.config import PipelineConfig, load_config, parse_as_of
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
