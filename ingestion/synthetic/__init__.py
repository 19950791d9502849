"""Synthetic CRM exports in the canonical landing format (docs/data-model.md).

``generate()`` simulates a sales organisation over the ~24 months before ``end`` — reps in
regional teams with monthly quotas, accounts and their contacts, inbound and outbound
leads, opportunities moving through the default stages and on into after-sales, and the
activities around them — and writes what its CRM would have exported as daily batches::

    <out_dir>/<batch_id>/<entity>.csv|parquet     batch_id like 2026-11-23T0600

Every batch holds one file per entity of WRITTEN_ENTITIES: the core ones, quotas and
fx_rates. Batch 1 is a full export: every record known at its cutoff, in its state at that
cutoff. Each later batch is an incremental export taken at 06:00 UTC the next day: the
versioned entities (accounts, users, contacts, leads, opportunities) created or changed
since the previous cutoff, in their state at this cutoff; the quotas published or revised
since then; and the events (stage_changes, activities, fx_rates) that happened since then.
Like many real incremental exports, each one re-sends the last 6 hours of the previous
window, so event rows arrive twice and the loader must deduplicate them. Nothing in a
batch is dated after its cutoff, except the close_date of an open opportunity (its
expected close date) and the month of a quota planned ahead.

Stages are the canonical names of DEFAULT_STAGES, used as labels. Deals start in
prospecting or qualification, may skip a stage, fall back to a lower open stage, be lost
and (once) revived; won deals move on to onboarding (most), then follow_up (many), and
some of those to renewal about ten months after the win. About a fifth of the won deals
get no recorded activity after the win; the others a first touch within days. As in a
real CRM, the configured stage probabilities are optimistic where it matters: deals that
reach proposal or negotiation, which carry most of the weighted pipeline, win far less
often than configured, so a forecast with the configured probabilities over-predicts,
while win rates learned from recent closed deals track reality (they do not drift; see
_OPEN_TRANSITIONS).

Quotas: one per rep and month, from the first month of the history (or the rep's hire) to
the quarter planned next, sized on the rep's share of the company's won amount (see
_make_quotas); EMEA reps' quotas are in EUR, the others in USD, and fx_rates carries the
EUR → USD rates of every weekday from before the first quota to the last cutoff. Deals
are in USD. About 2% of the leads have no channel (and their opportunities no
lead_source).

Defective rows: about one lead or activity row in 2,000 is an extra, broken copy of a
clean row (a custom activity type, an activity without a date, a lead without an id, a
custom lead status), which the hygiene gate quarantines; ``clean=True`` writes none and
leaves every other row as it is (defects.py).

Determinism: the files are a pure function of (opportunities, batches, seed, end, fmt,
clean). The same arguments produce byte-identical files (given the same numpy and pyarrow
versions: numpy's PCG64 streams and pyarrow's writers are stable, and Parquet footers
name the pyarrow version). ``end`` defaults to today's UTC date, so pass it when you need
reproducible output. The simulated world does not depend on ``batches`` or ``fmt``; they
only decide how it is cut into files (and where the defective rows go).

How the world is simulated, in brief. Every record is sampled with numpy in bulk; the only
Python loops run over simulation steps, batches and entities. Time is first simulated
as a continuous "plan time", then each timestamp is placed in its owner's regional
working hours by a monotone map (``_working_time``), so order is preserved while events
cluster in business hours (APAC reps work across 00:00–06:00 UTC, which is what puts
events into the re-exported overlap window). An opportunity's whole life is simulated,
including the part after ``end``; exports then show each record as of each cutoff.

Layout of the package (the world and its parameters, the entity generators, the writer):

- ``params.py``: the world's parameters (reference data, stage model, quota and FX constants);
- ``sampling.py``: numpy sampling helpers; ``columns.py``: Arrow column builders;
- ``world.py``: ``_World``, assembled from ``entities.py`` (the generators that simulate
  the history) and ``export.py`` (each entity as exported at a cutoff);
- ``defects.py``: the defective rows added to each export (``_Defects``);
- ``writer.py``: ``generate()`` and the batch files, re-exported here.

The ``_``-prefixed names are private to the package; its modules share them.

May import: ingestion.errors, ingestion.schema, ingestion.stages (and numpy, pyarrow);
nothing of Dagster, nothing else of ingestion. Within the package: params ← sampling ←
columns ← entities/export ← world ← writer, and columns ← defects ← writer.
"""

from ingestion.synthetic.writer import WRITTEN_ENTITIES, GenerationSummary, batch_id_for, generate

__all__ = ["WRITTEN_ENTITIES", "GenerationSummary", "batch_id_for", "generate"]
