"""The canonical landing contract (docs/data-model.md) as data.

Every source adapter produces these entities; the loader parses and types them from this
single definition, and the dbt sources document the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["string", "timestamp", "date", "double", "bigint", "boolean"]

# DuckDB type each logical type lands as in raw.*; timestamps are stored as naive UTC.
SQL_TYPES: dict[ColumnType, str] = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "double": "DOUBLE",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "string"
    required: bool = False


@dataclass(frozen=True)
class Entity:
    """One canonical entity.

    ``key`` is the column set that identifies a row across batches. ``kind`` says how later
    batches combine with earlier ones: ``versioned`` rows are superseded (latest
    ``updated_at`` wins, ties go to the later batch); ``event`` rows accumulate and are
    deduplicated on ``key``.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    kind: Literal["versioned", "event"]
    optional: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, type_: ColumnType = "string", required: bool = False) -> Column:
    return Column(name, type_, required)


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity(
            "accounts",
            (
                _c("account_id", required=True),
                _c("name", required=True),
                _c("industry"),
                _c("country"),
                _c("employee_count", "bigint"),
                _c("annual_revenue", "double"),
                _c("created_at", "timestamp"),
                _c("updated_at", "timestamp"),
                _c("is_deleted", "boolean"),
            ),
            key=("account_id",),
            kind="versioned",
        ),
        Entity(
            "users",
            (
                _c("user_id", required=True),
                _c("name", required=True),
                _c("email"),
                _c("team"),
                _c("manager_id"),
                _c("region"),
                _c("is_active", "boolean"),
                _c("created_at", "timestamp"),
                _c("updated_at", "timestamp"),
            ),
            key=("user_id",),
            kind="versioned",
        ),
        Entity(
            "contacts",
            (
                _c("contact_id", required=True),
                _c("account_id"),
                _c("first_name"),
                _c("last_name"),
                _c("email"),
                _c("phone"),
                _c("title"),
                _c("created_at", "timestamp"),
                _c("updated_at", "timestamp"),
                _c("is_deleted", "boolean"),
            ),
            key=("contact_id",),
            kind="versioned",
        ),
        Entity(
            "leads",
            (
                _c("lead_id", required=True),
                _c("created_at", "timestamp", required=True),
                _c("email"),
                _c("company"),
                _c("channel"),
                _c("status"),
                _c("score", "double"),
                _c("owner_id"),
                _c("qualified_at", "timestamp"),
                _c("converted_at", "timestamp"),
                _c("converted_opportunity_id"),
                _c("updated_at", "timestamp"),
                _c("is_deleted", "boolean"),
            ),
            key=("lead_id",),
            kind="versioned",
        ),
        Entity(
            "opportunities",
            (
                _c("opportunity_id", required=True),
                _c("created_at", "timestamp", required=True),
                _c("stage", required=True),
                _c("owner_id"),
                _c("account_id"),
                _c("name"),
                _c("amount", "double"),
                _c("currency"),
                _c("probability", "double"),
                _c("lead_source"),
                _c("close_date", "date"),
                _c("is_closed", "boolean"),
                _c("is_won", "boolean"),
                _c("lost_reason"),
                _c("updated_at", "timestamp"),
                _c("is_deleted", "boolean"),
            ),
            key=("opportunity_id",),
            kind="versioned",
        ),
        Entity(
            "stage_changes",
            (
                _c("opportunity_id", required=True),
                _c("stage", required=True),
                _c("changed_at", "timestamp", required=True),
                _c("change_id"),
                _c("amount", "double"),
                _c("changed_by"),
            ),
            # change_id is optional in the contract, so the natural key identifies a change.
            key=("opportunity_id", "stage", "changed_at"),
            kind="event",
        ),
        Entity(
            "activities",
            (
                _c("activity_id", required=True),
                _c("activity_type", required=True),
                _c("occurred_at", "timestamp", required=True),
                _c("owner_id"),
                _c("opportunity_id"),
                _c("lead_id"),
                _c("contact_id"),
                _c("account_id"),
                _c("subject"),
                _c("is_completed", "boolean"),
            ),
            key=("activity_id",),
            kind="event",
        ),
        Entity(
            "stages",
            (
                _c("stage", required=True),
                _c("stage_order", "bigint", required=True),
                _c("category", required=True),
                _c("probability", "double"),
                _c("source_label"),
            ),
            key=("stage", "source_label"),
            kind="event",
            optional=True,
        ),
        Entity(
            "quotas",
            (
                _c("owner_id", required=True),
                _c("month", "date", required=True),
                _c("amount", "double", required=True),
                _c("currency"),
            ),
            key=("owner_id", "month"),
            kind="event",
            optional=True,
        ),
        Entity(
            "fx_rates",
            (
                _c("currency", required=True),
                _c("rate_date", "date", required=True),
                _c("rate_to_reporting", "double", required=True),
            ),
            key=("currency", "rate_date"),
            kind="event",
            optional=True,
        ),
    )
}

CORE_ENTITIES: tuple[str, ...] = tuple(n for n, e in ENTITIES.items() if not e.optional)

# Lineage columns appended to every raw.* table.
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_source", "VARCHAR"),
    ("_batch_id", "VARCHAR"),
    ("_source_file", "VARCHAR"),
    ("_source_row", "BIGINT"),
    ("_ingested_at", "TIMESTAMP"),
    # Columns a file carries beyond the contract, kept as a JSON object (docs/data-model.md:
    # unknown extra columns are source attributes, not rejected).
    ("_attributes", "VARCHAR"),
)

# Columns of a canonical row converted from a CRM export: the export file's name and the
# row's line in it (ingestion.sources.export), and, for a row an adapter derives from one
# cell of a wide row (a "date entered <stage>" column), that column's header. Every export
# view has the first two; adapters pass them on; the loader keeps them in _attributes,
# names failing rows by them and records them in quality.quarantine.
EXPORT_LINEAGE: tuple[str, ...] = ("_export_file", "_export_line", "_export_column")

LANDING_FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")

# Value sets of the contract (docs/data-model.md).
CHANNELS: tuple[str, ...] = (
    "email", "social", "paid", "referral", "event", "website", "outbound", "partner", "other"
)  # fmt: skip
ACTIVITY_TYPES: tuple[str, ...] = (
    "email", "call", "meeting", "demo", "proposal", "follow_up", "onboarding", "other"
)  # fmt: skip
LEAD_STATUSES: tuple[str, ...] = ("new", "working", "qualified", "disqualified", "converted")

# Columns with a fixed value set, which the config's value_labels may map CRM values to.
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "leads.status": LEAD_STATUSES,
    "leads.channel": CHANNELS,
    "activities.activity_type": ACTIVITY_TYPES,
}

# Foreign keys the hygiene gate checks: entity → (column, referenced entity, its key).
REFERENCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "opportunities": (("account_id", "accounts", "account_id"), ("owner_id", "users", "user_id")),
    "stage_changes": (("opportunity_id", "opportunities", "opportunity_id"),),
    "activities": (("opportunity_id", "opportunities", "opportunity_id"),),
    "leads": (("converted_opportunity_id", "opportunities", "opportunity_id"),),
    "quotas": (("owner_id", "users", "user_id"),),
}

# Entities of which a batch may hold only one version per key. For the others the loader
# keeps the later row of a file; a quota, though, is one amount per owner and month, and
# which of two exported together is right cannot be told. The hygiene gate quarantines
# every version (rule <entity>.key_not_conflicting, docs/data-model.md).
ONE_VERSION_PER_KEY: frozenset[str] = frozenset({"quotas"})

# Within a batch, entities are validated so that referenced rows come first.
PROCESSING_ORDER: tuple[str, ...] = (
    "users",
    "accounts",
    "contacts",
    "opportunities",
    "leads",
    "stage_changes",
    "activities",
    "stages",
    "quotas",
    "fx_rates",
)
