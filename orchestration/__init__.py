"""The Dagster code location and the ``crm-pipeline`` command line: thin glue around
``ingestion`` and the dbt project. ``defs/`` holds what Dagster loads, one folder per
concern; ``lib/`` the plain helpers they share (resources, alerts and sinks, the run
summary, progress lines).

May import: everything in ``ingestion``, dagster, dagster_dbt. Nothing in ``ingestion``
imports this package.
"""
