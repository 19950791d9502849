"""Defective rows, as real CRM exports hold a few: ``_Defects`` adds them to the leads and
activities of each export, so that the demo shows the hygiene gate quarantining rows with
their reasons (``generate(clean=True)`` writes none).

Four kinds, each failing one row-level ERROR rule of the gate (ingestion/hygiene/rules.py),
so the row is quarantined and the rest of its batch published:

- ``activities.activity_type_in_value_set``: an activity of a type an admin added to the
  CRM (LinkedIn InMail) that the contract does not know;
- ``activities.occurred_at_not_null``: a task logged without a date;
- ``leads.lead_id_not_null``: a lead row without its id (a web form synced before the CRM
  assigned one);
- ``leads.status_in_value_set``: a lead with a custom status (Nurturing).

Each defective row is an extra row, a copy of a clean row of the same file with the one
field broken (and a fresh id, past the world's own ids, where it keeps one): the clean
rows are exactly those of ``clean=True``, so every raw table, mart and KPI is the same
with or without the defects. Nothing is added to opportunities, stage changes, users,
quotas or fx rates.

How many: one per ``DEFECT_EVERY`` (2,000) clean rows of the entity written so far, over
the batches in order: the j-th defect of an entity is due in the file where its clean
rows reach j × 2,000 (``_due``). A file holds at most one defect per
``MIN_ROWS_PER_DEFECT`` (100) of its clean rows, so defects are at most 1% of a file,
well below quality.quarantine_max_share (5% by default), at any size; a defect due in a
file too small for it waits for the next file large enough (or is not written). The
kinds of an entity alternate, in the order above (its first defect is of its first
kind). Which row each defect copies and where in the file it goes are drawn from the
seed's ``SeedSequence`` under spawn key (11, batch, entity), below the world's children
0..10, so the output stays a pure function of the arguments. Unlike the world, the
defects depend on ``batches``: they belong to the exports, not to the simulated CRM.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from ingestion.synthetic.columns import _ids

DEFECT_EVERY = 2_000
MIN_ROWS_PER_DEFECT = 100
# The seed's SeedSequence child the defects draw below (the world uses children 0..10).
_STREAM = 11

CUSTOM_ACTIVITY_TYPE = "LinkedIn InMail"
CUSTOM_LEAD_STATUS = "Nurturing"

# entity → (the rule each kind fails, in the order the kinds alternate).
KINDS: dict[str, tuple[str, ...]] = {
    "activities": ("activities.activity_type_in_value_set", "activities.occurred_at_not_null"),
    "leads": ("leads.lead_id_not_null", "leads.status_in_value_set"),
}
_ENTITY_NUMBER = {entity: k for k, entity in enumerate(KINDS)}


def _due(rows_before: int, rows: int, made: int) -> int:
    """How many defects a file of ``rows`` clean rows gets, after ``rows_before`` clean rows
    of the entity in earlier files, which got ``made`` defects: those due by the end of
    this file (one per DEFECT_EVERY rows), at most one per MIN_ROWS_PER_DEFECT rows."""
    return max(0, min((rows_before + rows) // DEFECT_EVERY - made, rows // MIN_ROWS_PER_DEFECT))


class _Defects:
    """The defects of one landing, added file by file in batch order (``add``).

    ``next_number``: per entity, the id number of its first fresh id (one past the
    world's last). ``counts``: the defects written so far, per rule.
    """

    def __init__(self, seed: int, next_number: dict[str, int]) -> None:
        self._seed = seed
        self._next_number = dict(next_number)
        self._rows_before = {entity: 0 for entity in KINDS}
        self._made = {entity: 0 for entity in KINDS}
        self.counts: dict[str, int] = {rule: 0 for rules in KINDS.values() for rule in rules}

    def add(self, entity: str, table: pa.Table, batch: int) -> pa.Table:
        """``table`` (the clean export of ``entity`` in batch number ``batch``, from 0)
        with its defective rows inserted; unchanged for an entity without defects."""
        if entity not in KINDS:
            return table
        n = table.num_rows
        d = _due(self._rows_before[entity], n, self._made[entity])
        self._rows_before[entity] += n
        if d == 0:
            return table
        seq = np.random.SeedSequence(self._seed, spawn_key=(_STREAM, batch, _ENTITY_NUMBER[entity]))
        rng = np.random.default_rng(seq)
        templates = np.sort(rng.choice(n, size=d, replace=False))
        kinds = KINDS[entity]
        rules = [kinds[(self._made[entity] + i) % len(kinds)] for i in range(d)]
        rows = [
            _BREAK[rule](self, table.slice(int(t), 1))
            for t, rule in zip(templates, rules, strict=True)
        ]
        for rule in rules:
            self.counts[rule] += 1
        self._made[entity] += d
        # Defect i goes before clean row positions[i] (after the last for n). Slices are
        # views: no copy of a large export's rows.
        positions = np.sort(rng.integers(0, n + 1, size=d))
        pieces, start = [], 0
        for position, row in zip(positions, rows, strict=True):
            pieces += [table.slice(start, int(position) - start), row]
            start = int(position)
        pieces.append(table.slice(start))
        return pa.concat_tables(pieces)

    def _fresh_ids(self, entity: str, prefix: str, width: int) -> pa.Array:
        number = self._next_number[entity]
        self._next_number[entity] += 1
        return _ids(prefix, np.array([number], dtype=np.int64), width)

    def _custom_activity_type(self, row: pa.Table) -> pa.Table:
        row = _set(row, "activity_id", self._fresh_ids("activities", "ACT-", 10))
        return _set(row, "activity_type", pa.array([CUSTOM_ACTIVITY_TYPE]))

    def _activity_without_date(self, row: pa.Table) -> pa.Table:
        row = _set(row, "activity_id", self._fresh_ids("activities", "ACT-", 10))
        return _set(row, "occurred_at", pa.nulls(1, row.schema.field("occurred_at").type))

    def _lead_without_id(self, row: pa.Table) -> pa.Table:
        return _set(row, "lead_id", pa.nulls(1, pa.string()))

    def _lead_with_custom_status(self, row: pa.Table) -> pa.Table:
        row = _set(row, "lead_id", self._fresh_ids("leads", "LEAD-", 8))
        row = _set(row, "status", pa.array([CUSTOM_LEAD_STATUS]))
        # A lead in nurture has not converted: no conversion left from the copied row.
        for column in ("converted_at", "converted_opportunity_id"):
            row = _set(row, column, pa.nulls(1, row.schema.field(column).type))
        return row


def _set(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(column)
    return table.set_column(
        index, table.schema.field(index), values.cast(table.schema.field(index).type)
    )


_BREAK: dict[str, Callable[[_Defects, pa.Table], pa.Table]] = {
    "activities.activity_type_in_value_set": _Defects._custom_activity_type,
    "activities.occurred_at_not_null": _Defects._activity_without_date,
    "leads.lead_id_not_null": _Defects._lead_without_id,
    "leads.status_in_value_set": _Defects._lead_with_custom_status,
}
