"""The gate's worker processes (ingestion.hygiene.pool): errors come back as they are
raised, a dead worker is a clear error, and closing stops every worker. What the workers
judge is compared with one process in tests/unit/test_loader.py."""

from __future__ import annotations

from concurrent.futures import Future

import pyarrow as pa
import pytest

from ingestion.hygiene.pool import ValidationPool
from ingestion.hygiene.rules import HygieneError

NO_LINEAGE = pa.table({"opportunity_id": ["o1"]})


def test_a_workers_error_is_raised_here_as_it_was_raised_there():
    # Two parts each time: a single part is validated in this process.
    with ValidationPool(2) as pool:
        with pytest.raises(HygieneError, match="the opportunities frame has no _source_row"):
            pool.validate([("opportunities", NO_LINEAGE)] * 2, labels={"x"}, severities=None)
        # The workers are still there for the next batch.
        with pytest.raises(HygieneError, match="the leads frame has no _source_row"):
            pool.validate([("leads", NO_LINEAGE)] * 2, labels={"x"}, severities=None)
        processes = [w.process for w in pool._workers]
        assert [p.poll() for p in processes] == [None, None]
    # Closing ends them (every reply they owed was in) and reaps them.
    assert all(p.returncode is not None for p in processes)


def test_a_worker_that_dies_is_a_clear_error_not_a_hang():
    pool = ValidationPool(2)
    pool._start()
    for worker in pool._workers:
        worker.process.kill()
    with pytest.raises(HygieneError) as err:
        pool.validate([("opportunities", NO_LINEAGE)] * 3, labels={"x"}, severities=None)
    # Parts queued after both died fail too, instead of waiting for a worker.
    late: Future = Future()
    pool._jobs.put((late, b""))
    with pytest.raises(HygieneError):
        late.result(timeout=30)
    message = str(err.value)
    assert "a hygiene gate worker process stopped (exit code -9" in message
    assert "nothing was published" in message and "quality.gate_workers: 1" in message
    pool.close()


def test_one_worker_means_no_process():
    with ValidationPool(1) as pool:
        with pytest.raises(HygieneError, match="has no _source_row"):
            pool.validate([("opportunities", NO_LINEAGE)], labels={"x"}, severities=None)
        assert not pool.started and pool._workers == []


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 1), (3, 2), (5, 4), (16, 4)])
def test_the_default_leaves_one_core_to_the_loader(monkeypatch, cores, workers):
    import os

    from ingestion.hygiene.pool import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert default_workers() == workers
    # Where the OS has no CPU affinity (macOS): the number of CPUs.
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert default_workers() == workers


def _spare_process():
    from ingestion.hygiene import pool as pool_module

    assert pool_module._spare is not None, "no spare worker was started"
    return pool_module._spare.worker.process


def test_a_small_load_is_validated_on_the_spare_worker(monkeypatch):
    from ingestion.hygiene import pool as pool_module

    pool_module.start_spare_worker()
    process = _spare_process()

    def not_here(*_args, **_kwargs):
        raise AssertionError("validated in the test's own process, not on the spare")

    monkeypatch.setattr(pool_module, "validate_batch", not_here)
    with ValidationPool(1) as pool:
        assert pool.adopt_spare(1_000)
        assert pool_module._spare is None  # taken: the next ingest starts none
        # One part: without the spare it would be validated here (test_one_worker_...).
        with pytest.raises(HygieneError, match="the opportunities frame has no _source_row"):
            pool.validate([("opportunities", NO_LINEAGE)], labels={"x"}, severities=None)
        assert process.poll() is None  # still serving
    assert process.poll() is not None  # closed with the pool


def test_a_load_too_large_for_the_spare_stops_it_and_is_validated_here():
    from ingestion.hygiene import pool as pool_module

    pool_module.start_spare_worker()
    process = _spare_process()
    with ValidationPool(1) as pool:
        assert not pool.adopt_spare(pool_module.SPARE_MAX_BYTES + 1)
        assert process.poll() is not None and pool_module._spare is None
        with pytest.raises(HygieneError, match="has no _source_row"):
            pool.validate([("opportunities", NO_LINEAGE)], labels={"x"}, severities=None)
        assert pool._workers == []


def test_a_spare_that_gets_no_job_is_stopped_without_waiting_for_its_gx_import():
    from ingestion.hygiene import pool as pool_module

    pool_module.start_spare_worker()
    process = _spare_process()
    pool = ValidationPool(1)
    assert pool.adopt_spare(0)
    pool.close()  # straight away: the worker is still importing GX
    # Ended by the pool, not by its own exit after the import.
    assert process.returncode == -9


def test_without_a_spare_nothing_is_adopted():
    from ingestion.hygiene import pool as pool_module

    pool_module.discard_spare_worker()
    with ValidationPool(1) as pool:
        assert not pool.adopt_spare(1_000)
        assert pool._workers == []
