"""The versions of the tools that build a wheel, for its SBOM (common/sbom.py)."""

from __future__ import annotations

import contextlib
import subprocess
from importlib import metadata

from tvmffi_wheel.common.cuda import CudaFacts
from tvmffi_wheel.compiling import _skbuild
from tvmffi_wheel.compiling.toolchain import ToolchainPlan


def _output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def tool_versions(toolchain: ToolchainPlan, cuda: CudaFacts | None) -> dict[str, str]:
    """scikit-build-core's and CMake's; zig's; GCC's where zig links its libstdc++.a in; the
    nvidia-cuda-runtime wheel's where the toolkit came from PyPI. What cannot be found is left
    out rather than guessed."""
    versions = _skbuild.tool_versions()
    if toolchain.zig is not None:
        versions["zig"] = _output([str(toolchain.zig), "version"])
    if toolchain.cxx_runtime == "libstdc++" and toolchain.compilers is not None:
        versions["gcc"] = _output([str(toolchain.compilers[0]), "-dumpfullversion"])
    if cuda is not None and cuda.toolkit_source == "pip":
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions["nvidia-cuda-runtime"] = metadata.version("nvidia-cuda-runtime")
    return {tool: version for tool, version in versions.items() if version}

