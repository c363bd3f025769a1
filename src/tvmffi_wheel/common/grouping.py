"""Saying a thing once about many binaries: a release may hold hundreds of libraries built
alike, and one line each buries the answer (`check`'s report and the build's log).

`groups` puts alike items together; `said_once` turns messages that differ only in the
binary they name into one message with a count and an example of the others. Both keep
the order in which each group first appears, so a report reads the same every time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

Item = TypeVar("Item")


def groups(items: Iterable[Item], key: Callable[[Item], Hashable]) -> list[list[Item]]:
    """The items with equal keys together, each group in the order its key first appears."""
    found: dict[Hashable, list[Item]] = {}
    for item in items:
        found.setdefault(key(item), []).append(item)
    return list(found.values())


def subject_of(message: str, subjects: Sequence[str]) -> str:
    """The longest of ``subjects`` the message names ("" for none): `lib/libk1.so` must not
    be taken for the subject of a message about `lib/libk12.so`."""
    return max((s for s in subjects if s and s in message), key=len, default="")


def said_once(messages: Iterable[str], subjects: Sequence[str]) -> list[str]:
    """Each message once: messages that differ only in the subject they name (one of
    ``subjects``, e.g. the binaries' paths) become the first of them, with how many more
    there are and one of them named."""
    keyed = [(subject_of(m, subjects), m) for m in messages]
    said = []
    for group in groups(keyed, key=lambda pair: pair[1].replace(pair[0], "\0") if pair[0] else pair[1]):
        subject, message = group[0]
        if len(group) > 1 and subject:
            message += f" (and {len(group) - 1} more alike, e.g. {group[1][0]})"
        elif len(group) > 1:
            message += f" ({len(group)} times)"
        said.append(message)
    return said


def alike_count(count: int, example: str, noun: str = "libraries") -> str:
    """`300 libraries like manykern/k0/libk0.so` (or the example alone, for one)."""
    return example if count == 1 else f"{count} {noun} like {example}"
