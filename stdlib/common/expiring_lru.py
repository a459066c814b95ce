"""A bounded table whose entries expire: the memory of the strategies that remember where a
conversation or a prompt went (`conversation-affinity`, `prefix-cache`), and of `kairos`'s
decisions.

At most `max_entries` entries are kept, the least recently written (or, read with `touch`, used)
going first; an entry not written again within its `ttl` is gone. Time is a parameter (`now`), so tests use a manual clock.
Both bounds are passed on each write rather than kept: the table is long-lived state that
survives a reload, and a reload may change them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["ExpiringLru"]

K = TypeVar("K")
V = TypeVar("V")


class ExpiringLru(Generic[K, V]):
    """key -> value, least recently written first, each with the time it expires."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float, *, touch: bool = False) -> V | None:
        """The value of `key`, or None when it is absent or expired (then it is dropped); with
        `touch`, a hit counts as a use and moves the entry to the most recent end."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        if touch:
            self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, now: float, ttl: float, max_entries: int) -> None:
        """Write `key` (now the most recent), then drop what is expired or beyond `max_entries`."""
        entries = self._entries
        entries[key] = (value, now + ttl)
        entries.move_to_end(key)
        while len(entries) > max_entries:
            entries.popitem(last=False)
        # The oldest entries are at the front: drop a few expired ones per write, so the table
        # shrinks while traffic flows without a sweep over everything.
        for _ in range(2):
            if not entries:
                break
            oldest = next(iter(entries.values()))
            if oldest[1] > now:
                break
            entries.popitem(last=False)
