"""The hygiene gate on several processes: ``ValidationPool`` validates the parts of a
large batch (``ingestion.loader``'s frame parts, Arrow tables) on worker processes.

Why processes: Great Expectations' pandas engine is Python holding the GIL, so the gate
of a first load ran on one core (about 330k rows/s; 60 s of a 1M-opportunity first
load, bench/RESULTS.md) while the other one waited. Each worker imports GX once and
validates whole parts (every row of a key sits in one part, so each part is judged on
its own, as ``merge_outcomes`` expects); the loader's process meanwhile reads the next
parts out of DuckDB, which releases the GIL. Results come back in submission order, so
the merged outcomes (examples, row order) are the same as validating the parts one
after the other in one process.

Workers are started with ``spawn``, never ``fork``: the loader's process holds DuckDB's
threads and, in a Dagster run, the run's own threads, which a fork would copy mid-state.
They start on first use and stop when the pool is closed (at the end of ``ingest``), so
an idle run holds no validation memory during dbt.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingestion.hygiene.rules import Severity

# More workers than cores only adds memory: each holds a part and GX's working copies.
MAX_WORKERS = 4


def default_workers() -> int:
    """One worker per core, at most ``MAX_WORKERS``."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


class ValidationPool:
    """``workers`` processes validating frame parts; with 1, parts are validated in
    this process (no worker is started)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def validate(
        self,
        jobs: Iterable[tuple[str, Any]],
        *,
        labels: Collection[str],
        severities: Mapping[str, Severity] | None,
        by_file: bool = False,
    ) -> list[Any]:
        """``validate_batch``'s result for each (entity, Arrow table) of ``jobs``, in
        order. ``jobs`` is read lazily: while every worker validates a part, one more
        waits its turn and the next one is read, which bounds memory whatever the batch."""
        options = {"labels": set(labels), "severities": dict(severities or {}), "by_file": by_file}
        if not self.parallel:
            return [_validate_table(entity, table, **options) for entity, table in jobs]
        executor = self._start()
        results: list[Future[Any]] = []
        in_flight: deque[Future[Any]] = deque()
        for entity, table in jobs:
            results.append(executor.submit(_validate_table, entity, table, **options))
            in_flight.append(results[-1])
            del table
            while len(in_flight) > self.workers:
                # Surfaces a worker's error early instead of after reading every part.
                in_flight.popleft().result()
        return [f.result() for f in results]

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_up,
            )
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> ValidationPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _warm_up() -> None:
    """Import GX and build its context as the worker starts, while the loader's process
    is still reading the first part."""
    from ingestion.hygiene.gx import _gx

    _gx()


def _validate_table(entity: str, table: Any, **options: Any) -> Any:
    from ingestion.hygiene.frame import arrow_backed
    from ingestion.hygiene.gx import validate_batch

    return validate_batch(entity, arrow_backed(table), **options)
