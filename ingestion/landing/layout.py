"""The landing layout and its discovery: batch folders in name order (links that lead
outside refused), which batches have settled, the demo data for an empty landing, and the
files of a batch (``discover``: one per entity, layout mistakes named with a "did you
mean"), with their SHA-256.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ingestion.config import PipelineConfig
from ingestion.errors import LandingError
from ingestion.schema import ENTITIES, LANDING_FORMATS, Entity


def batch_folders(landing: Path) -> list[Path]:
    """The batch folders of a landing directory, in name (processing) order.

    A batch folder that is a symbolic link leading outside the landing directory is
    refused (LandingError): whatever it points at is not the user's export."""
    if not landing.is_dir():
        return []
    folders = sorted(
        p for p in landing.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )
    for folder in folders:
        if folder.is_symlink():  # a plain folder of the landing cannot lead outside it
            refuse_outside_link(landing, folder)
    return folders


def refuse_outside_link(landing: Path, path: Path) -> None:
    """Refuse ``path`` (a batch folder or a file of the landing directory ``landing``)
    when its real location is outside ``landing``: a symbolic link to ``/etc/passwd``
    named ``opportunities.csv`` would otherwise be read, and its first line quoted in
    an error message that also goes to every alert sink.

    The message names where the link sits, never its target (a path that may itself say
    too much) nor anything of its content: the check reads no byte of it. A link that
    stays inside the landing directory is fine.
    """
    try:
        inside = path.resolve().is_relative_to(landing.resolve())
    except (OSError, RuntimeError):  # a loop of links (RuntimeError before Python 3.13)
        raise LandingError(
            f"{path}: a symbolic link that cannot be followed (it loops back on itself); "
            f"nothing of it was read. Replace it with the export itself, or remove it."
        ) from None
    if not inside:
        what = "batch folder" if path.parent == landing and path.is_dir() else "file"
        raise LandingError(
            f"{path}: this {what} is a symbolic link that points outside the landing "
            f"directory {landing}; it is refused, and nothing it points at was read. Copy "
            f"the export into the landing directory instead of linking to it (a link to a "
            f"place inside {landing} is fine), or remove the link."
        )


def check_batch_links(landing: Path, folder: Path) -> None:
    """Refuse a batch folder holding a file that is a symbolic link leading outside the
    landing directory, before anything of the batch is read (even its fingerprint)."""
    refuse_outside_link(landing, folder)
    for path in folder.iterdir():
        if path.is_symlink():  # a plain file in a checked folder cannot lead outside
            refuse_outside_link(landing, path)


def has_batches(landing: Path) -> bool:
    return bool(batch_folders(landing))


def settled_batches(
    landing: Path, settle_seconds: float, now: float
) -> tuple[list[str], list[str]]:
    """Batches whose files all stopped changing ``settle_seconds`` before ``now`` (epoch
    seconds), and those still being written. A folder that has stayed empty that long is
    in neither list: it is not an export, and must not hold back the ones after it."""
    ready, writing = [], []
    for folder in batch_folders(landing):
        try:
            mtimes = [p.stat().st_mtime for p in folder.iterdir() if p.is_file()]
            changed = max(mtimes, default=folder.stat().st_mtime)
        except FileNotFoundError:  # removed while we looked
            continue
        if changed > now - settle_seconds:
            writing.append(folder.name)
        elif mtimes:
            ready.append(folder.name)
    return ready, writing


def prepare_landing(config: PipelineConfig, *, end: date) -> str | None:
    """For the synthetic source, generate the demo batches when the landing is empty.

    Returns a one-line summary of what was generated, or None when nothing was needed.
    Real sources are never generated into: their landing is the user's export. A config
    with ``sources:`` loads those only (``source`` keeps its default, unused).
    """
    if [s.kind for s in config.sources] != ["synthetic"] or has_batches(config.landing_dir):
        return None
    from ingestion.synthetic import generate

    s = config.synthetic
    summary = generate(
        config.landing_dir,
        opportunities=s.opportunities,
        batches=s.batches,
        seed=s.seed,
        end=end,
        clean=s.clean,
    )
    return str(summary)


@dataclass(frozen=True)
class LandingFile:
    batch_id: str
    entity: Entity
    path: Path

    @property
    def relative(self) -> str:
        return f"{self.batch_id}/{self.path.name}"


def discover(landing: Path) -> list[LandingFile]:
    """List the landing files in processing order, refusing anything that isn't one."""
    if not landing.is_dir():
        raise LandingError(
            f"Landing directory {landing} does not exist. Point --landing at a folder "
            f"holding one sub-folder per batch (<landing>/<batch_id>/<entity>.csv)."
        )
    files: list[LandingFile] = []
    for item in sorted(landing.iterdir()):
        if item.name.startswith((".", "_")):
            continue
        if item.is_symlink():
            # Before anything else: even "is a directory" must not be asked of a target
            # outside, and a file's message must not depend on what it points at.
            refuse_outside_link(landing, item)
        if not item.is_dir():
            raise LandingError(
                f"{item} is a file at the top of the landing directory; files belong in a "
                f"batch folder, one per export. Move it to {landing}/<batch_id>/{item.name} "
                f"(e.g. {landing}/2026-11-25T0600/{item.name}) or remove it."
            )
        seen: dict[str, Path] = {}
        for path in sorted(item.iterdir()):
            if path.name.startswith((".", "_")):
                continue
            if path.is_symlink():
                refuse_outside_link(landing, path)
            if path.is_dir():
                continue
            stem, _, ext = path.name.partition(".")
            if ext not in LANDING_FORMATS or stem not in ENTITIES:
                raise LandingError(_not_a_landing_file(path, stem, ext))
            if stem in seen:
                raise LandingError(
                    f"Batch {item.name} holds {stem} twice ({seen[stem].name} and "
                    f"{path.name}); keep one file per entity in a batch: remove or move "
                    f"the other one."
                )
            seen[stem] = path
            files.append(LandingFile(item.name, ENTITIES[stem], path))
    return files


# What CRMs call the canonical entities, for "did you mean" in layout errors.
_ENTITY_SYNONYMS = {
    "deals": "opportunities",
    "companies": "accounts",
    "organizations": "accounts",
    "people": "contacts",
    "persons": "contacts",
    "owners": "users",
    "reps": "users",
    "tasks": "activities",
    "events": "activities",
    "engagements": "activities",
    "stage_history": "stage_changes",
    "deal_stages": "stages",
    "pipeline_stages": "stages",
}


def _not_a_landing_file(path: Path, stem: str, ext: str) -> str:
    """Why a file in a batch folder is refused, and the rename or export that fixes it."""
    formats = ", ".join(f".{x}" for x in LANDING_FORMATS)
    entities = ", ".join(ENTITIES)
    problems, fixes = [], []
    if stem not in ENTITIES:
        problems.append(f'"{stem}" is not an entity')
        fixes.append("name the file after the entity it holds")
        close = _ENTITY_SYNONYMS.get(stem.lower()) or next(
            iter(difflib.get_close_matches(stem.lower(), ENTITIES, n=1, cutoff=0.8)), None
        )
        if close:
            fixes[-1] += f" (did you mean {close}.{ext if ext in LANDING_FORMATS else 'csv'}?)"
    if ext not in LANDING_FORMATS:
        if ext.lower() in LANDING_FORMATS:
            problems.append(f'the extension ".{ext}" is not lower case')
            fixes.append(f"rename it to {stem}.{ext.lower()}")
        elif ext.endswith(("gz", "zip", "bz2", "zst", "xz")):
            problems.append(f'".{ext}" is a compressed file')
            fixes.append("decompress it into the batch folder (and remove the archive)")
        elif ext in ("xlsx", "xls", "ods", "numbers"):
            problems.append(f'".{ext}" is a spreadsheet')
            fixes.append(f"save it as CSV UTF-8 (comma-delimited) under the name {stem}.csv")
        else:
            has = f"the extension .{ext}" if ext else "no extension"
            problems.append(f'"{path.name}" has {has}')
            fixes.append(f"landing files are {formats}: export it in one of these formats")
    return (
        f"{path}: not a canonical landing file: {'; '.join(problems)}. Expected "
        f"<entity>.<format> with entity one of {entities} and format one of {formats}. "
        f"To fix it, {' and '.join(fixes)}; or remove the file from the batch folder."
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
