"""The documentation stands alone and stays in step with the code.

- every relative Markdown link resolves to a file inside the repository, and every
  repository path the docs name in code (`ingestion/hygiene.py`) exists, and every
  anchor a link names (`operations.md#automation`) is a heading of its page;
- no file of the repository points outside it (a sibling checkout, a build machine's path)
  or names the design notes the docs were first written from;
- every mart has a section in docs/kpis.md that mentions each of its columns as declared in
  dbt_project/models/marts/_marts__models.yml.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KPIS_DOC = ROOT / "docs" / "kpis.md"
MARTS_DIR = ROOT / "dbt_project" / "models" / "marts"
MARTS_YAML = MARTS_DIR / "_marts__models.yml"

# Folders that are not the project's own documentation: tools, generated output, data.
_SKIPPED_DIRS = {
    ".venv",
    ".git",
    "data",
    ".pytest_cache",
    ".ruff_cache",
    ".dagster",
    "node_modules",
    "__pycache__",
    "logs",
}
_SKIPPED_PATHS = {
    Path("dbt_project/target"),
    Path("dbt_project/logs"),
    Path("dbt_project/dbt_packages"),
}
# Generated or binary files (.gitignore): warehouses, bytecode.
_SKIPPED_SUFFIXES = {".pyc", ".duckdb", ".wal"}


def _project_files(pattern: str = "*") -> list[Path]:
    """The project's own files: the tree without tools' folders, generated output and data
    (the folders .gitignore names), so the check runs the same in a clone or an export."""
    found = []
    for path in sorted(ROOT.rglob(pattern)):
        rel = path.relative_to(ROOT)
        if any(part in _SKIPPED_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if any(rel.is_relative_to(skipped) for skipped in _SKIPPED_PATHS):
            continue
        if path.is_file() and path.suffix not in _SKIPPED_SUFFIXES:
            found.append(path)
    return found


def _markdown_files() -> list[Path]:
    return _project_files("*.md")


# --- (a) relative links resolve --------------------------------------------------------------

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
# [text](target) and ![alt](target); the target may be <wrapped> and followed by a title.
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[^)]*)?\)")
# [label]: target (a reference definition, on a line of its own).
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a Markdown file, lines of fenced code blocks left out."""
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(2)[0] * len(match.group(2))
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        yield number, line


def _links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link in a Markdown file, code blocks and spans aside."""
    links = []
    for number, line in _prose_lines(path):
        text = _CODE_SPAN.sub("", line)
        targets = [m.group(1) for m in _INLINE_LINK.finditer(text)]
        if ref := _REFERENCE_DEF.match(text):
            targets.append(ref.group(1))
        links += [(number, t.strip("<>")) for t in targets]
    return links


def _broken_link(source: Path, target: str) -> str | None:
    """Why a link target does not resolve to a file of the repository, or None if it does."""
    if _SCHEME.match(target) or target.startswith("#"):
        return None  # a URL (https:, mailto:) or an anchor in the same page
    path_part = re.split(r"[#?]", target, maxsplit=1)[0]
    if not path_part:
        return None
    # A leading slash is the repository's root (as GitHub reads it), never the file system's.
    base = ROOT if path_part.startswith("/") else source.parent
    resolved = (base / path_part.lstrip("/")).resolve()
    if not resolved.is_relative_to(ROOT):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    return None


def test_markdown_files_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _markdown_files()}
    assert {"README.md", "docs/kpis.md", "docs/data-model.md"} <= names


def test_relative_markdown_links_resolve() -> None:
    problems = []
    for path in _markdown_files():
        for number, target in _links(path):
            why = _broken_link(path, target)
            if why:
                problems.append(f"{path.relative_to(ROOT)}:{number}: link ({target}): {why}")
    assert not problems, "Markdown links that do not resolve in the repository:\n" + "\n".join(
        problems
    )


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    anchors = set()
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fence = not fence
        elif not fence and (m := _HEADING.match(line)):
            slug = _slug(m.group(2))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_link_anchors_name_a_heading() -> None:
    problems = []
    for path in _markdown_files():
        for number, target in _links(path):
            if _SCHEME.match(target) or "#" not in target:
                continue
            file_part, anchor = target.split("#", 1)
            page = (path.parent / file_part).resolve() if file_part else path
            if page.suffix != ".md" or not page.is_file():
                continue  # not a Markdown page, or a broken link (reported above)
            if anchor not in _anchors(page):
                problems.append(
                    f"{path.relative_to(ROOT)}:{number}: link ({target}): "
                    f"no heading with that anchor in {page.relative_to(ROOT)}"
                )
    assert not problems, "Links to a heading that does not exist:\n" + "\n".join(problems)


# A repository path named in code in the prose (`ingestion/hygiene.py`, `deploy/`): it starts
# with a top-level folder of the project and holds no placeholder or pattern (<crm>, *, ...).
_TOP_LEVEL = (
    "ingestion",
    "orchestration",
    "dbt_project",
    "tests",
    "bench",
    "deploy",
    "docs",
    ".ci",
)
_REPO_PATH = re.compile(rf"^(?:{'|'.join(re.escape(t) for t in _TOP_LEVEL)})/[\w./-]*$")


def _code_paths(path: Path) -> list[tuple[int, str]]:
    """(line number, path) of every code span outside code blocks that names a repo path."""
    found = []
    for number, line in _prose_lines(path):
        for span in _CODE_SPAN.finditer(line):
            text = span.group(0).strip("`").strip()
            if _REPO_PATH.match(text):
                found.append((number, text))
    return found


def test_repository_paths_named_in_the_docs_exist() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{number}: `{named}` is not a path of the repository"
        for path in _markdown_files()
        for number, named in _code_paths(path)
        if not (ROOT / named).exists()
    ]
    assert not problems, "Docs that name files the repository does not have:\n" + "\n".join(
        problems
    )


# --- (b) nothing points outside the repository ----------------------------------------------

# Built from pieces so that this file does not match its own patterns.
_OUTSIDE = {
    "a sibling checkout (a shared folder next to the repository)": re.compile(r"\.\./shared/"),
    "an absolute path of a build machine": re.compile(r"(?:^|[\s\"'`(\[<=:,])/" + "work" + r"/"),
    "the design notes (use docs/kpis.md)": re.compile(r"\bKPIS\.md\b"),
    "the design notes (use docs/data-model.md)": re.compile(r"\bDATA_MODEL\.md\b"),
}


def test_no_file_points_outside_the_repository() -> None:
    problems = []
    for path in _project_files():
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        text = data.decode("utf-8", "replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for what, pattern in _OUTSIDE.items():
                if pattern.search(line):
                    problems.append(
                        f"{path.relative_to(ROOT)}:{number}: mentions {what}: {line.strip()[:120]}"
                    )
    assert not problems, (
        "Files that point outside the repository (a clone does not have these):\n"
        + "\n".join(problems)
    )


# --- (c) docs/kpis.md covers every mart and column ------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, body) of every section; a body runs to the next heading of its level or up."""
    lines = markdown.splitlines()
    headings = []
    fence = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fence = not fence
        elif not fence and (m := _HEADING.match(line)):
            headings.append((i, len(m.group(1)), m.group(2)))
    sections = []
    for n, (i, level, title) in enumerate(headings):
        end = next((j for j, lvl, _ in headings[n + 1 :] if lvl <= level), len(lines))
        sections.append((title, "\n".join(lines[i + 1 : end])))
    return sections


def _mart_section(sections: list[tuple[str, str]], mart: str) -> str | None:
    name = re.compile(rf"(?<![\w]){re.escape(mart)}(?![\w])")
    for title, body in sections:
        if name.search(title):
            return body
    return None


def _declared_columns() -> dict[str, list[str]]:
    models = yaml.safe_load(MARTS_YAML.read_text(encoding="utf-8"))["models"]
    return {m["name"]: [c["name"] for c in m.get("columns") or []] for m in models}


def test_every_mart_and_column_is_documented() -> None:
    marts = sorted(p.stem for p in MARTS_DIR.glob("*.sql"))
    assert marts, f"no mart models found in {MARTS_DIR.relative_to(ROOT)}"
    declared = _declared_columns()
    sections = _sections(KPIS_DOC.read_text(encoding="utf-8"))
    doc = KPIS_DOC.relative_to(ROOT)
    problems = []
    for mart in marts:
        body = _mart_section(sections, mart)
        if body is None:
            problems.append(f"{doc}: no section (a heading naming it) for the mart {mart}")
            continue
        if mart not in declared:
            problems.append(f"{MARTS_YAML.relative_to(ROOT)}: the mart {mart} is not declared")
            continue
        for column in declared[mart]:
            if not re.search(rf"(?<![\w]){re.escape(column)}(?![\w])", body):
                problems.append(
                    f"{doc}: the section of {mart} does not mention its column {column} "
                    f"(declared in {MARTS_YAML.relative_to(ROOT)})"
                )
    assert not problems, "docs/kpis.md is out of step with the marts:\n" + "\n".join(problems)
