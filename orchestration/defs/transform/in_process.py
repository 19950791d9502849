"""`dbt build` inside the run's process, on either engine.

dbt's programmatic entry point (``dbtRunner``) runs the build on a thread of the process
that ingested, while the step streams its events to Dagster. Both engines gain:

- DuckDB: dagster-dbt has imported dbt-core into this process already, so a dbt CLI
  process would start a second interpreter and import dbt again before its first model
  (about 1.5–2 s of every run, whatever the data's size: docs/performance.md).
- Spark: dbt-spark's ``session`` method runs its SQL on ``SparkSession.builder.getOrCreate()``,
  so dbt gets the session the loader already has and a run starts one JVM instead of two.
  A dbt CLI process would start a second JVM, which has to wait for the first one to exit
  (the local metastore admits one) and then pays the JVM's start, the metastore's and a
  cold JIT again: about a minute of every Spark run on this machine (docs/spark.md).

The events are dagster-dbt's: each dbt event becomes the JSON record the dbt CLI would
have printed, and dagster-dbt turns it into the same Dagster outputs and check results as
for the CLI (``DbtCliInvocation.stream``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource

_DONE = object()
# The dbt events dagster-dbt turns into outputs and check results
# (DbtCoreCliEventMessage.is_result_event).
_RESULT_EVENTS = frozenset(
    {"LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult"}
)
# How often an interrupted DuckDB build is told again to stop: dbt goes on to the next
# node after a cancelled query, which has to be cancelled in its turn.
_CANCEL_INTERVAL_S = 0.05


class InProcessDbtInvocation:
    """One `dbt <args>` in this process, run in a thread while the step streams its
    events; ``is_successful``, ``get_error`` and ``stream`` as DbtCliInvocation's."""

    def __init__(
        self,
        dbt: DbtCliResource,
        args: Sequence[str],
        *,
        context: dg.AssetExecutionContext,
        translator: DagsterDbtTranslator,
        target_path: Path,
        engine: str,
    ) -> None:
        from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context

        # The selection of the assets this step materialises (all of them in a pipeline
        # run, a subset when a user picks some in the UI), as dbt.cli computes it.
        params = get_updated_cli_invocation_params_for_context(
            context=context, manifest={}, dagster_dbt_translator=translator
        )
        self._manifest = params.manifest
        self._translator = params.dagster_dbt_translator
        self._project = params.dbt_project
        self._context = context
        self._engine = engine
        self.target_path = target_path
        project_dir = params.dbt_project.project_dir if params.dbt_project else dbt.project_dir
        self.args = [
            *args,
            *params.selection_args,
            *(["--indirect-selection", params.indirect_selection]
              if params.indirect_selection else []),
            "--project-dir", str(project_dir),
            "--profiles-dir", str(dbt.profiles_dir or project_dir),
            "--target-path", str(target_path),
            "--log-path", str(target_path),
            "--no-send-anonymous-usage-stats",
            # dbt's lines go to the run's log (stdout), plain as the dbt CLI's events were.
            "--no-use-colors",
        ]  # fmt: skip
        self._events: queue.Queue[Any] = queue.Queue()
        self._result: Any = None
        self._errors: list[str] = []
        self._thread = threading.Thread(target=self._invoke, name="dbt", daemon=True)
        self._thread.start()

    def _invoke(self) -> None:
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_dict

        def forward(event: Any) -> None:
            # dagster-dbt makes Dagster events of nodes' results only; errors are reported.
            # The rest (about 2,000 debug events a build) would be converted for nothing.
            if event.info.name in _RESULT_EVENTS or event.info.level == "error":
                self._events.put(msg_to_dict(event))

        try:
            self._result = dbtRunner(callbacks=[forward]).invoke(self.args)
        except BaseException as exc:  # reported by get_error, not lost in the thread
            self._errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if self._engine == "duckdb":
                _release_duckdb_file()
            self._events.put(_DONE)

    def stream(self) -> Iterator[Any]:
        """The Dagster events of dbt's events, as they come."""
        from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

        while (raw := self._events.get()) is not _DONE:
            if raw.get("info", {}).get("level") == "error":
                self._errors.append(raw["info"].get("msg", ""))
            event = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
            yield from event.to_default_asset_events(
                manifest=self._manifest,
                dagster_dbt_translator=self._translator,
                context=self._context,
                target_path=self.target_path,
                project=self._project,
            )
        self._thread.join()

    def wait(self) -> None:
        """Let dbt finish (its thread cannot be killed); what it still sends is dropped."""
        while self._thread.is_alive() or not self._events.empty():
            if self._events.get() is _DONE:
                break
        self._thread.join()

    def stop(self) -> None:
        """End a build the step no longer waits for (an interrupt, an error while
        streaming), and return once dbt has let go of the warehouse.

        On DuckDB every running query is cancelled, as dbt does on Ctrl-C, until dbt has
        gone through its remaining nodes: each model is one transaction, so a cancelled
        one leaves its previous table in place. On Spark dbt is let finish: dbt-spark
        drops a table before it rebuilds it, so a cancelled job would leave a mart
        missing (docs/spark.md)."""
        from dbt.adapters.factory import get_adapter_by_type

        again: BaseException | None = None
        while self._thread.is_alive():
            try:
                if self._engine == "duckdb":
                    # No adapter yet, or already torn down: nothing to cancel this time.
                    with contextlib.suppress(Exception):
                        get_adapter_by_type("duckdb").cancel_open_connections()
                self._thread.join(_CANCEL_INTERVAL_S)
            except BaseException as exc:  # a second Ctrl-C must not leave dbt building
                again = again or exc
        self.wait()
        if again is not None:
            raise again

    def is_successful(self) -> bool:
        self.wait()
        return bool(self._result is not None and self._result.success and not self._errors)

    def get_error(self) -> Exception | None:
        if self.is_successful():
            return None
        exception = getattr(self._result, "exception", None)
        detail = "; ".join(m for m in [*self._errors, str(exception or "")] if m)
        engine = "Spark" if self._engine == "spark" else "DuckDB"
        return dg.Failure(
            f"dbt {' '.join(self.args[:1])} on {engine} failed: {detail or 'no message'}. "
            f"See the run's dbt log: {self.target_path / 'dbt.log'}"
        )


def _release_duckdb_file() -> None:
    """Close the DuckDB database dbt-duckdb keeps open after a build (its ``keep_open``
    default): the run's next steps open the same file read-only, which DuckDB refuses in
    a process that has it open otherwise. The next build in this process opens it again.
    tests/unit/test_definitions.py fails if dbt-duckdb renames the attribute."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        if environment is not None:
            environment.close()
