"""Opening the warehouse, and the writer lock that keeps to one writer per warehouse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ingestion.errors import ConfigError, WarehouseLockedError
from ingestion.warehouse import WriterLock, connect

HOLD = """
import sys, time
from ingestion.warehouse import WriterLock
WriterLock(sys.argv[1], "run 42").acquire()
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def other_writer(tmp_path):
    """Another process holding the writer lock of tmp_path/w.duckdb until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "w.duckdb")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_writer_fails_fast_naming_the_holder(tmp_path, other_writer):
    with pytest.raises(WarehouseLockedError) as err:
        connect(tmp_path / "w.duckdb")
    message = str(err.value)
    assert f"is being written by run 42 (process {other_writer.pid}, since " in message
    assert "wait for that run to finish" in message


def test_a_dead_holder_leaves_no_stale_lock(tmp_path, other_writer):
    other_writer.kill()
    other_writer.wait()
    with WriterLock(tmp_path / "w.duckdb", "me"):
        connect(tmp_path / "w.duckdb").close()  # the holder's own connections may write


def test_waiting_for_the_lock(tmp_path, other_writer):
    waited = []
    with pytest.raises(WarehouseLockedError):
        WriterLock(tmp_path / "w.duckdb", "me").acquire(wait_seconds=1.5, on_wait=waited.append)
    assert len(waited) == 1 and waited[0].startswith("run 42 (process ")


def test_release_empties_the_lock_file(tmp_path):
    lock = WriterLock(tmp_path / "w.duckdb", "me").acquire()
    assert '"holder": "me"' in lock.path.read_text()
    lock.release()
    assert lock.path.read_text() == ""


def test_a_file_that_is_not_a_warehouse(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("hello\n")
    with pytest.raises(
        ConfigError, match=r"Cannot open the warehouse .*notes\.duckdb.*not a valid DuckDB"
    ):
        connect(path)
