"""One alert: what an operator must hear about, in words a human can act on.

Its own module so that the alert log and delivery (``alerts``) and the sinks
(``alert_sinks``) both import it and neither imports the other back.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


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
    # What makes two alerts "the same failure"; by default the kind, entity, check and
    # message (not the run or the time, which differ on every repeat).
    key: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def dedup_key(self) -> str:
        if self.key:
            return self.key
        text = "\x1f".join(str(v) for v in (self.kind, self.entity, self.check, self.message))
        return f"{self.kind}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def text(self) -> str:
        """The alert as plain text, for chat and e-mail."""
        lines = [f"[{self.severity.upper()}] {self.title}", "", self.message.strip()]
        facts = [
            f"{name}: {value}"
            for name, value in (("entity", self.entity), ("check", self.check), ("rows", self.rows))
            if value is not None
        ]
        if facts:
            lines += ["", " · ".join(facts)]
        if self.examples:
            lines += ["", "Examples:", *(f"  - {e}" for e in self.examples)]
        if self.where:
            lines += ["", f"Where to look: {self.where}"]
        if self.run_id:
            lines.append(f"Run: {self.run_id}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.dedup_key()}
