"""The stage map: source stage labels → canonical stages (docs/data-model.md, "Stages").

One definition feeds everything: the loader writes it to ``raw.stage_map`` and every dbt
model reads stages from there, and the hygiene suite checks labels against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

CATEGORIES = ("open", "won", "lost", "post_sale")


@dataclass(frozen=True)
class Stage:
    stage: str
    stage_order: int
    category: str
    probability: float


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("prospecting", 1, "open", 0.05),
    Stage("qualification", 2, "open", 0.10),
    Stage("meeting", 3, "open", 0.20),
    Stage("proposal", 4, "open", 0.50),
    Stage("negotiation", 5, "open", 0.80),
    Stage("closed_won", 6, "won", 1.00),
    Stage("closed_lost", 7, "lost", 0.00),
    Stage("onboarding", 8, "post_sale", 1.00),
    Stage("follow_up", 9, "post_sale", 1.00),
    Stage("renewal", 10, "post_sale", 1.00),
)


def normalize_label(label: str) -> str:
    """How labels are compared: CRMs differ in case and stray spaces, never in meaning."""
    return " ".join(label.split()).lower()


@dataclass(frozen=True)
class StageMap:
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    # normalized source label → canonical stage name
    labels: Mapping[str, str] | None = None

    def label_map(self) -> dict[str, str]:
        """Every label that maps, canonical names included (they map to themselves)."""
        mapping = {normalize_label(s.stage): s.stage for s in self.stages}
        for label, stage in (self.labels or {}).items():
            mapping[normalize_label(label)] = stage
        return mapping

    def unmapped(self, labels: Iterable[str]) -> list[str]:
        known = self.label_map()
        return sorted({lbl for lbl in labels if normalize_label(lbl) not in known})

    def to_frame(self) -> pd.DataFrame:
        """One row per source label, in the shape of ``raw.stage_map``."""
        by_name = {s.stage: s for s in self.stages}
        rows = []
        for label, stage_name in sorted(self.label_map().items()):
            s = by_name[stage_name]
            rows.append(
                {
                    "source_label": label,
                    "stage": s.stage,
                    "stage_order": s.stage_order,
                    "category": s.category,
                    "probability": s.probability,
                }
            )
        return pd.DataFrame(
            rows, columns=["source_label", "stage", "stage_order", "category", "probability"]
        )
