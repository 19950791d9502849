"""Two warehouses kept in one folder, each fed a Salesforce export of its own through
`crm-pipeline run`: each loads exactly the batches of its own landing.

Export A is the fixture tests/fixtures/salesforce (batches 2026-03-07T0600 and
2026-03-14T0600: 8 opportunities, Opp1 … Opp8). Export B is the fixture's first batch
under another name, 2026-03-10T0600, with every opportunity id's "Opp" made "Bpp": 6
opportunities, Bpp1 … Bpp6 (counted off its Opportunity.csv). Converted batches are
cached beside the warehouses, so both warehouses' caches share one folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pipeline_helpers import query, run_pipeline

FIXTURE = Path(__file__).parents[1] / "fixtures" / "salesforce"
AS_OF = "2026-03-15T00:00:00Z"

pytestmark = pytest.mark.slow


def export_b(folder: Path) -> Path:
    """The fixture's first batch as another export: batch renamed, opportunity ids too."""
    batch = folder / "2026-03-10T0600"
    shutil.copytree(FIXTURE / "2026-03-07T0600", batch)
    for path in batch.iterdir():
        path.write_text(path.read_text(encoding="utf-8").replace("001Opp", "001Bpp"))
    return folder


def opportunities(warehouse: Path) -> list[tuple[str, int]]:
    """(the id's three letters, how many) in raw.opportunities."""
    return query(
        warehouse,
        "select substr(opportunity_id, 23, 3), count(*) from raw.opportunities "
        "group by 1 order by 1",
    )


def test_two_warehouses_in_one_folder_each_load_their_own_export(tmp_path, capsys):
    a = tmp_path / "export_a"
    shutil.copytree(FIXTURE, a)
    b = export_b(tmp_path / "export_b")
    data = tmp_path / "data"
    assert run_pipeline(a, data / "a.duckdb", AS_OF, source="salesforce") == 0
    assert run_pipeline(b, data / "b.duckdb", AS_OF, source="salesforce") == 0, (
        capsys.readouterr().err
    )
    # Batch 1 of the fixture holds 6 deals (Opp1-Opp6), batch 2 adds Opp7 and Opp8.
    assert opportunities(data / "a.duckdb") == [("Opp", 8)]
    assert opportunities(data / "b.duckdb") == [("Bpp", 6)]  # not 14: none of A's
    assert query(data / "b.duckdb", "select distinct _batch_id from raw.opportunities") == [
        ("2026-03-10T0600",)
    ]
