"""Decisions by prompt hash: bounded (least recently used out first) and with a time to live.

Time is a parameter (`now`, the clock's monotonic seconds), so the TTL is tested on a manual clock.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DecisionCache"]


class DecisionCache:
    __slots__ = ("_entries", "size", "ttl")

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    def get(self, key: bytes, now: float) -> str | None:
        """The decision cached for `key`, if it has not expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: bytes, choice: str, now: float) -> None:
        if self.size <= 0:
            return
        self._entries[key] = (choice, now + self.ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
