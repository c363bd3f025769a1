"""The `tvmffi-wheel` command (also `python -m tvmffi_wheel`).

`repair` and `check` take arguments shaped like auditwheel's, so they drop into
cibuildwheel's repair-wheel-command and audit-command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from tvmffi_wheel import __version__
from tvmffi_wheel.common.tvm_ffi import TVM_FFI_DISTRIBUTION
from tvmffi_wheel.deciding.requirements import pinned_version
from tvmffi_wheel.errors import TvmFfiWheelError, collecting_warnings, info, reporting
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive
from tvmffi_wheel.writing.wheel_writer import ensure_writable_directory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tvmffi-wheel",
        description="Build, repair, tag and pin wheels of tvm-ffi kernel libraries. As a "
        'build backend: build-backend = "tvmffi_wheel.build" in pyproject.toml.',
    )
    parser.add_argument("--version", action="version", version=f"tvmffi-wheel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_repair(commands)
    _add_check(commands)
    _add_init(commands)
    _add_compat(commands)
    commands.add_parser("settings", help="print the configuration reference (Markdown)")
    commands.add_parser("cmake-dir", help="print the folder holding TvmFfiWheel.cmake")
    return parser


def _add_repair(commands: Any) -> None:
    repair = commands.add_parser(
        "repair",
        help="repair, tag, pin and verify wheels built elsewhere",
        description="Make the backend's decisions for wheels built elsewhere (Linux, macOS or Windows "
        "binaries): keep libtvm_ffi and the CUDA driver out, vendor other libraries the platform does "
        "not provide, set run paths, tag, pin apache-tvm-ffi and verify. Repairing a repaired wheel "
        "gives the same bytes.",
    )
    repair.add_argument("wheels", nargs="+", type=Path, metavar="WHEEL")
    repair.add_argument("-w", "--wheel-dir", type=Path, default=Path("wheelhouse"),
                        help="folder to write repaired wheels to, created if missing (default: wheelhouse)")
    repair.add_argument("--plat", default="", metavar="TAG",
                        help="platform tag to give the wheels, e.g. manylinux_2_28_x86_64 "
                        "(default: the best the binaries allow)")
    repair.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="library never to vendor (shell pattern on SONAME or file name); repeatable")
    repair.add_argument("--lib-path", action="append", default=[], type=Path, metavar="DIR",
                        help="folder to find libraries to vendor in, searched before the system's own "
                        "(LD_LIBRARY_PATH, DYLD_LIBRARY_PATH, PATH); repeatable")
    repair.add_argument("--tvm-ffi-version", default=None, metavar="VERSION",
                        help="the apache-tvm-ffi version the wheel was built against (default: "
                        "the lower bound of the wheel's own pin, else the installed apache-tvm-ffi)")


def _add_check(commands: Any) -> None:
    check = commands.add_parser(
        "check",
        help="audit wheels: libraries, run paths, glibc floors, leaks, Python ABI, tvm-ffi pin",
        description="Report what each binary needs and how it is satisfied. Exit 0 when every "
        "wheel is sound, 1 otherwise.",
    )
    check.add_argument("wheels", nargs="+", type=Path, metavar="WHEEL")
    check.add_argument("--json", action="store_true", help="print the stable JSON report")
    check.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                       help="library the users' systems provide (as for repair); repeatable")


def _add_init(commands: Any) -> None:
    init = commands.add_parser(
        "init",
        help="write a new kernel package that builds and tests out of the box",
        description="Write a kernel package: pyproject.toml using this backend, CMakeLists.txt, a C++ "
        "kernel (and a CUDA one with --cuda), the Python package, tests, a README, .gitignore and a "
        "cibuildwheel workflow. PATH must be new or empty.",
    )
    init.add_argument("path", type=Path, metavar="PATH")
    init.add_argument("--name", default=None, help="distribution name (default: the folder's name)")
    init.add_argument("--cuda", action="store_true", help="add a CUDA kernel and its architectures")


def _add_compat(commands: Any) -> None:
    compat = commands.add_parser(
        "compat",
        help="install wheels with chosen apache-tvm-ffi releases and load every kernel library",
        description="For each chosen apache-tvm-ffi release: a fresh virtual environment, the wheel and "
        "that release installed with pip, then every kernel library loaded with tvm_ffi.load_module "
        "and the top-level packages imported, with immediate binding (LD_BIND_NOW=1). Exit 1 on any "
        "failure. pip's settings apply (PIP_INDEX_URL, PIP_FIND_LINKS).",
    )
    compat.add_argument("wheels", nargs="+", type=Path, metavar="WHEEL")
    compat.add_argument("--versions", default="lowest,highest", metavar="SELECTION",
                        help="lowest,highest (default) or all of the known releases the wheel admits, "
                        "or versions such as 0.1.12,0.1.15.post2 (tested even outside the wheel's range)")
    compat.add_argument("--json", action="store_true", help="print a JSON report")


def _tvm_ffi_version(flag: str | None, wheel: Path) -> Version:
    """What the wheel was built against: the flag, else the wheel's own pin, else this environment's."""
    if flag is not None:
        try:
            return Version(flag)
        except InvalidVersion:
            raise TvmFfiWheelError(f"--tvm-ffi-version {flag!r} is not a version") from None
    with WheelArchive(wheel) as archive:
        pinned = pinned_version(archive.dist_info_text("METADATA"))
    if pinned is not None:
        return pinned
    from importlib import (
        metadata as importlib_metadata,  # slow to import; rarely needed
    )

    try:
        return Version(importlib_metadata.version(TVM_FFI_DISTRIBUTION))
    except importlib_metadata.PackageNotFoundError:
        raise TvmFfiWheelError(
            f"{wheel.name} does not say which apache-tvm-ffi it was built against, and none "
            "is installed here",
            "install the apache-tvm-ffi the wheel was built against, or pass --tvm-ffi-version",
        ) from None


def _repair(args: argparse.Namespace) -> int:
    from tvmffi_wheel.repair import (  # imported per command: startup time
        RepairOptions,
        repair_wheel,
    )

    for folder in args.lib_path:
        if not folder.is_dir():
            raise TvmFfiWheelError(f"--lib-path {folder} is not a folder",
                                   "pass a folder that holds the libraries to vendor")
    out_dir = args.wheel_dir
    # Created with its parents, as auditwheel and pip wheel -w do. Checked without writing
    # anything: a probe file would be one more name that concurrent repairs share.
    ensure_writable_directory(out_dir)
    for wheel in args.wheels:
        options = RepairOptions(
            mode="auto",
            excludes=tuple(args.exclude),
            plat=args.plat,
            tvm_ffi_version=_tvm_ffi_version(args.tvm_ffi_version, wheel),
            lib_path=tuple(path.resolve() for path in args.lib_path),
        )
        with collecting_warnings():  # recorded in the wheel's build facts
            written = repair_wheel(wheel, out_dir, options)
        info(f"wrote {written}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from tvmffi_wheel.commands.check import JSON_SCHEMA_VERSION, check_wheel, render_text

    reports = [check_wheel(wheel, tuple(args.exclude)) for wheel in args.wheels]
    if args.json:
        document = {"schema": JSON_SCHEMA_VERSION, "wheels": [r.to_json() for r in reports]}
        print(json.dumps(document, indent=2))
    else:
        print("\n\n".join(render_text(r) for r in reports))
    return 0 if all(r.sound for r in reports) else 1


def _compat(args: argparse.Namespace) -> int:
    from tvmffi_wheel.commands.compat import JSON_SCHEMA_VERSION, render_text, run_compat, to_json

    runs = [run_compat(wheel, args.versions) for wheel in args.wheels]
    if args.json:
        document = {"schema": JSON_SCHEMA_VERSION, "wheels": [to_json(w, r) for w, r in runs]}
        print(json.dumps(document, indent=2))
    else:
        print("\n\n".join(render_text(w, r) for w, r in runs))
    return 0 if all(result.ok for _, results in runs for result in results) else 1


def _init(args: argparse.Namespace) -> int:
    from tvmffi_wheel.commands.init import init_project

    written = init_project(args.path, args.name, cuda=args.cuda)
    info(f"wrote {len(written)} files into {args.path}")
    # pip reads a bare name as a project on the index: a path must look like one.
    path = str(args.path) if args.path.is_absolute() or str(args.path).startswith(".") else f"./{args.path}"
    info(f"next: pip wheel --no-deps -w dist {shlex.quote(path)}   "
         f"(or pip install -e {shlex.quote(path + '[test]')} && pytest)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with reporting():
        if args.command == "repair":
            return _repair(args)
        if args.command == "check":
            return _check(args)
        if args.command == "init":
            return _init(args)
        if args.command == "compat":
            return _compat(args)
        if args.command == "settings":
            from tvmffi_wheel.compiling.settings_reader import reference_markdown

            sys.stdout.write(reference_markdown())
        elif args.command == "cmake-dir":
            print(resources.files("tvmffi_wheel") / "cmake")
    return 0
