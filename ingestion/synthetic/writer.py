"""``generate()``: simulate the world once, then cut it into one export per cutoff, add
the few defective rows a real export holds (defects.py; none with ``clean=True``), and
write each batch's files (CSV or Parquet) under a temporary name, renamed into place when
complete. The public API of the package (re-exported by ``ingestion.synthetic``).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingestion.errors import ConfigError
from ingestion.schema import CORE_ENTITIES
from ingestion.synthetic.defects import _Defects
from ingestion.synthetic.params import (
    EXPORT_HOUR_UTC,
    MAX_BATCHES,
    MAX_OPPORTUNITIES,
    MIN_BATCHES,
    MIN_OPPORTUNITIES,
)
from ingestion.synthetic.world import _World

# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate`` wrote. ``rows`` counts rows per entity over all batches, defective
    ones included; ``defects`` counts the defective rows per hygiene rule they fail (all
    zero with ``clean=True``)."""

    out_dir: Path
    batch_ids: tuple[str, ...]
    rows: dict[str, int]
    end: dt.date
    defects: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        counts = ", ".join(f"{n:,} {entity}" for entity, n in self.rows.items())
        first, last = self.batch_ids[0], self.batch_ids[-1]
        span = first if first == last else f"{first}..{last}"
        text = f"{len(self.batch_ids)} batch(es) {span} in {self.out_dir}: {counts}"
        total = sum(self.defects.values())
        if total:
            rules = ", ".join(f"{n:,} {rule}" for rule, n in self.defects.items() if n)
            text += f"; {total:,} of them defective, for the hygiene gate to quarantine ({rules})"
        return text


def batch_id_for(cutoff: dt.datetime) -> str:
    """The landing folder name of the export taken at ``cutoff`` (UTC), e.g. 2026-11-23T0600."""
    return cutoff.strftime("%Y-%m-%dT%H%M")


def generate(
    out_dir: Path,
    *,
    opportunities: int = 5000,
    batches: int = 4,
    seed: int = 42,
    end: dt.date | None = None,
    fmt: Literal["csv", "parquet"] = "csv",
    clean: bool = False,
) -> GenerationSummary:
    """Write ``batches`` synthetic CRM exports into ``out_dir`` (which must be empty).

    ``opportunities`` is the number of opportunities created over the ~24 months before
    the last export, which is taken at 06:00 UTC on ``end`` (default: today, UTC); the
    others are taken at 06:00 UTC on the days before. About one lead or activity row in
    2,000 is defective, for the hygiene gate to quarantine (defects.py); ``clean=True``
    writes none, and leaves every other row as it is. The output is byte-identical for
    the same (opportunities, batches, seed, end, fmt, clean).
    """
    out_dir = Path(out_dir)
    end = _check_args(out_dir, opportunities, batches, seed, end, fmt)
    if not isinstance(clean, bool):
        raise ConfigError(f"synthetic generator: clean={clean!r} must be true or false.")
    last_cutoff = dt.datetime.combine(end, dt.time(EXPORT_HOUR_UTC), tzinfo=dt.UTC)
    cutoff_times = [last_cutoff - dt.timedelta(days=batches - 1 - k) for k in range(batches)]
    cutoffs = np.array([int(c.timestamp()) for c in cutoff_times], dtype=np.int64)
    batch_ids = tuple(batch_id_for(c) for c in cutoff_times)

    world = _World.simulate(opportunities, seed, int(cutoffs[-1]))
    # Fresh ids for defective rows start past the world's own.
    defects = _Defects(
        seed,
        {
            "activities": int(world.act_number.size) + 1,
            "leads": int(world.lead_number.size) + 1,
        },
    )
    rows = {entity: 0 for entity in WRITTEN_ENTITIES}
    out_dir.mkdir(parents=True, exist_ok=True)
    # Arrow writes without holding the GIL, so one writer thread overlaps writing a file
    # with building the next table. Each file still comes from one sequential write.
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future[None] | None = None
        for k, (batch_id, cutoff) in enumerate(zip(batch_ids, cutoffs, strict=True)):
            previous = int(cutoffs[k - 1]) if k else None
            # A batch appears under its final name only when complete, so a loader or
            # sensor watching the landing directory never sees half a batch.
            partial = out_dir / f".{batch_id}.partial"
            partial.mkdir()
            try:
                for entity in _WRITE_ORDER:
                    table = world.export(entity, int(cutoff), previous, fmt)
                    if not clean:
                        table = defects.add(entity, table, k)
                    rows[entity] += table.num_rows
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(_write, table, partial / f"{entity}.{fmt}", fmt)
                if pending is not None:
                    pending.result()
                    pending = None
            except BaseException:
                if pending is not None:
                    pending.cancel()
                    wait([pending])
                shutil.rmtree(partial, ignore_errors=True)
                raise
            os.rename(partial, out_dir / batch_id)
    return GenerationSummary(
        out_dir=out_dir,
        batch_ids=batch_ids,
        rows=rows,
        end=end,
        defects={rule: 0 for rule in defects.counts} if clean else dict(defects.counts),
    )


# Largest files first, so writing them overlaps building the rest of the batch.
_WRITE_ORDER = (
    "activities",
    "stage_changes",
    "leads",
    "opportunities",
    "contacts",
    "accounts",
    "users",
    "quotas",
    "fx_rates",
)
# The entities written, in the contract's order: the core ones and the optional quotas
# and fx_rates.
WRITTEN_ENTITIES: tuple[str, ...] = (*CORE_ENTITIES, "quotas", "fx_rates")


def _check_args(
    out_dir: Path, opportunities: int, batches: int, seed: int, end: dt.date | None, fmt: str
) -> dt.date:
    def is_int(v: object) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    if not is_int(opportunities) or not MIN_OPPORTUNITIES <= opportunities <= MAX_OPPORTUNITIES:
        raise ConfigError(
            f"synthetic generator: opportunities={opportunities!r} is out of range; "
            f"use a whole number from {MIN_OPPORTUNITIES:,} to {MAX_OPPORTUNITIES:,}."
        )
    if not is_int(batches) or not MIN_BATCHES <= batches <= MAX_BATCHES:
        raise ConfigError(
            f"synthetic generator: batches={batches!r} is out of range; use a whole number "
            f"from {MIN_BATCHES} to {MAX_BATCHES} (one export per day, the last on `end`)."
        )
    if not is_int(seed) or seed < 0:
        raise ConfigError(
            f"synthetic generator: seed={seed!r} must be a non-negative whole number."
        )
    if fmt not in ("csv", "parquet"):
        raise ConfigError(
            f"synthetic generator: fmt={fmt!r} is not supported; use 'csv' or 'parquet'."
        )
    if end is None:
        end = dt.datetime.now(dt.UTC).date()
    elif isinstance(end, dt.datetime):
        end = end.date()
    elif not isinstance(end, dt.date):
        raise ConfigError(f"synthetic generator: end={end!r} must be a date (YYYY-MM-DD).")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConfigError(
                f"synthetic generator: {out_dir} exists and is not a directory; "
                f"choose an empty or new directory for the generated batches."
            )
        if any(out_dir.iterdir()):
            raise ConfigError(
                f"synthetic generator: {out_dir} is not empty. It refuses to mix new "
                f"batches with existing files; choose an empty or new directory, or "
                f"delete the old batches first."
            )
    return end


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
        return
    with open(path, "wb") as f:
        # Arrow quotes header names; a plain header reads better and is what CRMs emit.
        f.write((",".join(table.column_names) + "\n").encode())
        # quoting "none" makes Arrow fail on a comma, quote or newline in a value instead of
        # quoting it: generated values never contain them, so a failure is a bug here.
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))
