"""`tvmffi-wheel init`: a new kernel package that builds and tests out of the box.

The files are templates in `templates/init/`: `@DIST@` is the distribution name,
`@IMPORT@` the import name, and a line ending in ` @@cuda` (` @@cpu`) is kept only
with (without) `--cuda`.
"""

from __future__ import annotations

import keyword
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from packaging.utils import InvalidName, canonicalize_name

from tvmffi_wheel.errors import TvmFfiWheelError

# Template -> where it goes in the new project ({import} is the import name).
FILES = {
    "pyproject.toml.in": "pyproject.toml",
    "CMakeLists.txt.in": "CMakeLists.txt",
    "src/kernels.cc.in": "src/kernels.cc",
    "python/__init__.py.in": "python/{import}/__init__.py",
    "tests/test_kernels.py.in": "tests/test_kernels.py",
    "README.md.in": "README.md",
    "gitignore.in": ".gitignore",
    "github/workflows/wheels.yml.in": ".github/workflows/wheels.yml",
}
CUDA_FILES = {"src/kernels_cuda.cu.in": "src/kernels_cuda.cu"}

_TAKEN = {"tvm_ffi", "tvmffi_wheel"}


def import_name_for(name: str) -> str:
    """The import name of a distribution: `My-Kernels` -> `my_kernels`."""
    try:
        import_name = canonicalize_name(name, validate=True).replace("-", "_")
    except InvalidName:
        raise TvmFfiWheelError(
            f"{name!r} is not a valid distribution name",
            "use letters, digits and - _ . , starting and ending with a letter or digit, "
            "e.g. --name my-kernels",
        ) from None
    stdlib: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
    if keyword.iskeyword(import_name):
        raise TvmFfiWheelError(
            f"{name!r} would be imported as {import_name!r}, which is a Python keyword",
            f"choose another name, e.g. --name {name}-kernels",
        )
    if not import_name.isidentifier():
        raise TvmFfiWheelError(
            f"{name!r} would be imported as {import_name!r}, which is not a Python identifier",
            "choose a name that starts with a letter, e.g. --name my-kernels",
        )
    if import_name in stdlib or import_name in _TAKEN:
        raise TvmFfiWheelError(
            f"{name!r} would be imported as {import_name!r}, which another module already uses",
            "choose another name, e.g. --name my-kernels",
        )
    return import_name


def render(text: str, *, distribution: str, import_name: str, cuda: bool) -> str:
    lines = []
    for line in text.splitlines():
        if line.endswith(" @@cuda"):
            if not cuda:
                continue
            line = line[: -len(" @@cuda")]
        elif line.endswith(" @@cpu"):
            if cuda:
                continue
            line = line[: -len(" @@cpu")]
        lines.append(line.replace("@DIST@", distribution).replace("@IMPORT@", import_name))
    return "\n".join(lines) + "\n"


def _check_destination(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise TvmFfiWheelError(f"{path} is a file", "give the path of a new or empty folder")
    if path.is_dir() and any(path.iterdir()):
        raise TvmFfiWheelError(
            f"{path} is not empty; init writes a whole project and overwrites nothing",
            "give the path of a new or empty folder",
        )


def init_project(path: Path, name: str | None = None, *, cuda: bool = False) -> list[Path]:
    """Write a new kernel package into ``path`` (new or empty); returns the files written.

    Everything is rendered into a scratch folder beside ``path`` first and moved into
    place at the end, so a failure leaves nothing behind.
    """
    _check_destination(path)
    distribution = name or path.resolve().name
    import_name = import_name_for(distribution)
    templates = resources.files("tvmffi_wheel.commands") / "templates" / "init"
    files = {**FILES, **(CUDA_FILES if cuda else {})}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tvmffi-wheel-init-", dir=path.parent))
    except OSError as err:
        raise TvmFfiWheelError(f"cannot create {path} ({err.strerror})", "choose a folder you can write to") from None
    try:
        for template, target in files.items():
            out = scratch / target.format(**{"import": import_name})
            out.parent.mkdir(parents=True, exist_ok=True)
            text = (templates / template).read_text("utf-8")
            out.write_text(render(text, distribution=distribution, import_name=import_name, cuda=cuda), "utf-8")
        written = sorted(p.relative_to(scratch) for p in scratch.rglob("*") if p.is_file())
        if path.exists():  # an empty folder: move the entries in
            for entry in scratch.iterdir():
                entry.rename(path / entry.name)
        else:  # one rename: the project appears whole or not at all
            scratch.rename(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [path / relative for relative in written]
