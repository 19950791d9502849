"""The pipeline report, written after every run that rebuilt the marts.

May import: ``orchestration.lib``, ``ingestion``, dagster.
"""
