"""How much runs at once: one thread a core this process may run on."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its affinity, as a container or taskset limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
