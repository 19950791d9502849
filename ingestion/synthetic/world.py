"""``_World``: every record of the simulated CRM with its full history, as numpy arrays.

The class is assembled from two halves that live next to it: the entity generators
(entities.py, which simulate the history) and the exports (export.py, which show that
history as of a cutoff). ``_World.simulate`` runs the generators in their fixed order.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa

from ingestion.synthetic.columns import _ids
from ingestion.synthetic.entities import _EntityGenerators
from ingestion.synthetic.export import _Exports
from ingestion.synthetic.params import DAY, HISTORY_DAYS

# ---------------------------------------------------------------------------------------
# The simulated world
# ---------------------------------------------------------------------------------------


class _World(_EntityGenerators, _Exports):
    """Every record of the simulated CRM with its full history, as numpy arrays.

    Entities are index-addressed internally (foreign keys are array positions); public
    ids are minted at export time from a per-entity number ranked by creation time.
    Timestamps are int seconds since the Unix epoch (UTC); ``_NEVER`` marks a milestone
    that does not happen.
    """

    # Public id = prefix + zero-padded number, per entity (the attribute ``<kind>_number``).
    _ID_FORMAT: ClassVar[dict[str, tuple[str, int]]] = {
        "user": ("USR-", 5),
        "acc": ("ACC-", 8),
        "con": ("CON-", 8),
        "lead": ("LEAD-", 8),
        "opp": ("OPP-", 8),
    }

    def __init__(self) -> None:
        self._id_strings: dict[str, pa.Array] = {}

    def _ref(self, kind: str, idx: np.ndarray) -> pa.Array:
        """Public ids of the ``kind`` records at positions ``idx`` (−1 → null).

        Each entity's ids are formatted once; a reference is then an Arrow take, which
        matters for activities, whose five id columns run to tens of millions of values.
        """
        strings = self._id_strings.get(kind)
        if strings is None:
            prefix, width = self._ID_FORMAT[kind]
            strings = _ids(prefix, getattr(self, f"{kind}_number"), width)
            self._id_strings[kind] = strings
        valid = idx >= 0
        return strings.take(pa.array(idx, type=pa.int32(), mask=None if valid.all() else ~valid))

    @classmethod
    def simulate(cls, n_opps: int, seed: int, last_cutoff: int) -> _World:
        w = cls()
        # Children of one SeedSequence are keyed by their index, so streams added at the end
        # leave the earlier ones (and what they simulate) unchanged.
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(11)]
        w.last_cutoff = last_cutoff
        # Creation stops at the start of the last export day; see _make_opportunities.
        w.plan_end = float(last_cutoff - last_cutoff % DAY)
        w.plan_start = w.plan_end - HISTORY_DAYS * DAY
        w._make_users(streams[0], n_opps)
        w._make_accounts(streams[1], n_opps)
        w._make_opportunities(streams[2], n_opps, streams[8])
        w._make_leads(streams[3])
        w._finish_accounts(streams[4])
        w._make_contacts(streams[5])
        w._make_activities(streams[6])
        w._finish_users(streams[7])
        w._make_fx_rates(streams[9])
        w._make_quotas(streams[10])
        return w
