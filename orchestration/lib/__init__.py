"""Helpers shared by the Dagster definitions and the command line: the pipeline
resource and writer lock (``pipeline``), alerts (``alert``, ``alerts``, ``alert_sinks``),
what a failed run means (``run_failures``), the run summary (``summary``), progress
lines (``progress``) and when a run may leave the staging layer out (``unchanged``).

May import: ``ingestion``, dagster. Never ``orchestration.defs`` (the definitions import
these, not the other way round).
"""
