"""Alert events. The alert log (JSON lines) is always written; delivery sinks build on it."""

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Alert:
    """One thing an operator must hear about, in words a human can act on."""

    kind: str  # check_failed | check_warning | run_failed | stale_data
    severity: str  # error | warn
    title: str
    message: str
    entity: str | None = None
    check: str | None = None
    rows: int | None = None
    examples: list[str] = field(default_factory=list)
    run_id: str | None = None
    where: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def append_alert_log(path: Path, alert: Alert) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(alert), ensure_ascii=False) + "\n")
