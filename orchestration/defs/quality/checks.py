"""Hygiene checks on raw tables: Great Expectations suites wrapped as Dagster asset checks."""

import dagster as dg

from ingestion.hygiene import mapped_labels, opportunities_frame, validate_opportunities
from ingestion.warehouse import connect
from orchestration.defs.ingest.assets import raw_key
from orchestration.lib.pipeline import PipelineResource


@dg.asset_check(
    asset=raw_key("opportunities"),
    name="opportunities_hygiene",
    blocking=True,
    description=(
        "Great Expectations suite on raw.opportunities: opportunity_id not null and unique, "
        "amount ≥ 0, every stage label mapped. A failure stops the dbt models."
    ),
)
def opportunities_hygiene(pipeline: PipelineResource) -> dg.AssetCheckResult:
    cfg = pipeline.settings()
    con = connect(cfg.warehouse, read_only=True, memory_limit=cfg.memory_limit)
    try:
        frame = opportunities_frame(con)
        labels = mapped_labels(con)
    finally:
        con.close()
    result = validate_opportunities(frame, labels)
    metadata: dict[str, dg.RawMetadataValue] = {
        "rows_validated": len(frame),
        "failed_expectations": len(result.failures),
        "summary": dg.MetadataValue.md("\n".join(f"- {o.describe()}" for o in result.outcomes)),
    }
    for o in result.outcomes:
        metadata[f"{o.expectation}({o.column})"] = {
            "success": o.success,
            "unexpected_count": o.unexpected_count,
            "examples": [str(v) for v in o.unexpected_examples],
        }
    return dg.AssetCheckResult(
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description="\n".join(o.describe() for o in result.failures) or None,
        metadata=metadata,
    )


defs = dg.Definitions(asset_checks=[opportunities_hygiene])
