"""The wheel's own record, tvmffi_wheel.json: one typed record, read back as written, and
readable from wheels of earlier tvmffi-wheel releases."""

from __future__ import annotations

import json

from tvmffi_wheel.common.build_facts import BuildFacts, BuildRecord, build_facts_from_json
from tvmffi_wheel.common.cuda import CudaFacts

# As tvmffi-wheel 0.1.0 wrote it for a CUDA build (keys sorted, two spaces, a final newline).
WRITTEN = """{
  "compilers": [
    "GCC: (Debian 12.2.0-14+deb12u1) 12.2.0"
  ],
  "cuda": {
    "architectures": "75-real;90-virtual",
    "runtime": "static",
    "toolkit": "13.0",
    "toolkit_source": "system",
    "variant": "none"
  },
  "device_code": [
    "PTX compute_90",
    "SASS sm_75"
  ],
  "device_code_by_arch": {
    "compute_90": 408,
    "sm_75": 912
  },
  "generator": "tvmffi-wheel 0.1.0",
  "link": {
    "linker": "the system compiler's"
  },
  "platform": "manylinux_2_34_x86_64",
  "tvm_ffi_version": "0.1.15.post2",
  "warnings": []
}
"""


def test_a_record_reads_back_as_the_same_text():
    facts = build_facts_from_json(WRITTEN)
    assert facts is not None and facts.to_json() == WRITTEN
    assert facts.build is not None and facts.build.cuda == CudaFacts("13.0", "system", "75-real;90-virtual", "static")
    assert facts.device_code_by_arch == {"compute_90": 408, "sm_75": 912}


def test_an_early_record_without_the_later_fields_still_reads():
    early = {"generator": "tvmffi-wheel 0.0.9", "tvm_ffi_version": "0.1.0", "platform": "manylinux_2_17_x86_64",
             "compilers": [], "device_code": []}
    facts = build_facts_from_json(json.dumps(early))
    assert facts == BuildFacts("tvmffi-wheel 0.0.9", "0.1.0", "manylinux_2_17_x86_64")
    assert facts.build is None and facts.install_dir == "" and facts.warnings == ()


def test_what_a_later_schema_adds_is_kept_through_a_repair():
    later = json.loads(WRITTEN) | {"schema": 2, "sbom": {"components": 3}}
    facts = build_facts_from_json(json.dumps(later))
    assert facts is not None and facts.others == {"schema": 2, "sbom": {"components": 3}}
    again = facts.next(generator="tvmffi-wheel 0.2.0", tvm_ffi_version="0.1.16", platform="manylinux_2_28_x86_64",
                       compilers=(), device_code=(), device_code_by_arch={}, warnings=("late",), build=None,
                       install_dir="")
    document = json.loads(again.to_json())
    assert document["schema"] == 2 and document["sbom"] == {"components": 3}
    # What only the first build knew (its toolkit and link) outlives a repair by the command.
    assert document["cuda"]["toolkit"] == "13.0" and document["link"] == {"linker": "the system compiler's"}
    assert document["generator"] == "tvmffi-wheel 0.2.0" and document["warnings"] == ["late"]


def test_a_new_build_replaces_the_record_of_the_old_one():
    old = build_facts_from_json(WRITTEN)
    assert old is not None
    record = BuildRecord(cuda=None, link={"linker": "zig"})
    new = old.next(generator="g", tvm_ffi_version="v", platform="p", compilers=(), device_code=(),
                   device_code_by_arch={}, warnings=(), build=record, install_dir="pkg")
    document = json.loads(new.to_json())
    assert document["cuda"] is None and document["link"] == {"linker": "zig"} and document["install_dir"] == "pkg"


def test_what_is_not_a_record_reads_as_none():
    assert build_facts_from_json("{not json") is None
    assert build_facts_from_json("[1, 2]") is None
