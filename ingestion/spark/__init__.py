"""The pipeline on Apache Spark (``engine: spark``): the Spark session the loader and the
hygiene gate share, the loader into ``raw.*`` in Spark's catalog, the gate's runner on
Spark DataFrames, and the copy of the marts and quality records into the DuckDB file that
the summary, the report and the publish steps read (``mirror``; DuckDB only, no JVM). The
schema, merge rules and rule catalog are the DuckDB engine's own (ingestion.schema,
ingestion.hygiene); only how they are executed differs.

Nothing here is imported unless the engine is spark: pyspark stays an optional extra.

May import: pyspark, great_expectations, duckdb (small driver-side checks) and the rest of
``ingestion`` (schema, rule catalog, landing, config); nothing under ``orchestration``.
"""
