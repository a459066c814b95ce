"""Bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads",
2018), shared by the strategies that prefer one backend for a request (`conversation-affinity`,
`prefix-cache`) but must not pile every request onto it.

With `total` requests in flight over `n` backends, the request being placed makes `total + 1`,
and each backend may hold at most `ceil(c * (total + 1) / n)` of them, `c = 1 + ε` being the
`load_factor`. A backend is *full* when taking one more would pass its bound. Some backend is
always below its bound: were each at or above it, together they would hold at least
`c * (total + 1) > total` requests. With weights, each bound is in proportion to the backend's
share of the total weight, and the same argument holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...runtime.api import Backend
from ._base import Cursor

__all__ = ["LoadBound", "least_loaded"]


class LoadBound:
    """The in-flight bound of each backend of `cands` for the request being placed."""

    __slots__ = ("_per_weight", "_weighted")

    def __init__(self, cands: Sequence[Backend], load_factor: float, *, weighted: bool = False) -> None:
        total = 0
        weight = 0
        for backend in cands:
            total += backend.in_flight
            weight += backend.weight if weighted else 1
        self._weighted = weighted
        self._per_weight = load_factor * (total + 1) / weight if weight else math.inf

    def capacity(self, backend: Backend) -> int:
        """How many requests `backend` may hold in flight, this one included."""
        return math.ceil(self._per_weight * (backend.weight if self._weighted else 1))

    def has_room(self, backend: Backend) -> bool:
        """Whether `backend` can take this request and stay within its bound."""
        return backend.in_flight < self.capacity(backend)


def least_loaded(cands: Sequence[Backend], cursor: Cursor) -> Backend:
    """The backend of `cands` (not empty) with the fewest requests in flight; ties in turn."""
    fewest = min(b.in_flight for b in cands)
    ties = [b for b in cands if b.in_flight == fewest]
    return ties[cursor.advance(len(ties))] if len(ties) > 1 else ties[0]
