"""What made a run fail, in the user's words: failing checks and step errors.

Dagster wraps a step's exception in its own errors (a resource or an op error, a
``Failure``); the error a user can act on is the innermost one of ours, so the chain of
causes is walked down to it. The command line prints these, the run-failure sensor and
the command line turn them into alerts.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestration.lib.alerts import Alert

USAGE_ERRORS = frozenset({"ConfigError", "LandingError"})
QUALITY_ERRORS = frozenset({"DataQualityError"})
_OURS = USAGE_ERRORS | QUALITY_ERRORS | {"WarehouseLockedError"}
_CHECK_FAILED = "DagsterAssetCheckFailedError"


@dataclass(frozen=True)
class FailedCheck:
    name: str  # <asset>:<check>
    severity: str  # ERROR | WARN
    description: str


@dataclass(frozen=True)
class StepError:
    step: str
    cls_name: str
    message: str


def failed_checks(events: Iterable[Any]) -> list[FailedCheck]:
    """Every failed asset check evaluation among a run's Dagster events."""
    found = []
    for event in events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                found.append(
                    FailedCheck(
                        f"{data.asset_key.to_user_string()}:{data.check_name}",
                        data.severity.value,
                        data.description or _dbt_failures(data.metadata or {}),
                    )
                )
    return found


def _dbt_failures(metadata: dict[str, Any]) -> str:
    """What a dbt test found (dagster-dbt gives no description, only its count)."""
    count = metadata.get("dagster_dbt/failed_row_count")
    value = getattr(count, "value", count)
    if value is None:
        return ""
    return f"dbt's test returned {value:,} failing row{'s' if value != 1 else ''}."


def step_errors(events: Iterable[Any]) -> list[StepError]:
    """The error of each failed step, except a blocking check's (reported as a check),
    and of a resource that could not start (e.g. the warehouse writer lock not free)."""
    found = []
    for event in events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":
            error = event.event_specific_data.error
        else:
            continue
        while error is not None and error.cls_name not in _OURS and error.cause is not None:
            error = error.cause
        if error is None or error.cls_name == _CHECK_FAILED:
            continue
        # SerializableErrorInfo prefixes the message with the exception's class.
        message = error.message.strip().split(f"{error.cls_name}: ", 1)[-1]
        found.append(StepError(event.step_key or "resources", error.cls_name, message))
    return found


def run_failure_alert(
    run_id: str, job_name: str, events: list[Any], run_message: str | None = None
) -> Alert | None:
    """The alert for a failed run, or None when only blocking checks failed (each check
    sent its own alert, with the rows and examples)."""
    errors = step_errors(events)
    if not errors and any(c.severity == "ERROR" for c in failed_checks(events)):
        return None
    if errors:
        first = errors[0]
        message = "\n".join(f"step {e.step}: {e.message}" for e in errors)
        key = f"run_failed:{job_name}:{first.step}:{first.cls_name}:{first.message[:200]}"
    else:
        message = run_message or "The run failed before any step reported an error."
        key = f"run_failed:{job_name}:{message[:200]}"
    return Alert(
        kind="run_failed",
        severity="error",
        title=f"Run of {job_name} failed",
        message=message,
        run_id=run_id,
        where=f"the run's logs in the Dagster UI (run {run_id}) or the command line's run log",
        key=key,
    )
