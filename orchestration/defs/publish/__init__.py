"""Publishing the marts for readers after every run that built them: the serving DuckDB
file and the Parquet files (``publish/serving_file``), PostgreSQL when configured
(``publish/postgres``); the work itself is ``ingestion.publish`` and ``ingestion.postgres``.

May import: ``orchestration.lib``, ``ingestion``, dagster.
"""
