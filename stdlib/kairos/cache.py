"""Decisions by prompt hash: bounded (least recently used out first) and with a time to live
(the table is stdlib/common/expiring_lru.py's; a hit counts as a use).

Time is a parameter (`now`, the clock's monotonic seconds), so the TTL is tested on a manual clock.
"""

from __future__ import annotations

from ..common.expiring_lru import ExpiringLru

__all__ = ["DecisionCache"]


class DecisionCache:
    __slots__ = ("_entries", "size", "ttl")

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: ExpiringLru[bytes, str] = ExpiringLru()

    def get(self, key: bytes, now: float) -> str | None:
        """The decision cached for `key`, if it has not expired."""
        return self._entries.get(key, now, touch=True)

    def put(self, key: bytes, choice: str, now: float) -> None:
        if self.size > 0:
            self._entries.put(key, choice, now, self.ttl, self.size)

    def __len__(self) -> int:
        return len(self._entries)
