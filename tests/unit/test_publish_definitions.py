"""The publish assets in the code location: downstream of every mart, PostgreSQL only when
the config names it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration.defs import build_definitions
from orchestration.lib.pipeline import PipelineResource

MARTS_DIR = Path(__file__).parents[2] / "dbt_project" / "models" / "marts"


def test_the_serving_file_follows_every_mart_and_postgres_is_opt_in(tmp_path):
    models = {p.stem for p in MARTS_DIR.glob("*.sql")}
    graph = build_definitions(PipelineResource()).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert "publish/postgres" not in keys
    serving = graph.get(dg.AssetKey(["publish", "serving_file"]))
    # Every model file of dbt_project/models/marts, none missed and nothing else.
    assert {k.to_user_string() for k in serving.parent_keys} == {f"marts/{m}" for m in models}

    config = tmp_path / "crm.yaml"
    config.write_text("publish: {postgres: {env: BI_URL, schema: bi}}\n")
    graph = build_definitions(PipelineResource(config_path=str(config))).resolve_asset_graph()
    postgres = graph.get(dg.AssetKey(["publish", "postgres"]))
    assert {k.to_user_string() for k in postgres.parent_keys} == {
        *(f"marts/{m}" for m in models),
        "publish/serving_file",
    }
    job = build_definitions(PipelineResource(config_path=str(config))).resolve_job_def(
        "crm_pipeline"
    )
    assert {"publish__serving_file", "publish__postgres"} <= {n.name for n in job.nodes}
