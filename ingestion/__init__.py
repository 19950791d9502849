"""Plain Python that turns CRM data into trusted raw tables: the canonical schema
(``schema``), the landing layout and readers (``landing``, ``landing_checks``), the source
adapters (``sources/``), the loader (``loader``) with its hygiene gate (``hygiene``, Great
Expectations suites), the synthetic generator (``synthetic``), configuration (``config``)
and the warehouse's own tables (``warehouse``).

May import: duckdb, pandas, pyarrow, numpy, great_expectations (lazily: it costs seconds),
yaml. Never dagster or anything under ``orchestration``: the same code runs in a test, a
notebook or another orchestrator.
"""
