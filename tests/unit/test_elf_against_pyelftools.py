"""The ELF reader's facts against pyelftools' reading of the same files.

elf.py reads the tables with struct, for speed; pyelftools, an independent reader, is the
judge here. The files: libraries of this machine (x86_64 and, where the cross libraries are
installed, aarch64), the interpreter, and libraries built on the spot with symbol versions,
weak and hidden symbols.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

from tvmffi_wheel.inspecting.elf import read_elf_facts


def pyelftools_facts(path: Path) -> dict:
    with path.open("rb") as stream:
        elf = ELFFile(stream)
        dynamic = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
        tags: dict[str, list[str]] = {"DT_NEEDED": [], "DT_SONAME": [], "DT_RPATH": [], "DT_RUNPATH": []}
        for tag in dynamic.iter_tags() if dynamic is not None else ():
            if tag.entry.d_tag in tags:
                tags[tag.entry.d_tag].append(str(getattr(tag, tag.entry.d_tag[3:].lower())))
        versions: dict[int, tuple[str | None, str, list[str]]] = {}
        verneed = next((s for s in elf.iter_sections() if isinstance(s, GNUVerNeedSection)), None)
        for entry, aux_entries in verneed.iter_versions() if verneed is not None else ():
            for aux in aux_entries:
                versions[aux["vna_other"]] = (entry.name, aux.name, [])
        undefined, weak, exported = set(), set(), set()
        dynsym = next((s for s in elf.iter_sections() if s["sh_type"] == "SHT_DYNSYM"), None)
        versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
        if isinstance(dynsym, SymbolTableSection):
            indices = [v["ndx"] for v in versym.iter_symbols()] if versym is not None else []
            for position, symbol in enumerate(dynsym.iter_symbols()):
                if not symbol.name:
                    continue
                bind, visibility = symbol["st_info"]["bind"], symbol["st_other"]["visibility"]
                if symbol["st_shndx"] != "SHN_UNDEF":
                    if bind in ("STB_GLOBAL", "STB_WEAK") and visibility in ("STV_DEFAULT", "STV_PROTECTED"):
                        exported.add(symbol.name)
                    continue
                undefined.add(symbol.name)
                if bind == "STB_WEAK":
                    weak.add(symbol.name)
                index = indices[position] if position < len(indices) else None
                if isinstance(index, int) and index & 0x7FFF in versions:
                    versions[index & 0x7FFF][2].append(symbol.name)
        comment = elf.get_section_by_name(".comment")
        texts = comment.data().decode("utf-8", "replace").split("\0") if comment is not None else []
        return {
            "machine": elf["e_machine"],
            "soname": tags["DT_SONAME"][0] if tags["DT_SONAME"] else None,
            "needed": tuple(tags["DT_NEEDED"]),
            "run_paths": tuple(p for p in ":".join(tags["DT_RUNPATH"] or tags["DT_RPATH"]).split(":") if p),
            "versions": tuple((lib, ver, tuple(sorted(names))) for _, (lib, ver, names) in sorted(versions.items())),
            "undefined": frozenset(undefined), "weak": frozenset(weak), "exported": frozenset(exported),
            "compilers": tuple(dict.fromkeys(t.strip() for t in texts if t.strip())),
        }


MACHINES = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64"}


def ours(path: Path) -> dict:
    facts = read_elf_facts(path, str(path))
    return {
        "machine": next(name for name, arch in MACHINES.items() if arch == facts.architecture),
        "soname": facts.install_name, "needed": facts.needed, "run_paths": facts.run_paths,
        "versions": tuple((v.library, v.version, v.symbols) for v in facts.import_versions),
        "undefined": facts.imports, "weak": facts.weak_imports, "exported": facts.exports,
        "compilers": facts.compilers,
    }


def machine_libraries() -> list[Path]:
    found = []
    for folder, count in ((Path("/usr/lib/x86_64-linux-gnu"), 40), (Path("/usr/aarch64-linux-gnu/lib"), 15)):
        candidates = sorted(p for p in folder.glob("lib*.so*") if p.is_file() and not p.is_symlink()) \
            if folder.is_dir() else []
        step = max(1, len(candidates) // count)
        found += [p for p in candidates[::step] if p.read_bytes()[:4] == b"\x7fELF"][:count]
    return [*found, Path(sys.executable).resolve()]


@pytest.mark.parametrize("path", machine_libraries(), ids=str)
def test_facts_of_the_machine_s_libraries_agree(path):
    assert ours(path) == pyelftools_facts(path)


def test_facts_of_a_library_with_versions_weak_and_hidden_symbols_agree(tmp_path):
    (tmp_path / "v.map").write_text("V1 { global: shown; local: *; };\nV2 { global: later; } V1;\n")
    (tmp_path / "k.c").write_text(
        "#include <math.h>\n#include <pthread.h>\n"
        "extern int maybe(void) __attribute__((weak));\n"
        "__attribute__((visibility(\"hidden\"))) int hidden(void) { return 1; }\n"
        "int shown(double x) { return (int)sqrt(x) + hidden() + (maybe ? maybe() : 0); }\n"
        "int later(void) { return pthread_self() != 0; }\n"
    )
    library = tmp_path / "libk.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", library, tmp_path / "k.c", "-lm", "-lpthread",
                    f"-Wl,--version-script,{tmp_path / 'v.map'}", "-Wl,-soname,libk.so.2",
                    "-Wl,--disable-new-dtags,-rpath,/opt/a:$ORIGIN"], check=True)
    mine = ours(library)
    assert mine == pyelftools_facts(library)
    assert mine["exported"] >= {"shown", "later"} and "hidden" not in mine["exported"]
    assert "maybe" in mine["weak"] and mine["run_paths"] == ("/opt/a", "$ORIGIN")
