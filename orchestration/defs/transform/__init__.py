"""The dbt project as Dagster assets: one ``dbt build`` per run (``assets``), the
project, manifest and asset keys (``project``).

May import: ``orchestration.lib``, ``ingestion``, dagster, dagster_dbt.
"""
