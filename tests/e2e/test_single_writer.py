"""One writer at a time: a second `crm-pipeline run` fails fast naming the run that holds
the warehouse; a Dagster run waits for an outside writer, and a transient lock (a client
holding the DuckDB file) is retried by the step retry policy."""

from __future__ import annotations

import _thread
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pipeline_helpers import query

from orchestration.defs import build_definitions
from orchestration.lib.pipeline import AS_OF_TAG, PipelineResource

FIXTURE = Path(__file__).parents[1] / "fixtures" / "skeleton"
CLI = str(Path(sys.executable).parent / "crm-pipeline")

pytestmark = pytest.mark.slow


def cli_run(landing: Path, warehouse: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [CLI, "run", "--source", "crm", "--landing", str(landing), "--warehouse", str(warehouse),
         "--as-of", "2026-03-15T00:00:00Z"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def reconciles(warehouse: Path) -> bool:
    (row,) = query(
        warehouse,
        "select sum(input_rows) = sum(loaded_rows + quarantined_rows + duplicate_rows "
        "+ rejected_rows) from quality.ingestion_log",
    )
    return row[0]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("writer") / "landing"
    shutil.copytree(FIXTURE, path)
    return path


def test_a_second_command_line_run_fails_fast(landing, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    lock = tmp_path / "warehouse.duckdb.writer.lock"
    first = cli_run(landing, warehouse)
    deadline = time.monotonic() + 120
    while not (lock.exists() and "Dagster run" in lock.read_text()):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run never took the writer lock"
        time.sleep(0.2)
    started = time.monotonic()
    second = cli_run(landing, warehouse)
    _, err = second.communicate(timeout=60)
    waited = time.monotonic() - started
    _, first_err = first.communicate(timeout=300)

    assert second.returncode == 3, err
    assert f"The warehouse {warehouse} is being written by Dagster run" in err
    assert "Traceback" not in err
    # Fails at once instead of queueing behind the first run (which takes far longer).
    assert waited < 30
    assert first.returncode == 0, first_err
    assert query(warehouse, "select count(*) from marts.fct_opportunities") == [(6,)]
    assert reconciles(warehouse)


HOLDER = """
import sys, time, duckdb
from ingestion.warehouse import WriterLock
path = sys.argv[1]
with WriterLock(path, "a test's other writer"):
    print("writer", flush=True)
    time.sleep(3)
con = duckdb.connect(path, read_only=True)  # an analyst's client, left open
print("reader", flush=True)
time.sleep(4)
con.close()
"""


def test_a_dagster_run_waits_for_the_writer_and_retries_a_held_file(landing, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()  # a warehouse file for the client to hold open
    config = tmp_path / "crm.yaml"
    config.write_text("retries: {max_retries: 3, delay_seconds: 2}\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(warehouse)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "writer"
    pipeline = PipelineResource(
        config_path=str(config), source="crm", landing_dir=str(landing), warehouse=str(warehouse)
    )
    job = build_definitions(pipeline).resolve_job_def("crm_pipeline")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        instance=instance,
        tags={AS_OF_TAG: "2026-03-15 00:00:00"},
        raise_on_error=False,
    )
    holder.wait(30)

    assert result.success
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("waiting for the warehouse" in m and "a test's other writer" in m for m in messages)
    # The analyst's read-only connection blocked the loader once or more; retried, it passed.
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried and {e.step_key for e in retried} <= {"raw_tables", "dbt_models"}
    assert reconciles(warehouse)


def dbt_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dbt"]


def step_waits_for_dbt() -> bool:
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if frame.f_code.co_name == "stream" and frame.f_code.co_filename.endswith("in_process.py"):
            return True
        frame = frame.f_back
    return False


def test_an_interrupted_dbt_build_stops_and_lets_go_of_the_warehouse(landing, tmp_path):
    """dbt builds inside the run's process: interrupted, its queries are cancelled, no dbt
    thread is left running, and the warehouse opens at once, with every mart whole."""
    warehouse = tmp_path / "warehouse.duckdb"
    config = tmp_path / "crm.yaml"
    # Dagster retries an interrupted step under a retry policy: none here, so the run ends.
    config.write_text("retries: {max_retries: 0}\n")
    pipeline = PipelineResource(
        config_path=str(config), source="crm", landing_dir=str(landing), warehouse=str(warehouse)
    )
    job = build_definitions(pipeline).resolve_job_def("crm_pipeline")
    instance = dg.DagsterInstance.ephemeral()
    first = job.execute_in_process(
        instance=instance, tags={AS_OF_TAG: "2026-03-15 00:00:00"}, raise_on_error=False
    )
    assert first.success
    dbt_log = warehouse.parent / "dbt_target" / "dbt.log"
    dbt_log.unlink()

    def interrupt_once_dbt_builds() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if dbt_log.exists() and "START sql" in dbt_log.read_text(errors="replace"):
                break
            time.sleep(0.02)
        # What Ctrl-C or a run's termination delivers, while the step waits for dbt's next
        # event: Dagster holds back a signal that comes while it handles an event (until
        # the step asks for the next one, outside the step's code) and Python's logging
        # swallows one that lands in a log call.
        while time.monotonic() < deadline and dbt_threads():
            if step_waits_for_dbt():
                _thread.interrupt_main()
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_once_dbt_builds)
    watcher.start()
    try:
        second = job.execute_in_process(
            instance=instance, tags={AS_OF_TAG: "2026-03-16 00:00:00"}, raise_on_error=False
        )
        assert not second.success
    except KeyboardInterrupt:
        pass
    watcher.join()

    assert not dbt_threads()
    results = json.loads((dbt_log.parent / "run_results.json").read_text())["results"]
    statuses = [r["status"] for r in results]
    # dbt stopped: its remaining nodes failed or were skipped instead of being built.
    assert statuses.count("success") + statuses.count("pass") < len(statuses)
    # Read-only, from this process: refused if dbt still had the file open.
    assert query(warehouse, "select count(*) from marts.fct_opportunities") == [(6,)]
