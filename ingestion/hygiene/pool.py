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

A worker is a fresh interpreter running ``main`` here, talking pickles over two pipes of
its own, not a ``multiprocessing`` pool: that would re-run the caller's main module in every
worker (a script without a ``__main__`` guard would start workers recursively, and a
Dagster run worker would import Dagster twice more), and forking would copy the loader's
process mid-state (DuckDB's and Dagster's threads). Workers start on first use and stop
when the pool is closed (the end of ``ingest``), so no validation memory is held during
dbt.

The spare worker: a caller that knows a run is about to start (``crm-pipeline run``)
starts one worker at once (``start_spare_worker``), before the run imports Dagster. GX's
import (about 2.5 s of Python on one core) then happens in that process, on the core the
run's start leaves idle, instead of in the run's process, where a small load (a daily
batch) waited for it: a daily run's gate took about 2 s less (bench/RESULTS.md). The
loader adopts it for a load of at most ``SPARE_MAX_BYTES`` of files
(``ValidationPool.adopt_spare``); a larger load, or a run with nothing to load, stops it
unused and validates as before.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import itertools
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ingestion.hygiene.frame import arrow_backed
from ingestion.hygiene.gx import validate_batch

if TYPE_CHECKING:
    from ingestion.hygiene.rules import Severity

# More workers than cores only adds memory: each holds a part and GX's working copies.
MAX_WORKERS = 4
# The largest load (bytes of landing files) validated on the spare worker: a daily batch
# of a CRM of several million deals (5 MB at 1M). Past that, sending every part to the
# worker cost more than GX's import: a 198 MB first load (100k deals) took 1.5 s longer
# there than in the run's process (bench/RESULTS.md).
SPARE_MAX_BYTES = 32 * 2**20


def default_workers() -> int:
    """One worker per core this process may use but the first, at most ``MAX_WORKERS``
    (1: validate in the run's own process). The loader's DuckDB work (reading the files,
    the candidates' joins, reading the parts) keeps about one core busy during a first
    load: on 2 cores, two workers left the 1M first load's ingestion at 87 s, as in one
    process, with 0.7 GiB more memory (bench/RESULTS.md)."""
    # sched_getaffinity honours a container's or taskset's CPU set; macOS lacks it.
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return max(1, min(cores - 1, MAX_WORKERS))


class ValidationPool:
    """``workers`` processes validating frame parts; with 1, parts are validated in
    this process (no worker is started)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._jobs: queue.SimpleQueue[tuple[Future[Any], bytes] | None] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        # Called once, as the workers start (the loader makes room for them in DuckDB).
        self.on_start: Callable[[], object] | None = None
        self.started = False

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def adopt_spare(self, load_bytes: int) -> bool:
        """Validate on the spare worker, if one was started, when the load (``load_bytes``
        of files) is small enough; otherwise stop the spare. True when adopted: GX is then
        never imported in this process."""
        spare = _take_spare()
        if spare is None:
            return False
        if load_bytes > SPARE_MAX_BYTES:
            spare.discard()
            return False
        self._jobs, self._workers = spare.jobs, [spare.worker]
        return True

    def validate(
        self,
        jobs: Iterable[tuple[str, Any]],
        *,
        labels: Collection[str],
        severities: Mapping[str, Severity] | None,
        by_file: bool = False,
    ) -> list[Any]:
        """``validate_batch``'s result for each (entity, Arrow table) of ``jobs``, in
        order. ``jobs`` is read lazily, so memory stays bounded whatever the batch: while
        every worker validates a part, one more waits its turn and the next one is read.
        A single part, or a pool of one, is validated in this process, the next part
        read while this one is validated (DuckDB and Arrow release the GIL that GX
        holds, so the two overlap on two cores)."""
        options = {"labels": set(labels), "severities": dict(severities or {}), "by_file": by_file}
        jobs = iter(jobs)
        first = list(itertools.islice(jobs, 2))
        if not self._workers and (not self.parallel or len(first) < 2):
            # Closed before returning, also on an error: the read ahead is then finished,
            # and the caller may close ``jobs`` (the loader's stream of parts).
            with contextlib.closing(_read_ahead(itertools.chain(first, jobs))) as frames:
                return [validate_batch(entity, frame, **options) for entity, frame in frames]
        jobs = itertools.chain(first, jobs)
        self._start()
        results: list[Future[Any]] = []
        in_flight: deque[Future[Any]] = deque()
        for entity, table in jobs:
            future: Future[Any] = Future()
            self._jobs.put((future, pickle.dumps((entity, table, options), protocol=5)))
            del table
            results.append(future)
            in_flight.append(future)
            while len(in_flight) > len(self._workers):
                # Surfaces a worker's error early instead of after reading every part.
                in_flight.popleft().result()
        return [f.result() for f in results]

    def _start(self) -> None:
        if not self._workers:
            if self.on_start is not None and not self.started:
                self.on_start()
            self.started = True
            self._workers = [_Worker(self._jobs) for _ in range(self.workers)]

    def close(self) -> None:
        """Cancel what is queued, let the workers finish their part, stop them."""
        if not self._workers:
            return
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.stop()
        self._workers = []

    def __enter__(self) -> ValidationPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Worker:
    """One worker process and the thread in this process that feeds it jobs."""

    def __init__(self, jobs: queue.SimpleQueue[tuple[Future[Any], bytes] | None]) -> None:
        to_child, requests = os.pipe()
        replies, from_child = os.pipe()
        # The worker imports this very code, whatever its current directory holds (with
        # ``-m`` that would come first on its path).
        root = str(Path(__file__).resolve().parents[2])
        # The collector is off until GX is imported (``_serve``).
        boot = (
            f"import gc; gc.disable(); import sys; sys.path.insert(0, {root!r}); "
            f"from ingestion.hygiene.pool import main; main()"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", boot, str(to_child), str(from_child)],
            pass_fds=(to_child, from_child),
            stdin=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._send: IO[bytes] = os.fdopen(requests, "wb")
        self._receive: IO[bytes] = os.fdopen(replies, "rb")
        self._thread = threading.Thread(target=self._feed, args=(jobs,), daemon=True)
        self._thread.start()

    def _feed(self, jobs: queue.SimpleQueue[tuple[Future[Any], bytes] | None]) -> None:
        while (job := jobs.get()) is not None:
            future, payload = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self._send.write(payload)
                self._send.flush()
                ok, value = pickle.load(self._receive)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                error = self._died(exc)
                future.set_exception(error)
                # Every job this thread takes from now on fails the same way, so that no
                # caller waits forever on a part no worker will take.
                while (job := jobs.get()) is not None:
                    if job[0].set_running_or_notify_cancel():
                        job[0].set_exception(error)
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _died(self, exc: BaseException) -> Exception:
        from ingestion.hygiene.rules import HygieneError

        try:
            code: int | None = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        return HygieneError(
            f"a hygiene gate worker process stopped (exit code {code}, {type(exc).__name__}) "
            f"while validating the batch's rows; nothing was published. Its own error, if it "
            f"printed one, is in the log above. If the machine ran out of memory, free some "
            f"and run again; with quality.gate_workers: 1, a large batch is validated in the "
            f"run's own process."
        )

    def stop(self) -> None:
        """After the job queue's end marker: wait for the reply to the job the worker has
        (if any), then end it. Nothing is lost by ending it: every reply it owes is in,
        and letting it exit on its own would mean waiting for its interpreter's shutdown
        (most of a second with GX and pandas loaded) or, for a spare that got no job, for
        the end of its GX import."""
        self._thread.join()
        for stream in (self._send, self._receive):
            with contextlib.suppress(OSError):
                stream.close()
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()


class _Spare:
    """A worker started before any pool, with the job queue its feeding thread reads."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Future[Any], bytes] | None] = queue.SimpleQueue()
        self.worker = _Worker(self.jobs)

    def discard(self) -> None:
        self.jobs.put(None)
        self.worker.stop()


_spare: _Spare | None = None


def start_spare_worker() -> None:
    """Start the spare worker (see the module's docstring); the next ``ingest`` adopts
    it or stops it, and it is stopped when the process exits if nothing did."""
    global _spare
    if _spare is None:
        _spare = _Spare()


def _take_spare() -> _Spare | None:
    """The spare worker, which nothing else can take after this."""
    global _spare
    spare, _spare = _spare, None
    return spare


@atexit.register
def discard_spare_worker() -> None:
    """Stop the spare worker if no pool adopted it."""
    spare = _take_spare()
    if spare is not None:
        spare.discard()


def _read_ahead(jobs: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Each job's table as the frame ``validate_batch`` reads, the next one read and
    converted on a thread while the caller validates this one."""

    def next_frame() -> tuple[str, Any] | None:
        job = next(jobs, None)
        return None if job is None else (job[0], arrow_backed(job[1]))

    with ThreadPoolExecutor(1) as reader:
        ahead = reader.submit(next_frame)
        while (job := ahead.result()) is not None:
            ahead = reader.submit(next_frame)
            yield job
            del job


def _validate_table(entity: str, table: Any, **options: Any) -> Any:
    return validate_batch(entity, arrow_backed(table), **options)


def _serve(requests_fd: int, replies_fd: int) -> None:
    """A worker's loop: one (entity, Arrow table, options) in, (ok, result or error) out,
    until the pool closes its end."""
    from ingestion.hygiene.gx import _gx

    # GX's import and context, while the loader reads the first part; the collector is
    # off since the worker's boot (its passes would only walk the new modules' objects
    # again and again: 0.7 of a worker's 3.9 s start), then those objects are frozen out
    # of its way.
    _gx()
    gc.freeze()
    gc.enable()
    with os.fdopen(requests_fd, "rb") as requests, os.fdopen(replies_fd, "wb") as replies:
        while True:
            try:
                entity, table, options = pickle.load(requests)
            except EOFError:
                return
            try:
                reply = pickle.dumps((True, _validate_table(entity, table, **options)), 5)
            except Exception as exc:  # the loader raises it as validation's own error
                try:
                    reply = pickle.dumps((False, exc), 5)
                except Exception:
                    reply = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")), 5)
            del table
            replies.write(reply)
            replies.flush()


def main() -> None:
    """A worker process's entry point: ``_serve`` on the two pipes named in argv."""
    try:
        _serve(int(sys.argv[1]), int(sys.argv[2]))
    except KeyboardInterrupt:
        # The run was interrupted (the whole process group got the signal): the loader
        # reports it; a worker's traceback would only add noise.
        sys.exit(130)
