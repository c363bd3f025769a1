"""The one module that touches auditwheel, and why.

auditwheel owns the manylinux policies (which libraries a platform provides, which
symbol versions each glibc generation has) and the dynamic loader's search rules. Its
maintainers support the command line only, and its repair step unpacks and recompresses
the whole wheel, so we take the data and the path search from it and do the rest
ourselves. Everything imported from auditwheel is imported here, behind plain objects;
pyproject.toml pins auditwheel to the 6.8 series that this module was written against.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

from auditwheel.architecture import Architecture
from auditwheel.lddtree import load_ld_paths
from auditwheel.libc import Libc
from auditwheel.policy import WheelPolicies

from tvmffi_wheel.errors import TvmFfiWheelError


@dataclasses.dataclass(frozen=True)
class PlatformPolicy:
    """One manylinux platform: what it provides and the symbol versions it allows."""

    name: str  # e.g. "manylinux_2_28_x86_64"
    aliases: tuple[str, ...]  # legacy names, e.g. "manylinux2014_x86_64"
    priority: int  # higher: older glibc, runs on more systems
    symbol_versions: dict[str, frozenset[str]]  # "GLIBC" -> {"GLIBC_2.2.5", ...}
    whitelist: frozenset[str]  # SONAMEs the platform provides
    blacklist: dict[str, frozenset[str]]  # SONAME -> symbols that may not be used


def has_manylinux_policies(arch: str) -> bool:
    """Whether auditwheel has manylinux policies for ``arch`` (a platform tag's spelling)."""
    try:
        Architecture(arch)
    except ValueError:
        return False
    return True


@functools.cache
def manylinux_policies(arch: str) -> tuple[PlatformPolicy, ...]:
    """manylinux policies for ``arch``, best first (highest priority), `linux` excluded."""
    try:
        architecture = Architecture(arch)
    except ValueError:
        raise TvmFfiWheelError(f"auditwheel has no manylinux policies for {arch}") from None
    policies = WheelPolicies(libc=Libc.GLIBC, arch=architecture)
    result = [
        PlatformPolicy(
            name=p.name,
            aliases=p.aliases,
            priority=p.priority,
            # auditwheel stores "GLIBC": {"2.17", ...}; ELF files say "GLIBC_2.17".
            symbol_versions={
                family: frozenset(f"{family}_{v}" for v in versions)
                for family, versions in p.symbol_versions.items()
            },
            whitelist=frozenset(p.whitelist),
            blacklist=dict(p.blacklist),
        )
        for p in policies
        if p.priority > 0
    ]
    return tuple(sorted(result, key=lambda p: p.priority, reverse=True))


def system_library_dirs() -> tuple[str, ...]:
    """Where the dynamic loader looks after run paths: $LD_LIBRARY_PATH, ld.so.conf, defaults."""
    # load_ld_paths logs the paths it parsed at debug level through the root logger.
    logging.getLogger("auditwheel").setLevel(logging.WARNING)
    paths = load_ld_paths(Libc.GLIBC)
    return tuple(dict.fromkeys([*paths["env"], *paths["conf"]]))
