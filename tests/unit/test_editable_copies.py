"""Where an editable build puts the copies of compiled libraries, and how it cleans up."""

import zipfile
from pathlib import Path

from tvmffi_wheel.writing.editable import MANIFEST, excluded_from_distributions, place_beside_sources, planned_copies

ELF = b"\x7fELF" + bytes(60)


def test_members_map_into_their_package_source_folder():
    copies = planned_copies(
        ["pkg/libk.so", "pkg/lib/libn.so", "ns/inner/libi.so", "pkg.libs/libgomp-1a2b3c4d.so.1",
         "pkg-1.0.data/scripts/tool", "other/libo.so"],
        {"pkg": "python/pkg", "ns/inner": "src/ns/inner"},
        "pkg",
    )
    assert copies == {
        "pkg/libk.so": "python/pkg/libk.so",
        "pkg/lib/libn.so": "python/pkg/lib/libn.so",
        "ns/inner/libi.so": "src/ns/inner/libi.so",
        # beside the folder that plays site-packages, so `$ORIGIN/../pkg.libs` holds
        "pkg.libs/libgomp-1a2b3c4d.so.1": "python/pkg.libs/libgomp-1a2b3c4d.so.1",
    }


def editable_wheel(folder: Path, members: dict[str, bytes]) -> Path:
    path = folder / "pkg-1.0-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
        archive.writestr("pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-linux_x86_64\n")
        archive.writestr("pkg-1.0.dist-info/RECORD", "")
    return path


def test_copies_are_written_listed_and_stale_ones_removed(tmp_path):
    project = tmp_path / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "src" / "pkg" / "__init__.py").write_text("")
    first = editable_wheel(tmp_path, {"pkg/libk.so": ELF + b"1", "pkg/lib/libold.so": ELF, "pkg/data.txt": b"x"})
    written = place_beside_sources(first, project, {"pkg": "src/pkg"}, "pkg")
    assert written == ["src/pkg/lib/libold.so", "src/pkg/libk.so"]  # ELF files only
    assert (project / "src/pkg/libk.so").read_bytes() == ELF + b"1"
    assert (project / "src/pkg/libk.so").stat().st_mode & 0o111
    assert excluded_from_distributions(project) == [f"/{MANIFEST}", "/src/pkg/lib/libold.so", "/src/pkg/libk.so"]

    (tmp_path / "second").mkdir()
    second = editable_wheel(tmp_path / "second", {"pkg/libk.so": ELF + b"2"})
    place_beside_sources(second, project, {"pkg": "src/pkg"}, "pkg")
    assert (project / "src/pkg/libk.so").read_bytes() == ELF + b"2"
    assert not (project / "src/pkg/lib").exists()  # the stale copy and its emptied folder are gone
    assert (project / "src/pkg/__init__.py").exists()


def test_a_source_file_listed_in_the_manifest_is_never_removed(tmp_path):
    project = tmp_path / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "src" / "pkg" / "mine.py").write_text("x = 1\n")
    (project / MANIFEST).write_text("src/pkg/mine.py\n")  # edited by hand, say
    place_beside_sources(editable_wheel(tmp_path, {}), project, {"pkg": "src/pkg"}, "pkg")
    assert (project / "src/pkg/mine.py").read_text() == "x = 1\n"
    assert not (project / MANIFEST).exists()
    assert excluded_from_distributions(project) == []
