"""Compact progress lines for runs launched from the command line."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, TextIO

import dagster as dg

_LOGGER = "crm_pipeline.progress"
_NOT_EXECUTED = re.compile(r"Dependencies for step (\S+) (?:failed|were not executed)")
# An info line that starts so reaches the terminal: work a run left out on purpose.
NOT_RERUN = "Not rerun:"


class ProgressHandler(logging.Handler):
    """Turns Dagster's event records into one short line per thing a user cares about."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.started = time.monotonic()
        self.passed_checks = 0

    def _print(self, text: str) -> None:
        self.stream.write(f"[{time.monotonic() - self.started:6.1f}s] {text}\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        meta: dict[str, Any] = getattr(record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        if event is None:
            # Plain log lines are chatty (dagster-dbt logs every command at INFO); only
            # warnings and errors reach the terminal.
            message = meta.get("orig_message") or ""
            skipped = _NOT_EXECUTED.match(message)
            if skipped:
                self._print(f"  – {skipped[1]} not run: an upstream step failed")
            elif message.startswith(NOT_RERUN) or (record.levelno >= logging.WARNING and message):
                self._print(f"  {message}")
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            self._print(f"▸ {event.step_key}")
        elif kind == "ASSET_MATERIALIZATION":
            rows = event.event_specific_data.materialization.metadata.get("dagster/row_count")
            suffix = f" ({rows.value:,} row{'' if rows.value == 1 else 's'})" if rows else ""
            self._print(f"  ✓ {event.asset_key.to_user_string()}{suffix}")
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if data.passed:
                self.passed_checks += 1
            else:
                name = f"{data.asset_key.to_user_string()}:{data.check_name}"
                self._print(f"  ✗ check {name} failed ({data.severity.value})")
        elif kind == "STEP_FAILURE":
            self._print(f"  ✗ step {event.step_key} failed")


def progress_logger(stream: TextIO = sys.stderr) -> tuple[dg.LoggerDefinition, ProgressHandler]:
    handler = ProgressHandler(stream)

    @dg.logger
    def _progress(_: dg.InitLoggerContext) -> logging.Logger:
        log = logging.getLogger(_LOGGER)
        log.handlers = [handler]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return log

    return _progress, handler
