"""Hygiene checks on the raw assets.

Validation itself runs inside ingestion, before anything is published (failing rows must
be quarantined, failing batches rejected). These checks report what it found in this run,
one per entity, from quality.validation_results and quality.ingestion_log: an ERROR
blocks every dbt model, a WARN is published and flagged. Each failure also goes to the
alert log.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from ingestion.config import PipelineConfig
from ingestion.schema import CORE_ENTITIES
from ingestion.warehouse import QUALITY_SCHEMA, connect
from orchestration.defs.ingest.assets import raw_key
from orchestration.lib.alerts import Alert, append_alert_log
from orchestration.lib.pipeline import PipelineResource

# Freshness concerns the whole landing; it reports on opportunities, which every mart reads.
_FRESHNESS = ("opportunities", "landing_freshness")


@dataclass(frozen=True)
class _Finding:
    """A failed rule or a rejected file, as the check reports it."""

    severity: str  # error | warn
    message: str
    rows: int
    examples: tuple[str, ...]


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            f"{entity}_hygiene",
            asset=raw_key(entity),
            blocking=True,
            description=(
                f"Great Expectations suite on the {entity} of every new batch (required "
                f"values, types, value sets, ranges, formats, temporal order, references), "
                f"rejected batches, quarantined rows and batch volume."
            ),
        )
        for entity in CORE_ENTITIES
    ]
    + [
        dg.AssetCheckSpec(
            _FRESHNESS[1],
            asset=raw_key(_FRESHNESS[0]),
            blocking=True,
            description="The newest published batch is younger than "
            "quality.freshness_max_age_hours at as_of.",
        )
    ],
)
def raw_hygiene(
    context: dg.AssetCheckExecutionContext, pipeline: PipelineResource
) -> Iterator[dg.AssetCheckResult]:
    cfg = pipeline.settings()
    con = connect(cfg.warehouse, read_only=True, memory_limit=cfg.memory_limit)
    try:
        results = con.execute(
            f"""SELECT entity, rule, severity, success, coalesce(unexpected_count, 0),
                       examples, message, source_file
                FROM {QUALITY_SCHEMA}.validation_results WHERE run_id = ?
                ORDER BY entity, rule, source_file""",
            [context.run.run_id],
        ).fetchall()
        files = con.execute(
            f"""SELECT entity, status, input_rows, loaded_rows, quarantined_rows,
                       duplicate_rows, rejected_rows, reasons, source_file
                FROM {QUALITY_SCHEMA}.ingestion_log WHERE run_id = ? ORDER BY source_file""",
            [context.run.run_id],
        ).fetchall()
    finally:
        con.close()
    status = {f[8]: f[1] for f in files}
    for entity in CORE_ENTITIES:
        # A failed ERROR rule blocks only through its batch's rejection: in a published
        # batch its rows were quarantined and the rest published, which is flagged (WARN).
        findings = [
            _Finding(
                "error" if status.get(source_file) == "rejected" and sev == "error" else "warn",
                msg,
                count,
                tuple(json.loads(ex or "[]")),
            )
            for e, rule, sev, ok, count, ex, msg, source_file in results
            if e == entity and not ok and rule != "landing.freshness"
        ]
        entity_files = [f for f in files if f[0] == entity]
        for f in entity_files:
            if f[1] == "rejected":
                findings += [_Finding("error", r, 0, ()) for r in json.loads(f[7])]
        counts = {
            name: sum(f[n] for f in entity_files)
            for n, name in enumerate(
                (
                    "input_rows",
                    "loaded_rows",
                    "quarantined_rows",
                    "duplicate_rows",
                    "rejected_rows",
                ),
                start=2,
            )
        }
        yield _result(cfg, context.run.run_id, entity, f"{entity}_hygiene", findings, counts)
    freshness = [
        _Finding(sev, msg, 0, ())
        for _, rule, sev, ok, _, _, msg, _ in results
        if rule == "landing.freshness" and not ok
    ]
    yield _result(cfg, context.run.run_id, *_FRESHNESS, freshness, {})


def _result(
    cfg: PipelineConfig,
    run_id: str,
    entity: str,
    check: str,
    findings: list[_Finding],
    counts: dict[str, int],
) -> dg.AssetCheckResult:
    blocking = any(f.severity == "error" for f in findings)
    # Reasons repeat when several files of a rejected batch share one cause.
    description = "\n".join(dict.fromkeys(f.message for f in findings)) or None
    if findings:
        append_alert_log(
            cfg.alert_log,
            Alert(
                kind="check_failed" if blocking else "check_warning",
                severity="error" if blocking else "warn",
                title=f"Data quality {'blocked the marts' if blocking else 'warning'}: "
                f"{entity} ({check})",
                message=(description or "")
                + (
                    "\nThe marts were not rebuilt; the published marts are unchanged."
                    if blocking
                    else "\nThe marts were built without any quarantined rows; rows failing WARN "
                    "rules are published and flagged."
                ),
                entity=entity,
                check=check,
                rows=sum(f.rows for f in findings),
                examples=[e for f in findings for e in f.examples][:5],
                run_id=run_id,
                where=f"quality.validation_results, quality.quarantine (run_id '{run_id}')",
            ),
        )
    return dg.AssetCheckResult(
        check_name=check,
        asset_key=raw_key(entity),
        passed=not findings,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={**counts, "failed_rules_or_files": len(findings)},
    )


defs = dg.Definitions(asset_checks=[raw_hygiene])
