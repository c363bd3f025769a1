"""tvmffi-wheel: build, repair, tag and pin wheels of tvm-ffi kernel libraries."""

__version__ = "0.1.0"
