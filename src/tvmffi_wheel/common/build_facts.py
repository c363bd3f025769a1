"""The record every wheel carries of how it was built: `<name>.dist-info/tvmffi_wheel.json`.

One typed record, written by the repair and read by `check`, the loader and the next repair,
all through this module. Versioned: a document without a "schema" key is schema 1, the
layout below, which every release so far writes. A field added later is optional to the
reader, so older wheels still read; a change an older reader would misread writes
`"schema": 2`. A reader keeps the keys it does not know (`others`) and writes them back.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from tvmffi_wheel.common.cuda import CudaFacts

BUILD_FACTS_FILE = "tvmffi_wheel.json"
_CUDA_FIELDS = ("toolkit", "toolkit_source", "architectures", "runtime", "variant")


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """What only the backend's build knows: present when the backend built the wheel."""

    cuda: CudaFacts | None  # the CUDA build, with the architectures its device code has when undeclared
    link: Mapping[str, str]  # how the binaries were linked (toolchain.py's link_facts)
    # The tools' versions, for the SBOM: scikit-build-core, cmake, zig, gcc (whose libstdc++.a zig
    # links in), nvidia-cuda-runtime (the wheel a PyPI toolkit came with)
    tools: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BuildFacts:
    generator: str  # "tvmffi-wheel 0.1.0"
    tvm_ffi_version: str  # the apache-tvm-ffi built against
    platform: str  # the first platform tag
    compilers: tuple[str, ...] = ()  # what the binaries' .comment sections name
    device_code: tuple[str, ...] = ()  # e.g. ("PTX compute_90", "SASS sm_75")
    device_code_by_arch: Mapping[str, int] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # the build's, which pip hides; `check` shows them
    build: BuildRecord | None = None  # None: built elsewhere and repaired by the command
    install_dir: str = ""  # the project's wheel.install-dir, when the backend knew it
    others: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # keys of another version, kept

    def to_json(self) -> str:
        document: dict[str, Any] = {
            **self.others,
            "warnings": list(self.warnings),
            "generator": self.generator,
            "tvm_ffi_version": self.tvm_ffi_version,
            "platform": self.platform,
            "compilers": list(self.compilers),
            "device_code": list(self.device_code),
            "device_code_by_arch": dict(self.device_code_by_arch),
        }
        if self.install_dir:
            document["install_dir"] = self.install_dir
        if self.build is not None:
            document["cuda"] = self.build.cuda.to_json() if self.build.cuda is not None else None
            document["link"] = dict(self.build.link)
            if self.build.tools:
                document["tools"] = dict(self.build.tools)
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    @classmethod
    def unknown(cls) -> BuildFacts:
        """The record of a wheel that carries none."""
        return cls(generator="", tvm_ffi_version="", platform="")

    def next(self, *, generator: str, tvm_ffi_version: str, platform: str, compilers: tuple[str, ...],
             device_code: tuple[str, ...], device_code_by_arch: Mapping[str, int], warnings: tuple[str, ...],
             build: BuildRecord | None, install_dir: str) -> BuildFacts:
        """This record after another repair: what this run knows replaces what it says, and what
        only an earlier build knew (its toolkit, its link, its install dir) is kept."""
        return BuildFacts(generator, tvm_ffi_version, platform, compilers, device_code, device_code_by_arch,
                          tuple(dict.fromkeys([*self.warnings, *warnings])), build or self.build,
                          install_dir or self.install_dir, self.others)


_KNOWN = {"warnings", "generator", "tvm_ffi_version", "platform", "compilers", "device_code", "device_code_by_arch",
          "install_dir", "cuda", "link", "tools"}


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _cuda_from_json(value: Any) -> CudaFacts | None:
    if not isinstance(value, dict) or not all(isinstance(value.get(name, ""), str) for name in _CUDA_FIELDS):
        return None
    return CudaFacts(value.get("toolkit", ""), value.get("toolkit_source", "system"), value.get("architectures", ""),
                     value.get("runtime", "static"), value.get("variant", "none"))


def build_facts_from_json(text: str) -> BuildFacts | None:
    """The record in ``text``; None when it is not one (damaged, or another file)."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    by_arch = document.get("device_code_by_arch")
    link = document.get("link")
    build = None
    if "cuda" in document or "link" in document:
        link_facts = {str(k): str(v) for k, v in link.items()} if isinstance(link, dict) else {}
        tools = document.get("tools")
        tool_versions = {str(k): str(v) for k, v in tools.items()} if isinstance(tools, dict) else {}
        build = BuildRecord(_cuda_from_json(document.get("cuda")), link_facts, tool_versions)
    return BuildFacts(
        generator=str(document.get("generator", "")),
        tvm_ffi_version=str(document.get("tvm_ffi_version", "")),
        platform=str(document.get("platform", "")),
        compilers=_strings(document.get("compilers")),
        device_code=_strings(document.get("device_code")),
        device_code_by_arch={str(k): int(v) for k, v in by_arch.items() if isinstance(v, int)}
        if isinstance(by_arch, dict) else {},
        warnings=_strings(document.get("warnings")),
        build=build,
        install_dir=str(document.get("install_dir", "")),
        others={k: v for k, v in document.items() if k not in _KNOWN},
    )
