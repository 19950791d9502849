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
