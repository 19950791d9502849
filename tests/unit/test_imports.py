"""No import cycle among the project's modules (type-only imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = ("ingestion", "orchestration")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports at module level (if-blocks such as
    ``if TYPE_CHECKING:`` included; imports inside functions are deferred on purpose)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                continue
            else:
                continue
            found.update(n for n in names if n in known)

    visit(ast.parse(path.read_text()).body)
    return found


def test_no_import_cycle():
    paths = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    known = {module_name(p) for p in paths}
    graph = {module_name(p): module_imports(p, known) - {module_name(p)} for p in paths}
    assert "orchestration.lib.alert" in graph["orchestration.lib.alert_sinks"]

    cycles = []
    state: dict[str, str] = {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            # A package's __init__ importing its own submodule is not a cycle back.
            if state.get(nxt) == "open" and not node.startswith(nxt + "."):
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert cycles == []


def test_every_package_says_what_lives_there_and_what_it_may_import():
    for init in sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import:" in doc or "may import" in doc.lower(), init


def test_ingestion_knows_nothing_of_dagster():
    for path in (ROOT / "ingestion").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            bad = [
                n for n in names if n.split(".")[0] in ("dagster", "dagster_dbt", "orchestration")
            ]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_hygiene_gate_imports_great_expectations_only_when_it_validates():
    # GX costs seconds to import: the gate's package (every module of it) and the Spark
    # runner that shares its catalog must not pay that when they are merely imported.
    modules = [
        "ingestion.hygiene",
        *(f"ingestion.hygiene.{p.stem}" for p in (ROOT / "ingestion" / "hygiene").glob("*.py")),
        "ingestion.spark.hygiene",
    ]
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'great_expectations'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
