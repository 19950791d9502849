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
    assert [p.returncode for p in processes] == [0, 0]


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
