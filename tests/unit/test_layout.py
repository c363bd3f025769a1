"""The package's layout keeps the pipeline's order: a stage imports only from itself and
the stages before it, no module imports itself back through others, a platform's rules
live in its own module, the decide stage touches no file, a fenced library is imported by
its one module only, and no module or function grows past the size a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tvmffi_wheel"
MAX_LINES = 450
LINE_LIMITS = {"tvmffi_wheel.build": 350, "tvmffi_wheel.repair": 320}  # the thin faces stay thin
MAX_FUNCTION_LINES = 60

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


# Libraries without a stable API (or optional ones), each fenced in the one module that may
# import it (docs/architecture.md says why for each).
FENCES = {
    "scikit_build_core": "tvmffi_wheel.compiling._skbuild",
    "auditwheel": "tvmffi_wheel.common._auditwheel",
    "delvewheel": "tvmffi_wheel.writing._delvewheel",
    "cyclonedx": "tvmffi_wheel.inspecting._cyclonedx",
}


def _third_party_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_fenced_library_is_imported_only_by_its_module(module):
    trespassing = sorted(name for name in _third_party_imports(MODULES[module]) & FENCES.keys()
                         if FENCES[name] != module)
    assert not trespassing, f"{module} imports {trespassing}; only {[FENCES[n] for n in trespassing]} may"


def test_each_fence_is_where_it_says():
    for library, module in FENCES.items():
        assert library in _third_party_imports(MODULES[module]), f"{module} no longer imports {library}"


def test_top_level_holds_only_the_faces_and_the_pipeline():
    top = {p.name for p in PACKAGE.iterdir() if p.suffix == ".py"}
    assert top == {"__init__.py", "__main__.py", "build.py", "repair.py", "errors.py"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_too_long(module):
    lines = len(MODULES[module].read_text("utf-8").splitlines())
    limit = LINE_LIMITS.get(module, MAX_LINES)
    assert lines <= limit, f"{module} has {lines} lines, more than {limit}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_is_too_long(module):
    tree = ast.parse(MODULES[module].read_text("utf-8"))
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}: {', '.join(long)} longer than {MAX_FUNCTION_LINES} lines"


# Where a module may ask which platform or binary format it has: each platform's own module,
# the readers of each format, the writers that patch each format, and the per-target build rules.
PLATFORM_PLACES = ("tvmffi_wheel.deciding.platforms", "tvmffi_wheel.inspecting", "tvmffi_wheel.writing",
                   "tvmffi_wheel.compiling.cross_os")
PLATFORM_WORDS = {"elf", "macho", "pe", "linux", "macos", "windows", "darwin", "win32", "nt"}
PLATFORM_OBJECTS = {"LINUX", "MACOS", "WINDOWS"}


def _platform_tests(tree: ast.AST) -> list[str]:
    """Comparisons with a platform's or format's name or object, and questions to sys.platform or os.name."""

    def words(node: ast.AST) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return {word for element in node.elts for word in words(element)}
        return set()

    def platform_object(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in PLATFORM_OBJECTS) or (
            isinstance(node, ast.Attribute) and node.attr in PLATFORM_OBJECTS)

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(words(side) & PLATFORM_WORDS or platform_object(side) for side in sides):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (
                (node.value.id, node.attr) in {("sys", "platform"), ("os", "name")}):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith(PLATFORM_PLACES)))
def test_no_platform_branches_outside_the_platform_modules(module):
    found = _platform_tests(ast.parse(MODULES[module].read_text("utf-8")))
    assert not found, (f"{module} asks which platform or format it has ({'; '.join(found)}); "
                       "ask the platform object (deciding/platforms/) or the target's rules (compiling/cross_os.py)")


def test_the_platform_rule_sees_a_branch():
    assert _platform_tests(ast.parse('if system is MACOS or facts.format == "macho": pass'))
    assert _platform_tests(ast.parse('windows = sys.platform.startswith("win")'))
    assert not _platform_tests(ast.parse('if facts.format == platform.format: pass'))


# What touches files: the decide stage takes facts and returns plans (what a plan must read
# from disk, a candidate library, it asks of inspecting/library_finder.py's finder).
FILE_MODULES = {"os", "shutil", "subprocess", "tempfile", "zipfile", "hashlib", "mmap", "io", "glob",
                "importlib.resources", "urllib", "urllib.request"}
# Path's methods (not its replace: str has one).
FILE_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "mkdir", "rmdir",
                "exists", "is_file", "is_dir", "stat", "iterdir", "glob", "rglob", "resolve", "rename"}
READER_PREFIXES = ("read_", "inspect_", "unpack")


def _file_access(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FILE_MODULES
                      or a.name in FILE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in FILE_MODULES or node.module.split(".")[0] in FILE_MODULES - {"importlib"}:
                found.append(f"from {node.module} import ...")
            elif node.module == "importlib" and any(a.name == "resources" for a in node.names):
                found.append("from importlib import resources")
            elif node.module.startswith("tvmffi_wheel."):
                found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith(READER_PREFIXES)]
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in FILE_METHODS:
                found.append(f"line {node.lineno}: {ast.unparse(node)[:60]}")
    return found


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("tvmffi_wheel.deciding")))
def test_the_decide_stage_touches_no_file(module):
    found = _file_access(ast.parse(MODULES[module].read_text("utf-8")))
    assert not found, f"{module} touches files: {'; '.join(found)}"


def test_the_file_rule_sees_a_read():
    assert _file_access(ast.parse("import zipfile"))
    assert _file_access(ast.parse("text = path.read_text()"))
    assert _file_access(ast.parse("from tvmffi_wheel.inspecting.binary import read_binary_facts"))
    assert not _file_access(ast.parse("name = dataclasses.replace(plan, tags=()).name.replace('-', '_')"))
