"""The generic mapping adapter: any CRM's CSV exports, described by a YAML mapping file.

For a CRM without an adapter of its own (a home-grown one, a spreadsheet), the user writes
which file is which canonical entity and how its columns, values and dates translate.
``docs/mapping.md`` walks through an example; the format in short::

    date_order: dmy              # report-style dates like 05/01/2026 are day-first
    date_format: "%d.%m.%Y"      # default strptime format(s) of every date/time column
    full_export: false           # true: a record missing from a later export was deleted
    delimiter: ","               # the files' field separator
    number_format: {decimal: ",", thousands: "."}   # 12.500,00 → 12500.00
    stage_labels: {"Lead In": prospecting, "Demo": meeting, "Won": closed_won}
    entities:
      opportunities:
        file: deals.csv          # the file's name (any case), or a glob: deals_*.csv
        optional: false          # true: a batch may leave the file out (a note, no error)
        columns: {opportunity_id: Deal ID, amount: Value, stage: Stage}  # canonical: source
        optional_columns: [Lost reason]   # source columns a batch's file may lack
        constants: {currency: USD}        # where the column is absent or empty
        values: {lead_source: {"Web form": website, "*": other}}  # "*": any other value
        status: {column: Status, won: [Won], lost: [Lost, Abandoned]}  # is_won, is_closed
        dates: {Created: "%d.%m.%Y %H:%M"}  # per source column; a list tries each in turn
        stage_entered: {columns: {Created: Lead In, "Entered Demo": Demo, "Won on": Won}}
      activities:                # a list: several files make one entity
        - {file: calls.csv, columns: {...}, constants: {activity_type: call}}
        - {file: mails.csv, columns: {...}, constants: {activity_type: email}}
      quotas:
        file: targets.csv
        columns: {owner_id: Owner, month: Month, amount: Target}
        dates: {Month: "%m.%Y"}  # a month column may have no day: 03.2026 is 2026-03-01

The stage label map (``stage_labels``, and ``values: stage`` of opportunities or
stage_changes, which mean the same) is not applied here: it goes to the pipeline's stage
map (``stage_labels(spec)``), so ``raw.*.stage`` keeps the CRM's own label like every
adapter's. Every other value map, format and constant is applied in SQL; a value that no
map, format or fallback recognises passes unchanged, so the hygiene gate quarantines its
row naming the value instead of it becoming a silent null.

Mistakes in the mapping file are ``ConfigError``s naming the file, the key and what to
write instead; the file is checked whole before any batch is read, and each batch's files
against it (a missing file or column names the batch and what is there).

Why one module (~780 lines): the mapping file's format (its dataclasses and checker) and
the SQL it compiles to are the two halves of one contract: every key the checker accepts
is one a SQL builder handles. Kept together, a change of the format is one reviewed diff.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import yaml

from ingestion.config import SourceSpec
from ingestion.errors import ConfigError
from ingestion.landing.layout import batch_folders
from ingestion.schema import (
    ACTIVITY_TYPES,
    CHANNELS,
    ENTITIES,
    LEAD_STATUSES,
    Column,
)
from ingestion.sources.export import (
    DATE_ORDERS,
    Conversion,
    Export,
    ExportBatch,
    bool_sql,
    quote,
    sql_str,
    timestamp_sql,
)
from ingestion.stages import CATEGORIES, DEFAULT_STAGES

# A home-grown CRM has no standard labels: every label comes from the mapping file.
DEFAULT_STAGE_LABELS: dict[str, str] = {}

_TOP_KEYS = (
    "entities",
    "stage_labels",
    "date_format",
    "date_order",
    "full_export",
    "delimiter",
    "number_format",
)
_ENTITY_KEYS = (
    "file",
    "optional",
    "columns",
    "optional_columns",
    "constants",
    "values",
    "status",
    "dates",
    "stage_entered",
)
_STATUS_KEYS = ("column", "won", "lost", "open")
_STAGE_ENTERED_KEYS = ("opportunity_id", "columns")
_STAGES = tuple(s.stage for s in DEFAULT_STAGES)
# Canonical value sets a value map must land in (the gate checks the same sets).
_VALUE_SETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("leads", "channel"): CHANNELS,
    ("leads", "status"): LEAD_STATUSES,
    ("activities", "activity_type"): ACTIVITY_TYPES,
    ("stages", "category"): CATEGORIES,
    ("stages", "stage"): _STAGES,
}
_OTHERWISE = "*"  # the value-map key for "any other value"
# Columns that hold a month, not a day: their formats need no day (%m.%Y reads 03.2026 as
# 2026-03-01), and an ISO year-month (2026-03) is read as the month's first day. A date
# after the 1st passes unchanged: the gate quarantines it (quotas.month_first_day) rather
# than this adapter guessing which month a period that does not start on the 1st is.
_MONTH_COLUMNS = frozenset({("quotas", "month")})


def _norm(text: str) -> str:
    """How source names and values are compared: case and runs of spaces never matter."""
    return " ".join(str(text).split()).lower()


# SQL twin of _norm, for values compared inside the query.
def _norm_sql(expr: str) -> str:
    return f"lower(regexp_replace(trim({expr}), '\\s+', ' ', 'g'))"


@dataclass(frozen=True)
class StatusMap:
    column: str
    won: tuple[str, ...]  # normalised
    lost: tuple[str, ...]
    open: tuple[str, ...] | None  # None: every other value is open


@dataclass(frozen=True)
class EntityMap:
    """One file (or glob) of the export and how it becomes one canonical entity."""

    entity: str
    where: str  # "entities.opportunities", "entities.activities[2]": for messages
    file: str
    optional: bool = False
    columns: dict[str, str] = field(default_factory=dict)  # canonical → source column
    optional_columns: frozenset[str] = frozenset()  # normalised source columns
    constants: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # canonical → map
    status: StatusMap | None = None
    dates: dict[str, tuple[str, ...]] = field(default_factory=dict)  # norm source → fmts
    stage_entered: dict[str, str] = field(default_factory=dict)  # source column → label
    stage_entered_id: str | None = None  # source column of the opportunity id

    def sources(self) -> list[str]:
        """Every source column this file's mapping reads."""
        cols = list(self.columns.values()) + list(self.stage_entered)
        if self.status:
            cols.append(self.status.column)
        if self.stage_entered_id:
            cols.append(self.stage_entered_id)
        return list(dict.fromkeys(cols))

    def matches(self, name: str) -> bool:
        pattern = self.file.lower()
        if any(ch in pattern for ch in "*?["):
            return fnmatch.fnmatchcase(name.lower(), pattern)
        return name.lower() == pattern or Path(name).stem.lower() == pattern


@dataclass(frozen=True)
class MappingFile:
    path: Path
    entities: tuple[EntityMap, ...]
    stage_labels: dict[str, str]
    date_formats: tuple[str, ...] = ()
    date_order: str | None = None
    full_export: bool = False
    delimiter: str = ","
    decimal: str | None = None
    thousands: str | None = None


# ---------------------------------------------------------------------------------------
# Reading and checking the mapping file
# ---------------------------------------------------------------------------------------


class _Checker:
    """Builds the ConfigErrors: each names the file, the key, and what to write instead."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {problem}")

    def unknown(
        self, where: str, what: str, got: str, known: tuple[str, ...] | list[str]
    ) -> ConfigError:
        close = difflib.get_close_matches(got, known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return self.fail(where, f"unknown {what} {got!r}; {hint}write one of: {', '.join(known)}.")

    def mapping(self, value: Any, where: str, example: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, like {example}.")
        return value

    def keys(self, value: dict[Any, Any], where: str, known: tuple[str, ...]) -> None:
        for key in value:
            if str(key) not in known:
                raise self.unknown(where, "setting", str(key), known)

    def text(self, value: Any, where: str) -> str:
        """A scalar as the text it stands for. YAML reads unquoted yes/no/on/off/true/false
        as booleans and 0.10 as a number, which would not compare with the CRM's text."""
        if isinstance(value, bool):
            raise self.fail(
                where,
                f"{value!r} was read as a boolean: YAML turns unquoted yes/no/on/off/true/"
                f'false into one; quote the CRM\'s text, e.g. "Yes".',
            )
        if value is None or isinstance(value, dict | list):
            raise self.fail(where, "must be a text value.")
        return str(value)

    def texts(self, value: Any, where: str) -> list[str]:
        items = value if isinstance(value, list) else [value]
        return [self.text(v, where) for v in items]


def load_mapping(path: Path | None) -> MappingFile:
    """Read and check a mapping file whole (ConfigError on the first mistake)."""
    if path is None:
        raise ConfigError("source kind mapping needs a mapping file: --source mapping:FILE.")
    if not path.is_file():
        raise ConfigError(f"the mapping file {path} does not exist.")
    chk = _Checker(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from exc
    data = chk.mapping(data, "top level", "entities: {opportunities: {file: deals.csv, ...}}")
    chk.keys(data, "top level", _TOP_KEYS)
    if "entities" not in data:
        raise chk.fail("top level", "needs entities: (which file is which entity).")
    date_order = data.get("date_order")
    if date_order is not None and date_order not in DATE_ORDERS:
        raise chk.fail("date_order", f"{date_order!r} is neither mdy nor dmy; write dmy or mdy.")
    full_export = data.get("full_export", False)
    if not isinstance(full_export, bool):
        raise chk.fail("full_export", "must be true or false.")
    delimiter = chk.text(data.get("delimiter", ","), "delimiter")
    if len(delimiter) != 1 or delimiter in '"\n\r':
        raise chk.fail("delimiter", f"{delimiter!r} is not one character; write e.g. ';'.")
    decimal, thousands = _number_format(chk, data.get("number_format"))
    date_formats = tuple(chk.texts(data.get("date_format", []), "date_format"))
    for fmt in date_formats:
        _check_format(chk, "date_format", fmt)
    entities_raw = chk.mapping(
        data["entities"], "entities", "{opportunities: {file: deals.csv, columns: {...}}}"
    )
    entities: list[EntityMap] = []
    stage_labels = _stage_labels(chk, data.get("stage_labels") or {}, "stage_labels")
    for name, spec in entities_raw.items():
        name = str(name)
        if name not in ENTITIES:
            raise chk.unknown("entities", "entity", name, list(ENTITIES))
        items = spec if isinstance(spec, list) else [spec]
        if not items:
            raise chk.fail(f"entities.{name}", "is an empty list; give at least one file.")
        for i, item in enumerate(items, start=1):
            where = f"entities.{name}" + (f"[{i}]" if isinstance(spec, list) else "")
            em, labels = _entity(chk, name, where, item)
            entities.append(em)
            stage_labels |= labels
    if not any(e.entity == "opportunities" for e in entities):
        raise chk.fail("entities", "needs opportunities: the funnel is built from them.")
    return MappingFile(
        path=path,
        entities=tuple(entities),
        stage_labels=stage_labels,
        date_formats=date_formats,
        date_order=date_order,
        full_export=full_export,
        delimiter=delimiter,
        decimal=decimal,
        thousands=thousands,
    )


def _number_format(chk: _Checker, raw: Any) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    spec = chk.mapping(raw, "number_format", '{decimal: ",", thousands: "."}')
    chk.keys(spec, "number_format", ("decimal", "thousands"))
    decimal = chk.text(spec.get("decimal", "."), "number_format.decimal")
    thousands = chk.text(spec.get("thousands", ""), "number_format.thousands")
    if (
        decimal not in (".", ",")
        or thousands not in ("", ".", ",", " ", "'")
        or (decimal == thousands)
    ):
        raise chk.fail(
            "number_format",
            f"decimal {decimal!r} with thousands {thousands!r} is not a number format; "
            f'write decimal: "," or "." and thousands: ".", ",", " ", "\'" or "" (another '
            f"character than the decimal one).",
        )
    return decimal, thousands


def _stage_labels(chk: _Checker, raw: Any, where: str) -> dict[str, str]:
    labels = chk.mapping(raw, where, '{"Demo scheduled": meeting}')
    out = {}
    for label, stage in labels.items():
        text = chk.text(label, f"{where}: label {label!r}")
        target = chk.text(stage, f"{where}.{text}")
        if target not in _STAGES:
            close = difflib.get_close_matches(target, _STAGES, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise chk.fail(
                f"{where}.{text}",
                f"{target!r} is not a canonical stage; {hint}write one of "
                f"{', '.join(_STAGES)} (a stage of your config's own stages: list is mapped "
                f"under stage_labels: in the config instead).",
            )
        out[text] = target
    return out


def _check_format(chk: _Checker, where: str, fmt: str, *, month_only: bool = False) -> None:
    """A strptime format DuckDB accepts, with a day, a month and a year in it (a month and
    a year for a month column: strptime then gives the month's first day)."""
    try:
        with duckdb.connect() as con:
            con.execute("SELECT try_strptime('', ?)", [fmt])
    except duckdb.Error as exc:
        reason = str(exc).split("Error: ", 1)[-1]
        raise chk.fail(
            where, f'{fmt!r} is not a strptime format ({reason}); write e.g. "%d.%m.%Y %H:%M".'
        ) from exc
    has_month = re.search(r"%-?[mbB]|%j", fmt) and re.search(r"%[Yy]", fmt)
    if month_only and not has_month:
        raise chk.fail(
            where,
            f'{fmt!r} has no month and year (%m, %Y); write e.g. "%m.%Y", "%Y-%m" or '
            f'"%b %Y" (or a format with a day, "%d.%m.%Y").',
        )
    if not month_only and not (re.search(r"%-?[dj]", fmt) and has_month):
        raise chk.fail(
            where,
            f'{fmt!r} has no day, month and year (%d, %m, %Y); write e.g. "%d.%m.%Y" '
            f'or "%m/%d/%Y %I:%M %p".',
        )


def _entity(chk: _Checker, entity: str, where: str, raw: Any) -> tuple[EntityMap, dict]:
    spec = chk.mapping(raw, where, "{file: deals.csv, columns: {opportunity_id: Deal ID}}")
    chk.keys(spec, where, _ENTITY_KEYS)
    if "file" not in spec:
        raise chk.fail(where, "needs file: (the export file's name, or a glob like deals_*.csv).")
    canon = ENTITIES[entity].column_names
    types = {c.name: c.type for c in ENTITIES[entity].columns}

    def canonical(name: Any, key: str) -> str:
        name = str(name)
        if name not in canon:
            raise chk.unknown(f"{where}.{key}", f"{entity} column", name, canon)
        return name

    columns = {
        canonical(k, "columns"): chk.text(v, f"{where}.columns.{k}")
        for k, v in chk.mapping(
            spec.get("columns") or {}, f"{where}.columns", "{amount: Value}"
        ).items()
    }
    constants = {}
    for k, v in chk.mapping(
        spec.get("constants") or {}, f"{where}.constants", "{currency: USD}"
    ).items():
        # A constant is a canonical value: true/false stay booleans, as the contract writes.
        constants[canonical(k, "constants")] = (
            ("true" if v else "false")
            if isinstance(v, bool)
            else chk.text(v, f"{where}.constants.{k}")
        )
    optional_cols = frozenset(
        _norm(c) for c in chk.texts(spec.get("optional_columns", []), f"{where}.optional_columns")
    )
    optional = spec.get("optional", False)
    if not isinstance(optional, bool):
        raise chk.fail(f"{where}.optional", "must be true or false.")

    labels: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    for col, vmap in chk.mapping(
        spec.get("values") or {}, f"{where}.values", '{channel: {"Web form": website}}'
    ).items():
        col = canonical(col, "values")
        vw = f"{where}.values.{col}"
        if col == "stage" and entity in ("opportunities", "stage_changes"):
            labels |= _stage_labels(chk, vmap, vw)
            continue
        vmap = chk.mapping(vmap, vw, '{"CRM value": canonical value}')
        allowed = _VALUE_SETS.get((entity, col)) or (
            ("true", "false") if types[col] == "boolean" else None
        )
        out = {}
        for src, target in vmap.items():
            key = chk.text(src, f"{vw}: key {src!r}")
            value = (
                ("true" if target else "false")
                if isinstance(target, bool)
                else chk.text(target, f"{vw}.{key}")
            )
            if allowed and value.lower() not in allowed:
                raise chk.unknown(f"{vw}.{key}", f"{col} value", value, list(allowed))
            out[key if key == _OTHERWISE else _norm(key)] = value
        if col not in columns:
            raise chk.fail(vw, f"maps values of {col}, which columns: does not map; add {col}.")
        values[col] = out

    status = None
    if "status" in spec:
        if entity != "opportunities":
            raise chk.fail(
                f"{where}.status",
                "status: (won/lost) is for opportunities; map this entity's status column "
                "under columns: and values: instead.",
            )
        status = _status(chk, spec["status"], f"{where}.status")
        for col in ("is_won", "is_closed"):
            if col in columns:
                raise chk.fail(
                    f"{where}.columns.{col}",
                    "is set by status: already; remove it from columns: (or drop status:).",
                )

    entered: dict[str, str] = {}
    entered_id = None
    if "stage_entered" in spec:
        sw = f"{where}.stage_entered"
        if entity != "opportunities":
            raise chk.fail(sw, "goes under opportunities (the file with the deal's dates).")
        se = chk.mapping(spec["stage_entered"], sw, '{columns: {"Entered Demo": Demo}}')
        chk.keys(se, sw, _STAGE_ENTERED_KEYS)
        cols = chk.mapping(se.get("columns"), f"{sw}.columns", '{"Entered Demo": Demo}')
        if not cols:
            raise chk.fail(f"{sw}.columns", "is empty; list the stage-entered date columns.")
        entered = {
            chk.text(k, f"{sw}.columns"): chk.text(v, f"{sw}.columns.{k}") for k, v in cols.items()
        }
        entered_id = (
            chk.text(se["opportunity_id"], f"{sw}.opportunity_id")
            if ("opportunity_id" in se)
            else None
        )
        if entered_id is None and "opportunity_id" not in columns:
            raise chk.fail(sw, "needs opportunity_id: (the deal's id column).")

    # dates: keyed by the source column (or by the canonical column it is mapped to).
    sources = {_norm(s): s for s in [*columns.values(), *entered]}
    dates: dict[str, tuple[str, ...]] = {}
    for key, fmts in chk.mapping(
        spec.get("dates") or {}, f"{where}.dates", '{Created: "%d.%m.%Y %H:%M"}'
    ).items():
        key = str(key)
        dw = f"{where}.dates.{key}"
        if _norm(key) in sources:
            src = _norm(key)
        elif key in columns:
            src = _norm(columns[key])
        else:
            raise chk.unknown(
                f"{where}.dates",
                "column (dates are keyed by the source column)",
                key,
                sorted(sources.values()),
            )
        targets = [c for c, s in columns.items() if _norm(s) == src]
        wrong = [c for c in targets if types[c] not in ("timestamp", "date")]
        if wrong:
            raise chk.fail(dw, f"{key} is mapped to {wrong[0]}, which is not a date or time.")
        formats = tuple(chk.texts(fmts, dw))
        month_only = all((entity, c) in _MONTH_COLUMNS for c in targets) and bool(targets)
        for fmt in formats:
            _check_format(chk, dw, fmt, month_only=month_only)
        dates[src] = formats

    provided = set(columns) | set(constants) | ({"is_won", "is_closed"} if status else set())
    missing = [c for c in ENTITIES[entity].required_columns if c not in provided]
    if missing:
        raise chk.fail(
            where,
            f"the required column(s) {', '.join(missing)} are not mapped; add them under "
            f"columns: (e.g. {missing[0]}: <your column>).",
        )
    em = EntityMap(
        entity=entity,
        where=where,
        file=chk.text(spec["file"], f"{where}.file"),
        optional=optional,
        columns=columns,
        optional_columns=optional_cols,
        constants=constants,
        values=values,
        status=status,
        dates=dates,
        stage_entered=entered,
        stage_entered_id=entered_id,
    )
    return em, labels


def _status(chk: _Checker, raw: Any, where: str) -> StatusMap:
    spec = chk.mapping(raw, where, "{column: Status, won: [Won], lost: [Lost]}")
    chk.keys(spec, where, _STATUS_KEYS)
    for key in ("column", "won", "lost"):
        if key not in spec:
            raise chk.fail(where, f"needs {key}: (e.g. column: Status, won: [Won], lost: [Lost]).")
    won = tuple(_norm(v) for v in chk.texts(spec["won"], f"{where}.won"))
    lost = tuple(_norm(v) for v in chk.texts(spec["lost"], f"{where}.lost"))
    opened = (
        tuple(_norm(v) for v in chk.texts(spec["open"], f"{where}.open"))
        if "open" in spec
        else None
    )
    both = set(won) & set(lost)
    if both:
        raise chk.fail(where, f"{sorted(both)[0]!r} is both won and lost; keep it in one list.")
    return StatusMap(chk.text(spec["column"], f"{where}.column"), won, lost, opened)


def stage_labels(spec: SourceSpec) -> dict[str, str]:
    """The mapping file's stage labels (the framework puts the config's on top)."""
    return dict(load_mapping(spec.mapping).stage_labels)


# ---------------------------------------------------------------------------------------
# Converting a batch
# ---------------------------------------------------------------------------------------


def convert(batch: ExportBatch, spec: SourceSpec) -> Conversion:
    mp = load_mapping(spec.mapping)
    date_order = mp.date_order or spec.date_order
    conversion = Conversion()
    parts: dict[str, list[str]] = {}
    for em in mp.entities:
        exports = _exports(batch, em, mp, date_order, conversion)
        for ex in exports:
            parts.setdefault(em.entity, []).append(_entity_sql(em, ex, mp))
            # One row per file row (its stage_entered dates are derived rows, no feed).
            conversion.feed(ex, em.entity, parts[em.entity][-1])
            if em.stage_entered:
                parts.setdefault("stage_changes", []).append(_stage_entered_sql(em, ex, mp))
    entities = {entity: _union(sqls) for entity, sqls in parts.items()}
    # With the config's full_export the loader soft-deletes against everything loaded;
    # the mapping file's own setting is honoured here, against the previous batch.
    if mp.full_export and not spec.full_export:
        _mark_deleted(batch, mp, date_order, entities, conversion)
    conversion.entities = entities
    return conversion


def _union(sqls: list[str]) -> str:
    # BY NAME: files of one entity may carry different extra columns.
    return " UNION ALL BY NAME ".join(f"({s})" for s in sqls)


def _exports(
    batch: ExportBatch, em: EntityMap, mp: MappingFile, date_order: str, conv: Conversion
) -> list[Export]:
    """The batch's files for one entry of the mapping, read and checked against it."""
    present = sorted(p for p in batch.folder.iterdir() if p.is_file())
    paths = [p for p in present if em.matches(p.name)]
    if not paths:
        if em.optional:
            conv.notes.append(
                f"no {em.file} in this batch ({em.where} is optional): {em.entity} from it "
                f"not updated."
            )
            return []
        raise ConfigError(
            f"{mp.path}: {em.where}.file: batch {batch.batch_id} has no file {em.file} "
            f"(it holds: {', '.join(p.name for p in present) or 'nothing'}). Correct file:, "
            f"or add optional: true under {em.where} if some exports leave it out."
        )
    exports = []
    for path in paths:
        ex = batch.read_path(path, delimiter=mp.delimiter, date_order=date_order)
        for src in em.sources():
            if ex.has(src):
                continue
            if _norm(src) in em.optional_columns:
                conv.notes.append(
                    f"{path.name} has no column {src!r} (optional_columns of {em.where}): "
                    f"left empty."
                )
                continue
            raise ConfigError(
                f"{mp.path}: {em.where}: column {src!r} is not in {path} (batch "
                f"{batch.batch_id}); its columns are: "
                f"{', '.join(repr(h) for h in ex.headers.values())}. Correct the name, or list "
                f"it under optional_columns: if some exports leave it out."
            )
        exports.append(ex)
    return exports


def _source(ex: Export, src: str | None) -> str:
    return ex.col(src) if src is not None and ex.has(src) else "NULL"


def _entity_sql(em: EntityMap, ex: Export, mp: MappingFile) -> str:
    """One SELECT of every canonical column of the entity, plus the unmapped columns."""
    items = [
        f"{_column_sql(em, ex, mp, col)} AS {quote(col.name)}"
        for col in ENTITIES[em.entity].columns
    ]
    items += ex.extras(em.sources(), em.entity)
    items += ex.lineage()
    return f"SELECT {', '.join(items)} FROM {ex.view}"


def _column_sql(em: EntityMap, ex: Export, mp: MappingFile, col: Column) -> str:
    if em.status is not None and col.name in ("is_won", "is_closed"):
        return _status_sql(em.status, _source(ex, em.status.column), col.name)
    src = em.columns.get(col.name)
    expr = _source(ex, src)
    if col.name in em.values:
        expr = _values_sql(expr, em.values[col.name])
    if col.name in em.constants:
        expr = f"coalesce({expr}, {sql_str(em.constants[col.name])})"
    if (em.entity, col.name) in _MONTH_COLUMNS:
        year_month = f"regexp_full_match({expr}, '\\d{{4}}-\\d{{2}}')"
        expr = f"CASE WHEN {year_month} THEN {expr} || '-01' ELSE {expr} END"
    formats = em.dates.get(_norm(src), mp.date_formats) if src else mp.date_formats
    return _typed_sql(expr, col.type, formats, ex.date_order, mp)


def _typed_sql(expr: str, type_: str, formats: tuple[str, ...], order: str, mp: MappingFile) -> str:
    if type_ == "timestamp":
        return _timestamp_sql(expr, formats, order)
    if type_ == "date":
        ts = _timestamp_sql(expr, formats, order)
        iso = "'^\\d{4}-\\d{2}-\\d{2}'"
        return f"CASE WHEN regexp_matches({ts}, {iso}) THEN left({ts}, 10) ELSE {ts} END"
    if type_ == "boolean":
        return bool_sql(expr)
    if type_ in ("double", "bigint") and mp.decimal is not None:
        return _number_sql(expr, mp.decimal, mp.thousands or "")
    return expr


def _timestamp_sql(expr: str, formats: tuple[str, ...], order: str) -> str:
    """The user's strptime formats first, then what every adapter reads (ISO, report-style
    dates); a value none of them reads passes unchanged for the gate to name."""
    # A format with a zone gives an instant (written in UTC); one without gives a local
    # time, which the loader reads in the source's time zone. DuckDB cannot mix the two in
    # one format list, so they are tried apart.
    naive = [f for f in formats if "%z" not in f and "%Z" not in f]
    aware = [f for f in formats if f not in naive]
    tries = []
    for group, out in ((naive, "%Y-%m-%d %H:%M:%S"), (aware, "%Y-%m-%d %H:%M:%S+00:00")):
        if group:
            fmts = "[" + ", ".join(sql_str(f) for f in group) + "]"
            tries.append(f"strftime(try_strptime({expr}, {fmts}), '{out}')")
    return f"coalesce({', '.join([*tries, timestamp_sql(expr, order)])})"


def _number_sql(expr: str, decimal: str, thousands: str) -> str:
    """12.500,00 → 12500.00 for a number-looking value; anything else passes unchanged."""
    plain = f"replace({expr}, {sql_str(thousands)}, '')" if thousands else expr
    if decimal == ",":
        plain = f"replace({plain}, ',', '.')"
    return (
        f"CASE WHEN regexp_matches({expr}, '^[+-]?[0-9][0-9 .,'']*$') THEN {plain} ELSE {expr} END"
    )


def _values_sql(expr: str, vmap: dict[str, str]) -> str:
    """The value map as a CASE over the normalised value; an unlisted value passes unchanged
    (or becomes the "*" value), an empty one stays empty."""
    whens = " ".join(
        f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in vmap.items() if k != _OTHERWISE
    )
    otherwise = sql_str(vmap[_OTHERWISE]) if _OTHERWISE in vmap else expr
    if not whens:
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE {otherwise} END"
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL "
        f"ELSE CASE {_norm_sql(expr)} {whens} ELSE {otherwise} END END"
    )


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(sql_str(v) for v in values) + ")"


def _status_sql(st: StatusMap, expr: str, column: str) -> str:
    """is_won / is_closed from the status column. A status in none of the lists is open
    when open: is not given; when it is, such a value passes unchanged to the gate."""
    v = _norm_sql(expr)
    won, lost = f"{v} IN {_in(st.won)}", f"{v} IN {_in(st.lost)}"
    is_open = f"{v} IN {_in(st.open)}" if st.open else "true"
    then_lost = "'false'" if column == "is_won" else "'true'"  # lost: closed, not won
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL WHEN {won} THEN 'true' "
        f"WHEN {lost} THEN {then_lost} WHEN {is_open} THEN 'false' ELSE {expr} END"
    )


def _stage_entered_sql(em: EntityMap, ex: Export, mp: MappingFile) -> str:
    """Wide "entered <stage> on" date columns → one stage change per non-empty date."""
    id_expr = _source(ex, em.stage_entered_id or em.columns.get("opportunity_id"))
    selects = []
    for src, label in em.stage_entered.items():
        if not ex.has(src):  # an optional column this batch lacks (noted already)
            continue
        changed_at = _timestamp_sql(
            ex.col(src), em.dates.get(_norm(src), mp.date_formats), ex.date_order
        )
        # Named by its deal's row and the column (the file's own header) of the date.
        header = sql_str(ex.headers[_norm(src)].strip())
        selects.append(
            f"SELECT {id_expr} AS opportunity_id, {sql_str(label)} AS stage, "
            f"{changed_at} AS changed_at, {', '.join(ex.lineage(header))} "
            f"FROM {ex.view} WHERE {ex.col(src)} IS NOT NULL"
        )
    if not selects:
        return (
            "SELECT CAST(NULL AS VARCHAR) AS opportunity_id, CAST(NULL AS VARCHAR) AS stage, "
            "CAST(NULL AS VARCHAR) AS changed_at WHERE false"
        )
    return " UNION ALL ".join(selects)


def _mark_deleted(
    batch: ExportBatch,
    mp: MappingFile,
    date_order: str,
    entities: dict[str, str],
    conv: Conversion,
) -> None:
    """A full export holds every live record: one the previous batch had and this one lacks
    was deleted. It is carried over from the previous batch with is_deleted = true (same
    updated_at, so the later batch wins the tie and the loader soft-deletes it)."""
    folders = batch_folders(batch.folder.parent)
    names = [f.name for f in folders]
    if batch.folder.name not in names or names.index(batch.folder.name) == 0:
        return
    previous = ExportBatch(batch.con, folders[names.index(batch.folder.name) - 1], date_order)
    for entity in ("accounts", "contacts", "leads", "opportunities"):
        if entity not in entities:
            continue  # not in this export: nothing can be said about deletions
        # The previous batch was checked when it was converted; a file it lacks only means
        # nothing is known about deletions, and its notes were given then.
        ems = [replace(em, optional=True) for em in mp.entities if em.entity == entity]
        quiet = Conversion()
        sqls = [
            _entity_sql(em, ex, mp)
            for em in ems
            for ex in _exports(previous, em, mp, date_order, quiet)
        ]
        if not sqls:
            continue
        key = quote(ENTITIES[entity].key[0])
        gone = (
            f"SELECT * REPLACE ('true' AS is_deleted) FROM ({_union(sqls)}) "
            f"WHERE {key} IS NOT NULL AND {key} NOT IN "
            f"(SELECT {key} FROM ({entities[entity]}) WHERE {key} IS NOT NULL)"
        )
        (count,) = batch.con.execute(f"SELECT count(*) FROM ({gone})").fetchone()
        if count:
            entities[entity] = _union([entities[entity], gone])
            conv.notes.append(
                f"full export: {count} {entity} of batch {previous.batch_id} missing from "
                f"this one, marked deleted."
            )
