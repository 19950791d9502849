"""The adapter framework around the adapters: loading every source of a config."""

from __future__ import annotations

import os
import time

from ingestion.config import PipelineConfig
from ingestion.sources import ingest_sources
from ingestion.warehouse import connect

OPP = "opportunity_id,created_at,stage\n"


def write_batch(landing, name, rows, age_seconds):
    folder = landing / name
    folder.mkdir(parents=True)
    path = folder / "opportunities.csv"
    path.write_text(OPP + rows)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))


def test_a_scheduled_run_leaves_a_batch_still_being_written(tmp_path):
    landing = tmp_path / "landing"
    write_batch(landing, "2026-11-25T0600", "o1,2026-11-25,prospecting\n", age_seconds=3600)
    write_batch(landing, "2026-11-26T0600", "o2,2026-11-26,prospecting\n", age_seconds=5)
    write_batch(landing, "2026-11-27T0600", "o3,2026-11-27,prospecting\n", age_seconds=3600)
    cfg = PipelineConfig(source="crm", landing_dir=landing, warehouse=tmp_path / "w.duckdb")
    warnings = []
    con = connect(cfg.warehouse)
    try:
        ingest_sources(con, cfg, run_id="r1", settle_seconds=60, log=lambda _: None,
                       warn=warnings.append)  # fmt: skip
        # The 11-27 batch is complete, but it sorts after the one still being written.
        assert con.execute("select opportunity_id from raw.opportunities").fetchall() == [("o1",)]
        assert warnings == [
            "crm: left for a later run, still being written: 2026-11-26T0600, 2026-11-27T0600"
        ]
        # Without settling (the command line, the sensor's runs) everything is loaded.
        ingest_sources(con, cfg, run_id="r2", log=lambda _: None, warn=warnings.append)
        assert con.execute("select count(*) from raw.opportunities").fetchall() == [(3,)]
    finally:
        con.close()
