"""Symbolic links in a landing directory: one leading outside it is refused before anything
behind it is read, and the message names the link, never what it points at; one that
stays inside the landing directory is followed. For the canonical landing (``crm``) and
for an adapter's export (Salesforce), whose files are read by the export reader.

The target outside is a file whose first line looks like /etc/passwd's with a secret in
it: the first line is what a header error would quote, the rest what a row error would.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ingestion.config import PipelineConfig
from ingestion.errors import LandingError
from ingestion.landing.layout import batch_folders
from ingestion.loader import ingest
from ingestion.sources import ingest_sources
from ingestion.sources.export import ExportBatch
from ingestion.warehouse import connect

SECRET = "hunter2-Sekret"
PASSWD = f"root:x:0:0:{SECRET}:/root:/bin/bash\ndaemon:x:1:1:{SECRET}-row:/usr/sbin\n"
OPP = "opportunity_id,created_at,stage\n"
SF_OPP = "Id,Name,StageName,CreatedDate\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the landing, holding a secret file and a would-be batch folder."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_text(PASSWD, encoding="utf-8")
    (folder / "batch").mkdir()
    for name in ("opportunities.csv", "Opportunity.csv"):
        (folder / "batch" / name).write_text(PASSWD, encoding="utf-8")
    return folder


def link(path: Path, target: Path | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def ingest_crm(landing: Path, warehouse: Path) -> None:
    con = connect(warehouse)
    try:
        ingest(con, landing)
    finally:
        con.close()


def ingest_salesforce(landing: Path, warehouse: Path) -> list[str]:
    """Convert and load a Salesforce landing; returns the run's log and warnings."""
    cfg = PipelineConfig(source="salesforce", landing_dir=landing, warehouse=warehouse)
    said: list[str] = []
    con = connect(warehouse)
    try:
        ingest_sources(con, cfg, run_id="r1", log=said.append, warn=said.append)
    finally:
        con.close()
    return said


def refusal(load, landing: Path, warehouse: Path) -> str:
    """The message of the LandingError a load raises, checked to carry no secret."""
    with pytest.raises(LandingError) as err:
        load(landing, warehouse)
    message = str(err.value)
    assert SECRET not in message
    assert "root:x" not in message
    return message


def files_holding_secret(folder: Path) -> list[Path]:
    """Every file under ``folder`` (the warehouse's folder) that holds the secret."""
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes()
    ]


def raw_count(warehouse: Path, table: str = "opportunities") -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]
    finally:
        con.close()


# --- the canonical landing (crm) ---------------------------------------------------------


def test_crm_file_linked_outside_is_refused(tmp_path, landing, outside):
    path = link(landing / "b1" / "opportunities.csv", outside / "passwd")
    message = refusal(ingest_crm, landing, tmp_path / "w.duckdb")
    assert message.startswith(
        f"{path}: this file is a symbolic link that points outside the landing directory "
        f"{landing}; it is refused, and nothing it points at was read."
    )
    assert "Copy the export into the landing directory instead of linking to it" in message
    assert str(outside) not in message  # not even where it points


def test_crm_batch_folder_linked_outside_is_refused(tmp_path, landing, outside):
    path = link(landing / "b1", outside / "batch")
    message = refusal(ingest_crm, landing, tmp_path / "w.duckdb")
    assert message.startswith(f"{path}: this batch folder is a symbolic link that points outside")


def test_crm_file_at_the_top_linked_outside_is_refused(tmp_path, landing, outside):
    (landing / "b1").mkdir()
    path = link(landing / "opportunities.csv", outside / "passwd")
    message = refusal(ingest_crm, landing, tmp_path / "w.duckdb")
    assert message.startswith(f"{path}: this file is a symbolic link that points outside")


def test_crm_dangling_link_outside_is_refused(tmp_path, landing):
    path = link(landing / "b1" / "opportunities.csv", tmp_path / "gone.csv")
    message = refusal(ingest_crm, landing, tmp_path / "w.duckdb")
    assert message.startswith(f"{path}: this file is a symbolic link that points outside")


def test_crm_link_loop_is_refused(tmp_path, landing):
    path = link(landing / "b1" / "opportunities.csv", "opportunities.csv")
    message = refusal(ingest_crm, landing, tmp_path / "w.duckdb")
    assert message.startswith(f"{path}: a symbolic link that cannot be followed")


def test_crm_links_inside_the_landing_are_followed(tmp_path, landing):
    # "_" folders are not batches: a place inside the landing to link to.
    store = landing / "_store"
    (store / "b2").mkdir(parents=True)
    (store / "opportunities.csv").write_text(OPP + "o1,2026-01-01,prospecting\n")
    (store / "b2" / "opportunities.csv").write_text(
        OPP + "o2,2026-01-02,prospecting\no3,2026-01-03,prospecting\n"
    )
    link(landing / "b1" / "opportunities.csv", Path("..") / "_store" / "opportunities.csv")
    link(landing / "b2", store / "b2")  # absolute, through the landing's own path
    ingest_crm(landing, tmp_path / "w.duckdb")
    assert raw_count(tmp_path / "w.duckdb") == 3  # 1 in b1 + 2 in b2


def test_a_landing_reached_through_a_link_is_not_outside_itself(tmp_path):
    real = tmp_path / "real_landing"
    (real / "b1").mkdir(parents=True)
    (real / "b1" / "opportunities.csv").write_text(OPP + "o1,2026-01-01,prospecting\n")
    link(real / "b2" / "opportunities.csv", real / "b1" / "opportunities.csv")
    landing = link(tmp_path / "landing", real)
    ingest_crm(landing, tmp_path / "w.duckdb")
    # b2 holds the same row again: one row, and b2's file published as a duplicate.
    assert raw_count(tmp_path / "w.duckdb") == 1


# --- an adapter's export (Salesforce) ----------------------------------------------------


def test_salesforce_file_linked_outside_is_refused_before_conversion(tmp_path, outside):
    landing = tmp_path / "export"
    path = link(landing / "2026-03-07T0600" / "Opportunity.csv", outside / "passwd")
    data = tmp_path / "data"
    message = refusal(ingest_salesforce, landing, data / "w.duckdb")
    assert message.startswith(
        f"{path}: this file is a symbolic link that points outside the landing directory {landing}"
    )
    # Nothing of it was converted: no file beside the warehouse holds any of it.
    assert files_holding_secret(data) == []


def test_salesforce_batch_folder_linked_outside_is_refused(tmp_path, outside):
    landing = tmp_path / "export"
    path = link(landing / "2026-03-07T0600", outside / "batch")
    data = tmp_path / "data"
    message = refusal(ingest_salesforce, landing, data / "w.duckdb")
    assert message.startswith(f"{path}: this batch folder is a symbolic link that points outside")
    assert files_holding_secret(data) == []


def test_salesforce_file_linked_outside_that_the_adapter_ignores_is_refused(tmp_path, outside):
    # Not a Salesforce object file: the adapter would never open it, but a link to
    # outside in an export is refused wherever it is.
    landing = tmp_path / "export"
    (landing / "2026-03-07T0600").mkdir(parents=True)
    (landing / "2026-03-07T0600" / "Opportunity.csv").write_text(SF_OPP)
    path = link(landing / "2026-03-07T0600" / "notes.txt", outside / "passwd")
    message = refusal(ingest_salesforce, landing, tmp_path / "w.duckdb")
    assert message.startswith(f"{path}: this file is a symbolic link that points outside")


def test_salesforce_links_inside_the_export_are_followed(tmp_path):
    landing = tmp_path / "export"
    shared = landing / "_shared"
    shared.mkdir(parents=True)
    (shared / "Opportunity.csv").write_text(
        SF_OPP
        + "006A1,Alpha,Prospecting,2026-03-01T09:00:00.000Z\n"
        + "006A2,Beta,Qualification,2026-03-02T09:00:00.000Z\n"
    )
    link(landing / "2026-03-07T0600" / "Opportunity.csv", shared / "Opportunity.csv")
    said = ingest_salesforce(landing, tmp_path / "w.duckdb")
    assert raw_count(tmp_path / "w.duckdb") == 2
    assert any("2 loaded" in line for line in said)


def test_the_export_reader_refuses_a_path_outside_the_landing(tmp_path, outside):
    # Adapters read earlier batches' files too; every read goes through read_path.
    landing = tmp_path / "export"
    (landing / "2026-03-07T0600").mkdir(parents=True)
    batch = ExportBatch(duckdb.connect(), landing / "2026-03-07T0600")
    with pytest.raises(LandingError) as err:
        batch.read_path(outside / "passwd")
    assert "points outside the landing directory" in str(err.value)
    assert SECRET not in str(err.value)


def test_the_export_reader_quotes_no_content_of_a_broken_file(tmp_path):
    landing = tmp_path / "export"
    path = landing / "2026-03-07T0600" / "Opportunity.csv"
    path.parent.mkdir(parents=True)
    # A quoted value closed, then text: DuckDB cannot read it.
    path.write_text(f'Id,Name\n006A1,"{SECRET}"trailing\n')
    batch = ExportBatch(duckdb.connect(), path.parent)
    with pytest.raises(LandingError) as err:
        batch.read_path(path)
    assert str(err.value).startswith(f"{path}: cannot be read as a CSV export")
    assert SECRET not in str(err.value)


def test_listing_batches_refuses_a_batch_folder_outside(tmp_path, outside):
    # What the sensors, the settling check and the adapters list batches with.
    landing = tmp_path / "export"
    link(landing / "2026-03-07T0600", outside / "batch")
    with pytest.raises(LandingError, match="points outside the landing directory"):
        batch_folders(landing)
