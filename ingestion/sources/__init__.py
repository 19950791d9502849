"""Source adapters: a CRM's own export files → the canonical landing the loader reads.

Each adapter is one module (``salesforce``, ``hubspot``, ``mapping``) or package
(``pipedrive``) with ``convert(batch, spec) -> Conversion`` and ``DEFAULT_STAGE_LABELS``.
``convert_landing`` runs an adapter over every batch folder of a source's landing
directory and writes the canonical files, one folder per batch, under the warehouse's
directory; the loader then ingests those like any canonical landing (validation,
quarantine, supersede, lineage).
``load_sources`` does this for every source of a config with an engine's loader and
recorder (DuckDB's here, ``ingestion.spark.pipeline``'s on Spark), so both engines load
the same batches and account for the same export rows.

A batch is converted once: its canonical folder records a fingerprint of the export
files (names, sizes, modification times) of it and of every earlier batch, and of the
adapter's settings, and is converted again only when they change. Its ids are
namespaced by the source's name (``salesforce:0065g00000AbCdE``), so several CRMs can
load into one warehouse.

Every row of a batch's export files is accounted for (``ingestion.sources.reconcile``):
read = converted + set aside with a reason, kept in the batch's notes file and recorded
in ``quality.source_reconciliation`` by each run that loads the batch. An optional
entity the files cannot fill a required column of is set aside there, not written, so
it cannot reject the batch's deals.

May import: duckdb and the rest of ``ingestion`` (the adapters: schema, landing, config,
errors; this module also the loader, to load the batches it converted). Nothing outside
this package imports an adapter module directly.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb

from ingestion.config import PipelineConfig, SourceSpec
from ingestion.errors import ConfigError
from ingestion.landing.layout import batch_folders, check_batch_links, settled_batches
from ingestion.loader import IngestionReport, ingest
from ingestion.schema import ENTITIES
from ingestion.sources.export import Conversion, ExportBatch, quote, sql_str
from ingestion.sources.notes import group_notes
from ingestion.sources.reconcile import BatchRecord, read_batch, record, write_entities
from ingestion.stages import StageMap

ADAPTERS = ("salesforce", "hubspot", "pipedrive", "mapping")
# Bumped when an adapter's output changes, so converted batches are converted again.
CONVERTER_VERSION = "7"
_FINGERPRINT = ".fingerprint"
NOTES_FILE = "_conversion.json"  # "_" files are not landing files to the loader


def adapter(kind: str) -> ModuleType:
    if kind not in ADAPTERS:
        raise ConfigError(f"unknown source kind {kind!r}; choose one of {', '.join(ADAPTERS)}.")
    return importlib.import_module(f"ingestion.sources.{kind}")


def default_stage_labels(spec: SourceSpec) -> dict[str, str]:
    """The adapter's mapping of its CRM's standard stage labels (the config's win)."""
    if not spec.is_adapter:
        return {}
    module = adapter(spec.kind)
    if spec.kind == "mapping":
        return module.stage_labels(spec)
    return dict(module.DEFAULT_STAGE_LABELS)


def converted_dir(warehouse: Path, spec: SourceSpec) -> Path:
    """Where a source's canonical batches are written: beside the warehouse, in a folder
    of its own for this warehouse, this source and this landing directory:
    ``converted/<warehouse file>/<source>-<hash of the landing's resolved path>``.

    The loader loads every batch of that folder, so a folder shared by two warehouses
    kept side by side, or by one warehouse fed from two landings, would load one's
    exports into the other. The folders of earlier versions (``converted/<source>/``) are
    never read: they only wait to be deleted."""
    landing = hashlib.sha256(str(spec.landing_dir.resolve()).encode()).hexdigest()[:12]
    return warehouse.parent / "converted" / warehouse.name / f"{spec.name}-{landing}"


def convert_landing(
    spec: SourceSpec,
    out_root: Path,
    until_batch: str | None = None,
    converted: list[str] | None = None,
) -> list[str]:
    """Convert every batch not converted yet (up to ``until_batch``, by name); returns the
    notes of the new conversions, and appends the batches converted to ``converted``."""
    module = adapter(spec.kind)
    out_root.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    previous = ""
    for folder in batch_folders(spec.landing_dir):
        if until_batch is not None and folder.name > until_batch:
            break
        # A link to outside the landing is refused before even its size is looked at.
        check_batch_links(spec.landing_dir, folder)
        target = out_root / folder.name
        # Chained: an adapter may read earlier batches (Pipedrive's stage names, a deal's
        # first stage change), so a change there converts the later batches again too.
        fingerprint = previous = _fingerprint(folder, spec, previous)
        marker = target / _FINGERPRINT
        if marker.exists() and marker.read_text(encoding="utf-8") == fingerprint:
            continue
        tmp = out_root / f".{folder.name}.converting"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            batch = ExportBatch(con, folder, spec.date_order)
            conversion: Conversion = module.convert(batch, spec)
            # An optional entity its files cannot fill is left out (noted), and every row
            # of the batch's export files is accounted for (ingestion.sources.reconcile).
            tallies = write_entities(
                con, batch, conversion, tmp, lambda c, q, e, p: _write(c, q, e, spec.name, p)
            )
        finally:
            con.close()
        (tmp / NOTES_FILE).write_text(
            json.dumps(
                {
                    "source": spec.name,
                    "batch": folder.name,
                    "notes": conversion.notes,
                    "reconciliation": [t.as_dict() for t in tallies],
                }
            ),
            encoding="utf-8",
        )
        (tmp / _FINGERPRINT).write_text(fingerprint, encoding="utf-8")
        # The batch's canonical folder is replaced whole: the loader never sees half of it.
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        notes += [f"{spec.name} {folder.name}: {n}" for n in conversion.notes]
        if converted is not None:
            converted.append(folder.name)
    return notes


def _is_id(entity: str, column: str) -> bool:
    names = ENTITIES[entity].column_names
    return column in names and (column.endswith("_id") or column == "changed_by")


def _write(con: duckdb.DuckDBPyConnection, sql: str, entity: str, ns: str, path: Path) -> int:
    """Write the entity's canonical file, ids namespaced; returns the rows written."""
    columns = [r[0] for r in con.execute(f"DESCRIBE ({sql})").fetchall()]
    items = [
        f"CASE WHEN {quote(c)} IS NULL THEN NULL ELSE {sql_str(ns + ':')} || {quote(c)} END "
        f"AS {quote(c)}"
        if _is_id(entity, c)
        else quote(c)
        for c in columns
    ]
    # Sorted, so converting the same export again writes the same bytes: the loader then
    # sees a file it already has, instead of reloading a batch whose rows came out in
    # another order (DuckDB's parallel reads and joins do not keep one).
    (count,) = con.execute(
        f"COPY (SELECT {', '.join(items)} FROM ({sql}) ORDER BY ALL) "
        f"TO {sql_str(str(path))} (HEADER, DELIMITER ',')"
    ).fetchone()
    return int(count)


def _fingerprint(folder: Path, spec: SourceSpec, previous: str) -> str:
    digest = hashlib.sha256(previous.encode())
    digest.update(f"{CONVERTER_VERSION}|{spec.kind}|{spec.name}|{spec.date_order}".encode())
    if spec.mapping is not None and spec.mapping.is_file():
        digest.update(spec.mapping.read_bytes())
    for path in sorted(folder.iterdir()):
        if path.is_file():
            st = path.stat()
            digest.update(f"|{path.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def stage_map(cfg: PipelineConfig) -> StageMap:
    """The config's stage map plus each adapter's default labels (the config's win)."""
    names = {s.stage for s in cfg.stage_map.stages}
    labels: dict[str, str] = {}
    for spec in cfg.sources:
        # A default pointing at a stage the config's own stage list dropped is left out.
        labels |= {k: v for k, v in default_stage_labels(spec).items() if v in names}
    labels |= dict(cfg.stage_map.labels or {})
    return StageMap(stages=cfg.stage_map.stages, labels=labels)


# What loads one source's canonical batches into an engine's raw tables: (the source,
# its canonical landing, the last batch to load or None, the batches to load or None: all).
LoadBatches = Callable[[SourceSpec, Path, str | None, set[str] | None], IngestionReport]
# What records the converted batches' tallies for a run; returns the findings' messages.
RecordBatches = Callable[[str, list[BatchRecord]], list[str]]


def loader_settings(
    cfg: PipelineConfig, spec: SourceSpec, stages: StageMap, run_id: str
) -> dict[str, Any]:
    """What the config says to a loader about one source (the keyword arguments of
    ``ingestion.loader.ingest`` and ``ingestion.spark.loader.ingest_spark``)."""
    return {
        "stage_map": stages,
        "source": spec.name,
        "source_timezone": cfg.source_timezone,
        "severities": cfg.quality.severity,
        "quarantine_max_share": cfg.quality.quarantine_max_share,
        "run_id": run_id,
        "full_export": spec.full_export,
        "value_labels": cfg.value_labels,
    }


def ingest_sources(
    con: duckdb.DuckDBPyConnection,
    cfg: PipelineConfig,
    *,
    run_id: str,
    until_batch: str | None = None,
    settle_seconds: float | None = None,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> IngestionReport:
    """Convert (CRM exports) and load every source of the config into the DuckDB
    warehouse, in order (:func:`load_sources`)."""
    stages = stage_map(cfg)

    def load(
        spec: SourceSpec, landing: Path, until: str | None, batches: set[str] | None
    ) -> IngestionReport:
        from ingestion.hygiene.pool import default_workers

        settings = loader_settings(cfg, spec, stages, run_id)
        workers = cfg.quality.gate_workers or default_workers()
        return ingest(
            con, landing, until_batch=until, batches=batches, gate_workers=workers,
            memory_limit=cfg.memory_limit, **settings,
        )  # fmt: skip

    return load_sources(
        cfg,
        load,
        lambda source, records: record(con, source, records, run_id),
        until_batch=until_batch,
        settle_seconds=settle_seconds,
        log=log,
        warn=warn,
    )


def load_sources(
    cfg: PipelineConfig,
    load: LoadBatches,
    record_batches: RecordBatches,
    *,
    until_batch: str | None = None,
    settle_seconds: float | None = None,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
    engine_note: str = "",
) -> IngestionReport:
    """Convert (CRM exports) and load every source of the config, in order, with the
    engine's ``load`` and ``record_batches`` (DuckDB's or Spark's): which batches each
    source loads and what is recorded of its exports are the same on every engine.

    ``until_batch`` is a sensor run's batch: ``<batch>`` with one source, or
    ``<source>/<batch>``; the source it names loads batches up to it only. With
    ``settle_seconds`` (scheduled runs), a batch whose files changed more recently than
    that is still being written: it and the batches after it wait for a later run.
    """
    target_source, _, target_batch = (until_batch or "").rpartition("/")
    combined = IngestionReport()
    for spec in cfg.sources:
        until = target_batch if target_batch and target_source in ("", spec.name) else None
        if settle_seconds is not None and spec.kind != "synthetic":
            _, writing = settled_batches(spec.landing_dir, settle_seconds, time.time())
            if writing:
                names = [f.name for f in batch_folders(spec.landing_dir)]
                waiting = [n for n in names if n >= writing[0]]
                warn(
                    f"{spec.name}: left for a later run, still being written: {', '.join(waiting)}"
                )
                # Every batch before the first one still being written, and none after.
                before = [n for n in names if n < writing[0]]
                limit = before[-1] if before else ""
                until = limit if until is None else min(until, limit)
        landing = spec.landing_dir
        exported: set[str] | None = None  # the converted batches to load; None: all
        if spec.is_adapter:
            landing = converted_dir(cfg.warehouse, spec)
            # Only those whose export is still in the landing: a converted batch outlives
            # its export (removed, or renamed), and must not be loaded without it.
            exported = {folder.name for folder in batch_folders(spec.landing_dir)}
            # What an export lacked changes what the marts can say: the user must see it.
            converted: list[str] = []
            for line in group_notes(convert_landing(spec, landing, until, converted)):
                warn(line)
        report = load(spec, landing, until, exported)
        log(f"ingested {spec.name} ({spec.landing_dir}){engine_note}: {report}")
        if spec.is_adapter:
            # Beside the loader's log, the adapter's: every export row read, converted or
            # set aside, for each batch loaded now, or converted now with nothing new to
            # load (all its entities set aside). A batch converted again whose files were
            # published before (a new converter version) is not news: not recorded again.
            published = {f.partition("/")[0] for f in report.skipped_files}
            loaded = {r.file.batch_id for r in report.files} | (set(converted) - published)
            records = [read_batch(landing / b, NOTES_FILE) for b in sorted(loaded)]
            # Its findings are WARNs of the source_reconciliation check, which alerts.
            for finding in record_batches(spec.name, [r for r in records if r]):
                log(finding)
        combined.files += report.files
        combined.skipped_files += report.skipped_files
        combined.table_rows = report.table_rows
    return combined
