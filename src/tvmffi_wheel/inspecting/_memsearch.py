"""The one module that calls C through ctypes: libc's memmem, to search bytes without the GIL.

`bytes.find` holds the GIL for the whole search. Scanning a large member for device code
that way stalled the thread inflating it (zlib takes the GIL back between output blocks),
so inflating and scanning ran one after the other: 1.2 s instead of 0.8 s for the repair
benchmark's 315 MB library. A ctypes call releases the GIL while memmem runs.

memmem is in glibc, musl and macOS's libSystem. Where it cannot be found (Windows, whose C
runtime has none), `bytes.find` does the same search, holding the GIL.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _load_memmem() -> Callable[..., int | None] | None:
    try:
        function = ctypes.CDLL(None).memmem  # the C library the process already has loaded
    except (OSError, AttributeError, TypeError):
        return None
    function.restype = ctypes.c_void_p
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return function


_MEMMEM = _load_memmem()


def find_all(data: bytes, needle: bytes) -> list[int]:
    """Every position where ``needle`` starts in ``data``, overlapping ones included."""
    found = []
    if _MEMMEM is None:
        position = data.find(needle)
        while position != -1:
            found.append(position)
            position = data.find(needle, position + 1)
        return found
    keep_alive = ctypes.c_char_p(data)  # points into the bytes object itself: no copy
    base = ctypes.cast(keep_alive, ctypes.c_void_p).value or 0
    start, end = 0, len(data)
    while start < end:
        hit = _MEMMEM(base + start, end - start, needle, len(needle))
        if hit is None:
            break
        found.append(hit - base)
        start = hit - base + 1
    return found
