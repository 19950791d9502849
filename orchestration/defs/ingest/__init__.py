"""The ingestion assets: landing batches (converted from CRM exports when the source is
an adapter) loaded into ``raw.*`` through the hygiene gate.

May import: ``orchestration.lib``, ``ingestion``, dagster.
"""
