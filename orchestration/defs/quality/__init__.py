"""The asset checks on the raw tables (the gate's verdicts, freshness, volume) and the
alerts they raise.

May import: ``orchestration.lib``, ``ingestion``, dagster.
"""
