"""The ``raw`` and ``quality`` tables in Spark's catalog, from the same definitions as the
DuckDB warehouse (ingestion.schema, ingestion.warehouse): same columns, Spark types.

Every table is a Parquet table, one folder per table under Spark's warehouse folder
(``<database>.db/<table>/``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingestion.schema import ENTITIES, LINEAGE_COLUMNS, Entity
from ingestion.warehouse import QUALITY_SCHEMA, QUARANTINE_EXPORT_COLUMNS, RAW_SCHEMA, SCHEMAS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The DuckDB type names of ingestion.schema and ingestion.warehouse, in Spark SQL.
SPARK_TYPES: dict[str, str] = {
    "VARCHAR": "STRING",
    "TIMESTAMP": "TIMESTAMP",
    "DATE": "DATE",
    "DOUBLE": "DOUBLE",
    "BIGINT": "BIGINT",
    "BOOLEAN": "BOOLEAN",
    "INTEGER": "INT",
    "JSON": "STRING",
}
_LOGICAL: dict[str, str] = {
    "string": "STRING",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "double": "DOUBLE",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
}

STAGE_MAP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_label", "STRING"),
    ("stage", "STRING"),
    ("stage_order", "INT"),
    ("category", "STRING"),
    ("probability", "DOUBLE"),
)

# The quality.* tables of ingestion.warehouse.create_quality_tables, column for column.
QUALITY_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "ingestion_log": (
        ("run_id", "STRING"), ("batch_id", "STRING"), ("entity", "STRING"),
        ("source_file", "STRING"), ("content_sha256", "STRING"), ("status", "STRING"),
        ("input_rows", "BIGINT"), ("loaded_rows", "BIGINT"), ("quarantined_rows", "BIGINT"),
        ("duplicate_rows", "BIGINT"), ("rejected_rows", "BIGINT"), ("reasons", "STRING"),
        ("ingested_at", "TIMESTAMP"),
    ),
    "source_reconciliation": (
        ("run_id", "STRING"), ("source", "STRING"), ("batch_id", "STRING"),
        ("export_file", "STRING"), ("entity", "STRING"), ("rows_read", "BIGINT"),
        ("rows_emitted", "BIGINT"), ("rows_set_aside", "BIGINT"), ("set_aside", "STRING"),
        ("skip_reason", "STRING"), ("recorded_at", "TIMESTAMP"),
    ),
    "quarantine": (
        ("entity", "STRING"), ("batch_id", "STRING"), ("source_file", "STRING"),
        ("source_row", "BIGINT"), ("raw_row", "STRING"), ("failed_rules", "STRING"),
        ("quarantined_at", "TIMESTAMP"), ("run_id", "STRING"),
        *((c, "STRING") for c in QUARANTINE_EXPORT_COLUMNS),
    ),
    "validation_results": (
        ("run_id", "STRING"), ("validated_at", "TIMESTAMP"), ("batch_id", "STRING"),
        ("entity", "STRING"), ("source_file", "STRING"), ("rule", "STRING"),
        ("expectation", "STRING"), ("column", "STRING"), ("severity", "STRING"),
        ("success", "BOOLEAN"), ("element_count", "BIGINT"), ("unexpected_count", "BIGINT"),
        ("observed", "STRING"), ("examples", "STRING"), ("message", "STRING"),
    ),
}  # fmt: skip


def raw_columns(entity: Entity) -> list[tuple[str, str]]:
    """(name, Spark type) of a raw table: the contract's columns, then the lineage."""
    return [(c.name, _LOGICAL[c.type]) for c in entity.columns] + [
        (name, SPARK_TYPES[type_]) for name, type_ in LINEAGE_COLUMNS
    ]


def ddl_schema(columns: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    """A DDL schema string (`a STRING, b BIGINT`), as createDataFrame and CREATE take."""
    return ", ".join(f"`{name}` {type_}" for name, type_ in columns)


def create_tables(spark: SparkSession) -> None:
    """Create every database and every raw.* and quality.* table (empty) that is missing,
    so dbt's sources always exist."""
    for schema in SCHEMAS:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
    tables = {f"{RAW_SCHEMA}.{e.name}": raw_columns(e) for e in ENTITIES.values()}
    tables[f"{RAW_SCHEMA}.stage_map"] = list(STAGE_MAP_COLUMNS)
    tables |= {f"{QUALITY_SCHEMA}.{name}": list(cols) for name, cols in QUALITY_TABLES.items()}
    existing = {
        f"{db}.{row.tableName}"
        for db in (RAW_SCHEMA, QUALITY_SCHEMA)
        for row in spark.sql(f"SHOW TABLES IN {db}").collect()
    }
    for name, columns in tables.items():
        if name not in existing:
            spark.sql(f"CREATE TABLE {name} ({ddl_schema(columns)}) USING parquet")
        elif name.startswith(f"{QUALITY_SCHEMA}."):
            # A quality table of an earlier version gets the columns added since, at the
            # end (quarantine's export_file ...): the loader appends rows by position.
            have = {f.name for f in spark.table(name).schema.fields}
            added = [(n, t) for n, t in columns if n not in have]
            if added:
                spark.sql(f"ALTER TABLE {name} ADD COLUMNS ({ddl_schema(added)})")
