"""A consistent-hash ring (Karger et al. 1997) with virtual points, as nginx's `hash ... consistent`
(ketama: 160 points per unit of weight) and Envoy's ring hash build it.

Each backend owns `points * weight` pseudo-random positions on a 64-bit circle. A key hashes to a
position and belongs to the owner of the first point at or after it, clockwise. Removing a
backend hands each of its arcs to the next owner along the circle and changes no other key's
owner; adding one takes arcs only from the others, about `1/n` of the keys in all. `walk` goes on
past the first owner, each backend once, for the bounded-load search (`_bounded.py`).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator, Sequence

__all__ = ["HashRing", "hash64"]


def hash64(data: bytes) -> int:
    """A stable 64-bit hash (the same in every worker and every run, unlike `hash()`)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class HashRing:
    """The ring of `(key, weight)` owners, `points` positions per unit of weight (weight 0: none)."""

    __slots__ = ("_distinct", "_owners", "_positions", "signature")

    def __init__(self, owners: Sequence[tuple[str, int]], points: int) -> None:
        # What the ring was built from: a caller rebuilds it only when this changes.
        self.signature = (tuple(owners), points)
        ring = sorted(
            (hash64(f"{key}#{i}".encode()), key)
            for key, weight in owners
            for i in range(points * max(weight, 0))
        )
        self._positions = [position for position, _ in ring]
        self._owners = [key for _, key in ring]
        self._distinct = len(set(self._owners))

    def __len__(self) -> int:
        return len(self._positions)

    def walk(self, position: int) -> Iterator[str]:
        """The owners in ring order from `position` clockwise, each once."""
        count = len(self._positions)
        if not count:
            return
        start = bisect.bisect_left(self._positions, position)
        seen: set[str] = set()
        for step in range(count):
            owner = self._owners[(start + step) % count]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == self._distinct:
                    return
