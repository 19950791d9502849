"""Converted batches belong to one warehouse, one source and one landing directory.

An adapter's batches are converted into canonical CSVs beside the warehouse, and the
loader loads the batches of that folder. These tests keep warehouses, landings and old
cache folders side by side and count, by hand, the rows each warehouse gets.

Hand-made Salesforce exports (one Opportunity.csv per batch, ids namespaced on load):

| landing | batch | opportunities |
| --- | --- | --- |
| A | 2026-03-07T0600 | A1, A2, A3 |
| B | 2026-03-08T0600 | B1, B2 |
| C (a rejected export) | 2026-03-07T0600 | C1 with the unmapped stage "Mystery" |
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ingestion.config import PipelineConfig, SourceSpec
from ingestion.loader import IngestionReport
from ingestion.sources import converted_dir, ingest_sources
from ingestion.warehouse import connect

HEADER = "Id,Name,StageName,CreatedDate,Amount,CurrencyIsoCode,LastModifiedDate"
A_BATCH, B_BATCH = "2026-03-07T0600", "2026-03-08T0600"


def opportunity(opp_id: str, stage: str = "Prospecting") -> str:
    at = "2026-03-01T09:00:00.000Z"
    return f"{opp_id},Deal {opp_id},{stage},{at},100,USD,{at}"


def export(landing: Path, batch: str, *rows: str) -> Path:
    folder = landing / batch
    folder.mkdir(parents=True)
    (folder / "Opportunity.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return landing


def load(
    landing: Path, warehouse: Path, run_id: str = "r1", warnings: list[str] | None = None
) -> IngestionReport:
    """One run's ingestion of a Salesforce landing into a warehouse (no dbt); the run's
    warnings (the notes of the batches it converted) go to ``warnings``."""
    cfg = PipelineConfig(source="salesforce", landing_dir=landing, warehouse=warehouse)
    sink = [] if warnings is None else warnings
    con = connect(warehouse)
    try:
        return ingest_sources(con, cfg, run_id=run_id, log=lambda _: None, warn=sink.append)
    finally:
        con.close()


def opportunity_ids(warehouse: Path) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("SELECT opportunity_id FROM raw.opportunities ORDER BY 1").fetchall()
    finally:
        con.close()
    return [r[0].removeprefix("salesforce:") for r in rows]


def test_two_warehouses_in_one_folder_load_only_their_own_landing(tmp_path):
    a = export(tmp_path / "export_a", A_BATCH, opportunity("A1"), opportunity("A2"),
               opportunity("A3"))  # fmt: skip
    b = export(tmp_path / "export_b", B_BATCH, opportunity("B1"), opportunity("B2"))
    data = tmp_path / "data"  # both warehouses, so both conversion caches, in one folder
    assert load(a, data / "a.duckdb").batches == [A_BATCH]
    report = load(b, data / "b.duckdb")
    assert report.batches == [B_BATCH]
    assert opportunity_ids(data / "b.duckdb") == ["B1", "B2"]  # not 5: none of A's
    # And the other way round: A's next run does not pick up B's converted batch.
    assert load(a, data / "a.duckdb", run_id="r2").files == []
    assert opportunity_ids(data / "a.duckdb") == ["A1", "A2", "A3"]


def test_two_warehouses_with_the_same_batch_names_stay_apart(tmp_path):
    # The same batch name in both exports: a shared folder would hold one over the other.
    a = export(tmp_path / "export_a", A_BATCH, opportunity("A1"), opportunity("A2"))
    b = export(tmp_path / "export_b", A_BATCH, opportunity("B1"))
    data = tmp_path / "data"
    load(a, data / "a.duckdb")
    load(b, data / "b.duckdb")
    assert opportunity_ids(data / "a.duckdb") == ["A1", "A2"]
    assert opportunity_ids(data / "b.duckdb") == ["B1"]
    # Each conversion is still there for its own warehouse: nothing is converted again.
    warnings: list[str] = []
    assert load(a, data / "a.duckdb", run_id="r2", warnings=warnings).files == []
    assert warnings == []


def test_one_warehouse_fed_from_another_landing_does_not_load_the_first_ones(tmp_path):
    # Landing C's batch is rejected (an unmapped stage label): its converted copy stays
    # unpublished, and would be tried again by any run that loads the cache folder.
    c = export(tmp_path / "export_c", A_BATCH, opportunity("C1", stage="Mystery"))
    b = export(tmp_path / "export_b", B_BATCH, opportunity("B1"), opportunity("B2"))
    warehouse = tmp_path / "warehouse.duckdb"
    assert list(load(c, warehouse).rejected_batches) == [A_BATCH]
    report = load(b, warehouse, run_id="r2")
    assert report.batches == [B_BATCH]  # C's converted batch is not this run's input
    assert report.rejected_batches == {}
    assert opportunity_ids(warehouse) == ["B1", "B2"]


def test_a_converted_batch_whose_export_is_gone_is_not_loaded(tmp_path):
    landing = export(tmp_path / "export", A_BATCH, opportunity("C1", stage="Mystery"))
    warehouse = tmp_path / "warehouse.duckdb"
    assert list(load(landing, warehouse).rejected_batches) == [A_BATCH]
    # The user removes the bad export and lands a good one; the converted copy of the bad
    # one is still in the cache folder.
    (landing / A_BATCH / "Opportunity.csv").unlink()
    (landing / A_BATCH).rmdir()
    export(landing, B_BATCH, opportunity("B1"))
    report = load(landing, warehouse, run_id="r2")
    assert report.batches == [B_BATCH]
    assert report.rejected_batches == {}
    assert opportunity_ids(warehouse) == ["B1"]


def test_a_cache_folder_of_an_earlier_version_is_ignored(tmp_path):
    b = export(tmp_path / "export_b", B_BATCH, opportunity("B1"))
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    # The earlier layout, converted/<source>/<batch>/, holding another export's batch.
    old = tmp_path / "data" / "converted" / "salesforce" / A_BATCH
    old.mkdir(parents=True)
    (old / "opportunities.csv").write_text(
        "opportunity_id,created_at,stage\nsalesforce:OLD1,2026-03-01,Prospecting\n"
    )
    report = load(b, warehouse)
    assert report.batches == [B_BATCH]
    assert opportunity_ids(warehouse) == ["B1"]


def test_the_cache_folder_is_keyed_by_warehouse_source_and_landing(tmp_path):
    def folder(warehouse: str, name: str, landing: str) -> Path:
        spec = SourceSpec(name, "salesforce", tmp_path / landing)
        return converted_dir(tmp_path / warehouse, spec)

    base = folder("a.duckdb", "salesforce", "export_a")
    assert base.parent == tmp_path / "converted" / "a.duckdb"
    assert base.name.startswith("salesforce-")
    others = [
        folder("b.duckdb", "salesforce", "export_a"),
        folder("a.duckdb", "sfdc", "export_a"),
        folder("a.duckdb", "salesforce", "export_b"),
    ]
    assert len({base, *others}) == 4
    # The landing is known by its resolved path: another spelling of it is the same one.
    assert folder("a.duckdb", "salesforce", "x/../export_a") == base


def test_converting_the_same_export_again_writes_the_same_bytes(tmp_path):
    # Rows come out of DuckDB's parallel reads and joins in no fixed order; written sorted,
    # a batch converted again is byte-identical, so the loader sees files it already has.
    from ingestion.sources import convert_landing

    fixtures = Path(__file__).parents[1] / "fixtures"
    for kind in ("salesforce", "pipedrive"):
        spec = SourceSpec(kind, kind, fixtures / kind)
        first, second = tmp_path / kind / "1", tmp_path / kind / "2"
        convert_landing(spec, first)
        convert_landing(spec, second)
        files = sorted(p.relative_to(first) for p in first.rglob("*.csv"))
        assert files, kind
        for name in files:
            assert (first / name).read_bytes() == (second / name).read_bytes(), (kind, name)
