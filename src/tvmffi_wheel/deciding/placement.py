"""Where a wheel's compiled libraries may be installed: inside the project's own folders.

A library must land in a folder that belongs to this wheel, where its loader finds it and no
other wheel's files collide with it: a package (a folder with `__init__.py`, or one that
scikit-build-core packages), the project's own `wheel.install-dir`, a top-level folder named
after the project (tvm-ffi's python_packaging example installs its library into
`my_ffi_extension/`, which has no `__init__.py` of its own in some wrappings), or the vendored
libraries' `<name>.libs`. The folders every prefix-style install shares (`lib/`, `bin/`,
`include/`, `share/`, ...) are never one project's, whatever they hold.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Sequence

from tvmffi_wheel.deciding.runpath import install_path
from tvmffi_wheel.inspecting.wheel import WheelBinary

# Top-level folders of a Unix prefix or a Python install that many wheels write into.
SHARED_FOLDERS = frozenset({
    "bin", "data", "doc", "docs", "etc", "include", "lib", "lib32", "lib64", "libexec", "man", "sbin",
    "share", "src", "test", "tests", "Lib", "DLLs", "Scripts", "Include",
})


def import_name(distribution: str) -> str:
    """The folder a project's files go in by convention: `My-Kernels` -> `my_kernels`."""
    return distribution.lower().replace("-", "_").replace(".", "_")


def _fix(location: str, distribution: str, install_dir: str) -> str:
    """What put the library there, and what to change, in the project's own terms."""
    package = import_name(distribution)
    top = install_dir.strip("/")
    if top and (location + "/").startswith(top + "/"):
        return f'wheel.install-dir = "{install_dir}" puts it there: set wheel.install-dir = "{package}"'
    destination = posixpath.dirname(location) or "."
    return (f"its install() rule puts it there (DESTINATION {destination}): install it into the package, "
            f'install(TARGETS <target> DESTINATION {package}), or set wheel.install-dir = "{package}"')


def placement_problems(
    binaries: Sequence[WheelBinary], members: Sequence[str], *, distribution: str, libs_dir: str,
    packages: Collection[str] = (), install_dir: str = "",
) -> list[str]:
    """One line for each library outside the wheel's own folders. ``packages``: the package
    folders scikit-build-core found (an editable wheel holds no package sources);
    ``install_dir``: the project's `wheel.install-dir` ("" when unset or unknown)."""
    with_init = {
        location.split("/")[0]
        for member in members
        if (location := install_path(member)) is not None and location.endswith("/__init__.py")
    }
    own = with_init | {folder.split("/")[0] for folder in packages} | {libs_dir, import_name(distribution)}
    if install_dir.strip("/"):
        own.add(install_dir.strip("/").split("/")[0])
    problems = []
    for binary in binaries:
        location = install_path(binary.path)
        if location is None or any(name.startswith("PyInit_") for name in binary.facts.exports):
            continue  # a .data file has no package; an extension module may stand at the top
        folder, slash, _ = location.partition("/")
        fix = _fix(location, distribution, install_dir)
        if not slash:
            problems.append(f"{binary.path}: installs to the top of site-packages, shared by all wheels ({fix})")
        elif folder in SHARED_FOLDERS and folder not in with_init:
            problems.append(f"{binary.path}: installs to site-packages/{folder}/, a folder other wheels install into "
                            f"too, where their files collide with it ({fix})")
        elif folder not in own:
            problems.append(f"{binary.path}: installs to site-packages/{folder}/, which is no package of this wheel "
                            f"(no __init__.py) and not named after it ({fix}, or add an __init__.py to that folder)")
    return problems
