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
from typing import NamedTuple

import dagster as dg

from ingestion.config import PipelineConfig
from ingestion.schema import CORE_ENTITIES
from ingestion.sources.reconcile import RULES as SOURCE_RULES
from ingestion.warehouse import QUALITY_SCHEMA, connect
from orchestration.defs.ingest.assets import raw_key
from orchestration.lib.alerts import Alert, send_alert
from orchestration.lib.pipeline import PipelineResource, WarehouseWriter

# Freshness concerns the whole landing; it reports on opportunities, which every mart reads.
_FRESHNESS = ("opportunities", "landing_freshness")
# So does the reconciliation of the CRM export files (ingestion.sources.reconcile): its
# findings concern the batch as a whole, a deals file or a side file.
_SOURCES = ("opportunities", "source_reconciliation")


_COUNTS = ("input_rows", "loaded_rows", "quarantined_rows", "duplicate_rows", "rejected_rows")


class _RuleResult(NamedTuple):
    entity: str
    rule: str
    severity: str
    success: bool
    unexpected_count: int
    examples: str | None
    message: str
    source_file: str | None


class _FileLog(NamedTuple):
    entity: str
    source_file: str
    status: str
    reasons: str
    input_rows: int
    loaded_rows: int
    quarantined_rows: int
    duplicate_rows: int
    rejected_rows: int


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
        ),
        dg.AssetCheckSpec(
            _SOURCES[1],
            asset=raw_key(_SOURCES[0]),
            blocking=True,
            description="Every CRM export batch loaded converts into some opportunity, and no "
            "optional export file is set aside for lacking a column its entity requires "
            "(quality.source_reconciliation).",
        ),
    ],
)
def raw_hygiene(
    context: dg.AssetCheckExecutionContext,
    pipeline: PipelineResource,
    warehouse_writer: WarehouseWriter,  # held for the whole run: no writer in between
) -> Iterator[dg.AssetCheckResult]:
    cfg = pipeline.settings()
    run_id = context.run.run_id
    results, files = _run_records(cfg, run_id)
    yield from _judge(context, cfg, results, files)


def _run_records(cfg: PipelineConfig, run_id: str) -> tuple[list[_RuleResult], list[_FileLog]]:
    """This run's rule results and file log, from the engine's quality.* tables."""
    if cfg.engine == "spark":
        from ingestion.spark.pipeline import run_records

        rule_rows, file_rows = run_records(cfg, run_id)
        return [_RuleResult(*r) for r in rule_rows], [_FileLog(*r) for r in file_rows]
    con = connect(cfg.warehouse, read_only=True, memory_limit=cfg.memory_limit)
    try:
        results = [
            _RuleResult(*row)
            for row in con.execute(
                f"""SELECT entity, rule, severity, success, coalesce(unexpected_count, 0),
                           examples, message, source_file
                    FROM {QUALITY_SCHEMA}.validation_results WHERE run_id = ?
                    ORDER BY entity, rule, source_file""",
                [run_id],
            ).fetchall()
        ]
        files = [
            _FileLog(*row)
            for row in con.execute(
                f"""SELECT entity, source_file, status, reasons, {", ".join(_COUNTS)}
                    FROM {QUALITY_SCHEMA}.ingestion_log WHERE run_id = ?
                    ORDER BY source_file""",
                [run_id],
            ).fetchall()
        ]
    finally:
        con.close()
    return results, files


def _judge(
    context: dg.AssetCheckExecutionContext,
    cfg: PipelineConfig,
    results: list[_RuleResult],
    files: list[_FileLog],
) -> Iterator[dg.AssetCheckResult]:
    rejected = {f.source_file for f in files if f.status == "rejected"}
    for entity in CORE_ENTITIES:
        # A failed ERROR rule blocks only through its batch's rejection: in a published
        # batch its rows were quarantined and the rest published, which is flagged (WARN).
        findings = [
            _Finding(
                "error" if r.source_file in rejected and r.severity == "error" else "warn",
                r.message,
                r.unexpected_count,
                tuple(json.loads(r.examples or "[]")),
            )
            for r in results
            if r.entity == entity
            and not r.success
            and r.rule != "landing.freshness"
            and r.rule not in SOURCE_RULES
        ]
        entity_files = [f for f in files if f.entity == entity]
        findings += [
            _Finding("error", reason, 0, ())
            for f in entity_files
            if f.status == "rejected"
            for reason in json.loads(f.reasons)
        ]
        counts = {name: sum(getattr(f, name) for f in entity_files) for name in _COUNTS}
        yield _result(context, cfg, entity, f"{entity}_hygiene", findings, counts)
    freshness = [
        _Finding(r.severity, r.message, 0, ())
        for r in results
        if r.rule == "landing.freshness" and not r.success
    ]
    yield _result(context, cfg, *_FRESHNESS, freshness, {})
    sources = [
        _Finding(r.severity, r.message, 0, ())
        for r in results
        if r.rule in SOURCE_RULES and not r.success
    ]
    yield _result(
        context,
        cfg,
        *_SOURCES,
        sources,
        {},
        subject="CRM export files",
        tables="quality.source_reconciliation, quality.validation_results",
        warn_effect="the rest of each batch is published.",
    )


def _result(
    context: dg.AssetCheckExecutionContext,
    cfg: PipelineConfig,
    entity: str,
    check: str,
    findings: list[_Finding],
    counts: dict[str, int],
    subject: str | None = None,
    tables: str = "quality.validation_results, quality.quarantine",
    warn_effect: str = "quarantined rows stay out of raw.*, rows failing WARN rules are "
    "published and flagged.",
) -> dg.AssetCheckResult:
    """``subject``: what the alert is about, when not the entity the check is attached
    to; ``tables``: where to look; ``warn_effect``: what a WARN finding leaves published."""
    blocking = any(f.severity == "error" for f in findings)
    # Reasons repeat when several files of a rejected batch share one cause.
    description = "\n".join(dict.fromkeys(f.message for f in findings)) or None
    run_id = context.run.run_id
    if findings:
        send_alert(
            cfg,
            Alert(
                kind="check_failed" if blocking else "check_warning",
                severity="error" if blocking else "warn",
                title=f"Data quality {'blocked the marts' if blocking else 'warning'}: "
                f"{subject or entity} ({check})",
                message=(description or "")
                + (
                    "\nThe marts were not rebuilt; the published marts are unchanged."
                    if blocking
                    # Sent before dbt runs: whether the marts get built depends on the
                    # other checks of the run, so this alert must not claim they were.
                    else f"\nThis finding does not block the marts: {warn_effect}"
                ),
                entity=entity,
                check=check,
                rows=sum(f.rows for f in findings),
                examples=[e for f in findings for e in f.examples][:5],
                run_id=run_id,
                where=f"{tables} (run_id '{run_id}')",
            ),
            log=context.log,
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
