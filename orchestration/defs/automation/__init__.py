"""The job, the daily schedule and the sensors that watch the landing directory for new
batches and stale data.

May import: ``orchestration.lib``, ``ingestion``, dagster.
"""
