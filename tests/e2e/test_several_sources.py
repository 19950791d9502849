"""Two CRMs into one warehouse: the Salesforce and HubSpot fixtures, declared under
`sources:` in the config. Each adapter's own end-to-end test checks its values; this one
checks that they coexist: ids namespaced, _source on every row, nothing merged across."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import query

from orchestration.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures"

pytestmark = pytest.mark.slow


def test_salesforce_and_hubspot_load_into_one_warehouse(tmp_path, capsys):
    config = tmp_path / "crm.yaml"
    config.write_text(
        "sources:\n"
        f"  - {{name: sfdc, kind: salesforce, landing_dir: {FIXTURES / 'salesforce'}}}\n"
        f"  - {{name: hs, kind: hubspot, landing_dir: {FIXTURES / 'hubspot'}}}\n"
    )
    warehouse = tmp_path / "warehouse.duckdb"
    code = main(
        ["run", "--config", str(config), "--warehouse", str(warehouse),
         "--as-of", "2026-03-15T00:00:00Z"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "UTC (sources sfdc (salesforce), hs (hubspot))" in err.splitlines()[0]
    # Each fixture has 8 deals (see test_source_salesforce / test_source_hubspot).
    assert query(
        warehouse,
        "select _source, count(*), count(*) filter (where starts_with(opportunity_id, "
        "_source || ':')) from raw.opportunities group by 1 order by 1",
    ) == [("hs", 8, 8), ("sfdc", 8, 8)]
    assert query(
        warehouse,
        "select split_part(opportunity_id, ':', 1), count(*) from marts.fct_opportunities "
        "group by 1 order by 1",
    ) == [("hs", 8), ("sfdc", 8)]
    # Owners resolve within their own source only.
    assert query(
        warehouse,
        "select count(*) from raw.opportunities o join raw.users u on o.owner_id = u.user_id "
        "where split_part(o.opportunity_id, ':', 1) <> split_part(u.user_id, ':', 1)",
    ) == [(0,)]
    # Both adapters' stage labels are mapped at once.
    labels = {r[0] for r in query(warehouse, "select source_label from raw.stage_map")}
    assert {"closed won", "contractsent", "needs analysis"} <= labels
