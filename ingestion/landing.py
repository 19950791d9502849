"""Preparing the landing directory a run reads from."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ingestion.config import PipelineConfig


def has_batches(landing: Path) -> bool:
    return landing.is_dir() and any(
        p.is_dir() and not p.name.startswith((".", "_")) for p in landing.iterdir()
    )


def prepare_landing(config: PipelineConfig, *, end: date) -> str | None:
    """For the synthetic source, generate the demo batches when the landing is empty.

    Returns a one-line summary of what was generated, or None when nothing was needed.
    Real sources are never generated into: their landing is the user's export.
    """
    if config.source != "synthetic" or has_batches(config.landing_dir):
        return None
    from ingestion.synthetic import generate

    s = config.synthetic
    summary = generate(
        config.landing_dir,
        opportunities=s.opportunities,
        batches=s.batches,
        seed=s.seed,
        end=end,
    )
    return str(summary)
