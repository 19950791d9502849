"""Alerts: what an operator must hear about, the alert log, and delivery to the sinks.

Every alert is appended to the alert log (JSON lines, always on) with what happened to
its delivery. Delivery goes to each sink configured in the environment (see
``alert_sinks``), with retries and backoff. It never raises: a broken sink must not fail
the pipeline it reports on. The same failure (same key) is delivered to a sink again only
after ``alerts.repeat_after_hours``, so a failure that persists across sensor ticks or
daily runs does not flood anyone. Secrets from the environment are redacted from
everything written or sent.
"""

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from ingestion.config import PipelineConfig
from orchestration.lib.alert import Alert
from orchestration.lib.alert_sinks import DeliveryError, Sink, configured_sinks, secret_values

_LOG = logging.getLogger("crm_pipeline.alerts")


class Log(Protocol):
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


def send_alert(
    cfg: PipelineConfig,
    alert: Alert,
    *,
    log: Log | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Log the alert and deliver it to every configured sink; returns the log record."""
    log = log or _LOG
    env = os.environ if env is None else env
    secrets = secret_values(env)
    alert = _redacted(alert, secrets)
    settings = cfg.alerts
    record: dict[str, Any] = {**alert.as_dict(), "deliveries": []}
    sinks, problems = configured_sinks(env)
    for problem in problems:
        record["deliveries"].append({"sink": "configuration", "status": "failed", "error": problem})
        log.warning(f"an alert sink is misconfigured and gets no alerts: {problem}")
    try:
        with _delivery_state(cfg.alert_state) as state:
            now = datetime.now(UTC)
            window = timedelta(hours=settings.repeat_after_hours)
            # Deliveries older than the window no longer suppress anything.
            for key in list(state):
                state[key] = {
                    s: t for s, t in state[key].items() if now - datetime.fromisoformat(t) < window
                }
                if not state[key]:
                    del state[key]
            sent = state.setdefault(record["key"], {})
            for sink in sinks:
                last = sent.get(sink.name)
                if last:
                    record["deliveries"].append(
                        {"sink": sink.name, "status": "repeat", "last_sent": last}
                    )
                    continue
                outcome = _deliver(sink, alert, cfg, secrets, log)
                record["deliveries"].append(outcome)
                if outcome["status"] == "delivered":
                    sent[sink.name] = now.isoformat(timespec="seconds")
            if not sent:
                del state[record["key"]]
    except OSError as exc:
        # The state file only spares repeats; without it every sink still gets the alert.
        log.warning(f"alert delivery state {cfg.alert_state} unusable ({exc}); not deduplicated")
        done = {d["sink"] for d in record["deliveries"]}
        for sink in sinks:
            if sink.name not in done:
                record["deliveries"].append(_deliver(sink, alert, cfg, secrets, log))
    finally:
        try:
            _append(cfg.alert_log, record)
        except OSError as exc:
            log.warning(f"could not write the alert log {cfg.alert_log}: {exc}")
    return record


def _deliver(
    sink: Sink, alert: Alert, cfg: PipelineConfig, secrets: list[str], log: Log
) -> dict[str, Any]:
    settings = cfg.alerts
    attempts = settings.delivery_attempts
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            sink.send(alert, timeout=settings.timeout_seconds)
        except DeliveryError as exc:
            error, retryable = redact(str(exc), secrets), exc.retryable
        except Exception as exc:  # a sink bug must not fail the run it reports on
            error, retryable = redact(f"{type(exc).__name__}: {exc}", secrets), True
        else:
            log.info(f"alert '{alert.title}' delivered to {sink.describe()}")
            return {"sink": sink.name, "status": "delivered", "attempts": attempt}
        final = attempt == attempts or not retryable
        log.warning(
            f"alert delivery to {sink.describe()} failed (try {attempt} of {attempts}): {error}"
            + ("" if final else "; retrying")
        )
        if final:
            break
        time.sleep(settings.backoff_seconds * 2 ** (attempt - 1))
    return {"sink": sink.name, "status": "failed", "attempts": attempt, "error": error}


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _redacted(alert: Alert, secrets: list[str]) -> Alert:
    """The alert with every secret replaced, in every text field."""
    if not secrets:
        return alert
    changes: dict[str, Any] = {
        name: redact(value, secrets)
        for name, value in asdict(alert).items()
        if isinstance(value, str)
    }
    changes["examples"] = [redact(str(e), secrets) for e in alert.examples]
    return replace(alert, **changes)


@contextlib.contextmanager
def _delivery_state(path: Path) -> Iterator[dict[str, dict[str, str]]]:
    """The delivery times per alert key, read and written under an exclusive lock: the
    daemon's sensors, its runs and the command line may alert at the same moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except ValueError:
            state = {}  # a damaged state file only costs a repeated alert
        yield state
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
