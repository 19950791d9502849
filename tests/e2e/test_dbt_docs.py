"""`make docs` (orchestration.lib.report.dbt_docs): dbt's documentation site with the
warehouse's catalog, beside the warehouse; a warehouse without marts is built first."""

from __future__ import annotations

import json

import pytest

from orchestration.lib.report.dbt_docs import main

pytestmark = pytest.mark.slow


def test_docs_build_the_warehouse_first_then_the_site_with_its_catalog(
    tmp_path, monkeypatch, capsys
):
    # Relative defaults (data/landing, data/warehouse.duckdb) land in this folder.
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "crm.yaml"
    config.write_text("synthetic: {opportunities: 300, batches: 1, seed: 3}\n")
    assert main(["--config", str(config)]) == 0
    captured = capsys.readouterr()
    # No warehouse at all: it says so, and builds one.
    assert "No warehouse at" in captured.err and "Building it first" in captured.err
    docs = tmp_path / "data" / "docs"
    assert sorted(p.name for p in docs.iterdir()) == ["catalog.json", "index.html", "manifest.json"]
    assert captured.out.endswith(f"dbt docs: {docs / 'index.html'}  (open it in a browser; "
                                 "the report links to it)\n")  # fmt: skip
    catalog = json.loads((docs / "catalog.json").read_text())
    columns = catalog["nodes"]["model.crm_pipeline.kpi_monthly"]["columns"]
    assert columns["win_rate"]["type"] == "DOUBLE"
    # The single-file page carries the catalog and manifest inline: no server needed.
    index = (docs / "index.html").read_text()
    assert "model.crm_pipeline.kpi_monthly" in index and "pipeline_velocity_per_day" in index
    # The run the docs needed wrote its report too, linking to the site.
    report = (tmp_path / "data" / "reports" / "latest.html").read_text()
    assert '<a href="../docs/index.html"' in report
    # A second build replaces the site in place, with nothing left over.
    assert main(["--config", str(config)]) == 0
    assert sorted(p.name for p in (tmp_path / "data").iterdir() if "docs" in p.name) == ["docs"]


def test_docs_of_a_blocked_warehouse_report_the_failure(tmp_path, capsys):
    landing = tmp_path / "landing"
    (landing / "b1").mkdir(parents=True)
    (landing / "b1" / "opportunities.csv").write_text(
        "opportunity_id,created_at,stage,amount\nO1,2026-03-02T00:00:00Z,Demo Booked,100\n"
    )
    config = tmp_path / "crm.yaml"
    config.write_text(f"source: crm\nlanding_dir: {landing}\n")
    warehouse = tmp_path / "w.duckdb"
    # The pipeline it runs first is blocked (an unmapped stage): its exit code, no site.
    assert main(["--config", str(config), "--warehouse", str(warehouse)]) == 1
    assert "blocked:" in capsys.readouterr().err
    assert not (tmp_path / "docs").exists()
