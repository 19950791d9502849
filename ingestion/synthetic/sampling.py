"""Sampling helpers of the simulation: rep headcount, log-normal durations, weighted
choices, working-hours placement of timestamps, ranks and group picks, and the latest
milestone before a cutoff. Pure numpy functions of their arguments.
"""

from __future__ import annotations

import numpy as np

from ingestion.synthetic.params import _REGION_SPAN, _REGION_START, DAY

# ---------------------------------------------------------------------------------------
# Sampling helpers
# ---------------------------------------------------------------------------------------


def _rep_count(n_opps: int) -> int:
    """Sales headcount grows sub-linearly with volume: ~20 reps at 5k opportunities, a few
    hundred at 1M (before rounding per region)."""
    return max(8, round(20 * (n_opps / 5000) ** 0.5))


def _lognormal_days(
    rng: np.random.Generator, median: np.ndarray | float, sigma: float, size: int
) -> np.ndarray:
    return np.asarray(median) * rng.lognormal(0.0, sigma, size)


def _choice(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(size), side="right").astype(np.int32)


def _choice_rows(rng: np.random.Generator, cdf_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per element from the categorical distribution in ``cdf_rows[rows]``.

    Loops over the (few) distributions rather than materialising an n × k matrix, which
    at millions of rows would cost gigabytes.
    """
    u = rng.random(len(rows))
    out = np.zeros(len(rows), dtype=np.int8)
    for k in np.unique(rows):
        at = rows == k
        out[at] = np.searchsorted(cdf_rows[k], u[at], side="right")
    return out


def _grown_times(
    rng: np.random.Generator, size: int, start: float, stop: float, growth: float = 0.6
) -> np.ndarray:
    """Times in [start, stop) with a density rising linearly by ``growth`` — a growing
    business creates more pipeline each month."""
    u = rng.random(size)
    x = (np.sqrt(1.0 + growth * (2.0 + growth) * u) - 1.0) / growth
    return start + x * (stop - start)


def _working_time(t: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Plan time → a timestamp (int seconds) inside the plan day's working window of the
    region (which may run past midnight UTC): the day is squeezed into the window.

    Monotone non-decreasing within a region, so the order of one owner's events is kept.
    """
    day = np.floor(t / DAY)
    frac = t / DAY - day
    return (day * DAY + _REGION_START[region] + frac * _REGION_SPAN[region]).astype(np.int64)


def _segment_starts(sorted_keys: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def _rank(times: np.ndarray) -> np.ndarray:
    """1-based id numbers in time order (ties by position), like a CRM's sequence."""
    order = np.argsort(times, kind="stable")
    number = np.empty(len(times), dtype=np.int64)
    number[order] = np.arange(1, len(times) + 1)
    return number


def _pick_in_groups(
    rng: np.random.Generator,
    group: np.ndarray,
    members: np.ndarray,
    member_group: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """For each element, a member of its group, drawn with probability ∝ ``weight``.

    Members of weight 0 are never drawn; every group asked for needs a positive weight.
    """
    order = np.lexsort((members, member_group))
    m, g, w = members[order], member_group[order], weight[order].astype(np.float64)
    cum = np.cumsum(w)
    n_groups = int(max(g.max(), group.max())) + 1
    hi = np.zeros(n_groups)
    np.maximum.at(hi, g, cum)
    before = cum - w
    lo = np.full(n_groups, np.inf)
    np.minimum.at(lo, g, before)
    target = lo[group] + rng.random(len(group)) * (hi[group] - lo[group])
    idx = np.searchsorted(cum, target, side="right")
    return m[np.minimum(idx, len(m) - 1)]


def _last_at_or_before(cutoff: int, *milestones: np.ndarray) -> np.ndarray:
    """Latest of the milestone times that are ≤ cutoff (−1 if none)."""
    out = np.full(len(milestones[0]), -1, dtype=np.int64)
    for m in milestones:
        np.maximum(out, np.where(m <= cutoff, m, -1), out=out)
    return out
