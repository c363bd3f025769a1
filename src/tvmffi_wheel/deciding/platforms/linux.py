"""Linux: ELF binaries, run paths from `$ORIGIN`, and the manylinux policies (auditwheel's)
for what the system provides and which tag the binaries' symbol versions allow."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tvmffi_wheel.common._auditwheel import PlatformPolicy, has_manylinux_policies, manylinux_policies
from tvmffi_wheel.deciding.nvidia import NvidiaLibrary, nvidia_library
from tvmffi_wheel.deciding.platforms.base import LibrarySearch, Platform, TagChoice, TagJudgement, Vendor
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel import WheelBinary

if TYPE_CHECKING:
    from tvmffi_wheel.deciding.classify import Classifier


@dataclasses.dataclass(frozen=True)
class Violation:
    """One reason a binary does not fit a platform policy."""

    file: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.detail}"


def _version_family(version: str) -> str:
    return version.split("_", 1)[0]


def policy_violations(policy: PlatformPolicy, binaries: Iterable[tuple[str, BinaryFacts]]) -> list[Violation]:
    """What in ``binaries`` the platform does not provide: symbol versions and banned symbols."""
    violations = []
    for shown, facts in binaries:
        for need in facts.import_versions:
            if LINUX.matches(need.library, LINUX.loader):
                continue  # the loader's versions are glibc's own; auditwheel skips them too
            allowed = policy.symbol_versions.get(_version_family(need.version))
            if allowed is not None and need.version not in allowed:
                violations.append(Violation(shown, f"needs {need.describe()} (from {need.library})"))
        for library in facts.needed:
            banned = policy.blacklist.get(library, frozenset()) & facts.imports
            if banned:
                violations.append(
                    Violation(shown, f"uses {', '.join(sorted(banned))} from {library}, "
                              f"which {policy.name} forbids")
                )
    return violations


def policy_named(name: str, arch: str) -> PlatformPolicy:
    """The policy the `plat` option names, with or without the architecture suffix."""
    policies = manylinux_policies(arch)
    wanted = name if name.endswith(f"_{arch}") else f"{name}_{arch}"
    for policy in policies:
        if wanted == policy.name or wanted in policy.aliases:
            return policy
    known = ", ".join(p.name for p in policies)
    raise TvmFfiWheelError(f"`plat` is {name!r}, which is not a manylinux platform for {arch}", f"use one of: {known}")


def policy_for_tag(platform: str, arch: str) -> PlatformPolicy | None:
    """The manylinux policy a platform tag names; None for `linux_*` and other tags."""
    for policy in manylinux_policies(arch):
        if platform == policy.name or platform in policy.aliases:
            return policy
    return None


def best_fitting_policy(binaries: Sequence[WheelBinary], classifier: Classifier, arch: str) -> PlatformPolicy | None:
    """The best platform the wheel fits as it is, with nothing vendored; None if none."""
    for policy in manylinux_policies(arch):
        judged = classifier.with_whitelist(policy.whitelist)
        outside = [soname for binary in binaries for soname in judged.unprovided(binary.facts)]
        if not outside and not policy_violations(policy, [(b.path, b.facts) for b in binaries]):
            return policy
    return None


@dataclasses.dataclass(frozen=True)
class LinuxPlatform(Platform):
    def abi_table_key(self, arch: str) -> str:
        return arch  # the table's first entries, before other platforms had any

    def nvidia_library(self, soname: str) -> NvidiaLibrary | None:
        return nvidia_library(soname)

    def check_architecture(self, member: str, arch: str) -> None:
        if not has_manylinux_policies(arch):
            raise TvmFfiWheelError(f"{member} is built for {arch}, which has no manylinux platform")
        super().check_architecture(member, arch)

    def choose_tags(
        self, binaries: Sequence[WheelBinary], classifier: Classifier, arch: str, plat: str, vendor: Vendor,
        deployment_target: str | None,
    ) -> TagChoice:
        """The best candidate policy the binaries fit once vendored, with what rules out the next better one."""
        candidates = [policy_named(plat, arch)] if plat else list(manylinux_policies(arch))
        previous: list[Violation] = []
        for policy in candidates:
            vendored = vendor(classifier.with_whitelist(policy.whitelist))
            checked = [(b.path, b.facts) for b in binaries]
            checked += [(f"{lib.soname} (vendored from {lib.source})", lib.facts) for lib in vendored.values()]
            violations = policy_violations(policy, checked)
            if not violations:
                return TagChoice((policy.name, *policy.aliases), policy, vendored, tuple(str(v) for v in previous))
            previous = violations
        listed = "\n    ".join(str(v) for v in previous[:10])
        if plat:
            raise TvmFfiWheelError(
                f"the wheel cannot be tagged {candidates[0].name}:\n    {listed}",
                f"build on an older glibc (e.g. in the quay.io/pypa/{candidates[0].name} image), or "
                "leave `plat` unset for the best tag these binaries allow",
            )
        raise TvmFfiWheelError(
            f"no manylinux platform allows these binaries:\n    {listed}",
            f"build in a manylinux image (e.g. quay.io/pypa/manylinux_2_28_{arch}) so the binaries "
            "need an older glibc, or set tvmffi-wheel.repair=skip to write a linux_* wheel that PyPI "
            "will not accept",
        )

    def cross_tags(self, binaries: Sequence[WheelBinary], arch: str) -> tuple[str, ...]:
        return (f"linux_{arch}",)

    def policy_problems(self, policy: PlatformPolicy | None, binaries: Sequence[WheelBinary]) -> list[str]:
        if policy is None:
            return []
        return [str(v) for v in policy_violations(policy, [(b.path, b.facts) for b in binaries])]

    def judges_missing_libraries(self, policy: PlatformPolicy | None) -> bool:
        return policy is not None  # a linux_* wheel promises nothing about its system

    def judge_tag(self, carried: str, binaries: Sequence[WheelBinary], classifier: Classifier,
                  arch: str) -> TagJudgement:
        policy = policy_for_tag(carried, arch)
        best = best_fitting_policy(binaries, classifier, arch)
        problems = () if policy is not None else (
            f"tagged {carried}, which promises nothing about the system it runs on and PyPI refuses; "
            "run `tvmffi-wheel repair`",)
        judged_against = policy or best
        if judged_against is not None:
            classifier = classifier.with_whitelist(judged_against.whitelist)
        return TagJudgement(policy, best.name if best is not None else f"linux_{arch}", classifier, problems)


LINUX = LinuxPlatform(
    name="Linux", key="linux", format="elf",
    tvm_ffi=("libtvm_ffi.so*", "libtvm_ffi-*.so*"),
    cuda_driver=("libcuda.so*", "libnvidia-*"),
    loader=("ld-linux*.so*", "ld64.so*"),
    python=("libpython*",),
    provided=(),
    origin="$ORIGIN",
    fold_case=False,
    architectures=("x86_64", "aarch64", "i686", "ppc64le", "s390x", "armv7l", "riscv64"),
    search=LibrarySearch((), True, "its run path, --lib-path, $LD_LIBRARY_PATH and the system's library folders"),
    patcher="patchelf",
    libc="libc.so.6",
    drops_libpython=True,
)
