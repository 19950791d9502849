"""Run-failure sensors: a failed or blocked run becomes an alert.

May import: ``orchestration.lib``, ``ingestion``, dagster.
"""
