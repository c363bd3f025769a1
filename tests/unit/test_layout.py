"""The package's layout keeps the pipeline's order: a stage imports only from itself and
the stages before it, no module imports itself back through others, and none grows past
the size a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tvmffi_wheel"
MAX_LINES = 450

# Each place's rank in the pipeline; a module may import only from places of its rank or lower.
RANKS = {
    "errors": 0,
    "common": 0,  # words and rules every stage shares
    "compiling": 1,
    "inspecting": 2,
    "deciding": 3,
    "writing": 4,
    "repair": 5,  # the pipeline for one wheel
    "build": 6,  # the PEP 517 hooks
    "commands": 6,
    "__main__": 7,
    "__init__": 0,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "templates" in path.relative_to(PACKAGE).parts:
            continue
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(("tvmffi_wheel", *parts))] = path
    return found


MODULES = _modules()


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    """The tvmffi_wheel modules that ``path`` imports (any `from X import name` where name
    is a module counts as that module)."""
    tree = ast.parse(path.read_text("utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("tvmffi_wheel")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tvmffi_wheel"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()
    return found & MODULES.keys()


def _place(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_stage_imports_only_from_itself_and_earlier_stages(module):
    rank = RANKS[_place(module)]
    later = sorted(m for m in _imports(MODULES[module], module_level_only=False) if RANKS[_place(m)] > rank)
    assert not later, f"{module} imports from later stages: {later}"


def test_no_import_circle():
    graph = {m: _imports(p, module_level_only=True) - {m} for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import circle: " + " -> ".join([*path[path.index(module):], module]))
        if module in done:
            return
        for imported in sorted(graph[module]):
            if imported != module.rpartition(".")[0]:  # a package's own __init__
                visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_top_level_holds_only_the_faces_and_the_pipeline():
    top = {p.name for p in PACKAGE.iterdir() if p.suffix == ".py"}
    assert top == {"__init__.py", "__main__.py", "build.py", "repair.py", "errors.py"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_too_long(module):
    lines = len(MODULES[module].read_text("utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines"
