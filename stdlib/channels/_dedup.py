"""Deliveries a channel has already taken in, remembered for a window: a platform's retry of an
event the agent already got is answered without reaching the agent again.

A delivery is claimed when it arrives, so two copies racing each other let one through; it is
released when the agent failed to take it (an error or a 5xx answer), because then the
platform's retry is exactly what should reach the agent. The table is the node's kept state
(`new_state`), so a reload that leaves the node unchanged keeps it; memory is bounded by
`MAX_ENTRIES` (the oldest deliveries are forgotten first). Time is the caller's `now`.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["MAX_ENTRIES", "SeenDeliveries"]

MAX_ENTRIES = 100_000
"""Deliveries remembered at most per channel node (about 10 MiB): past it, the oldest go first."""


class SeenDeliveries:
    def __init__(self, window: float, max_entries: int = MAX_ENTRIES) -> None:
        self.window = window
        self.max_entries = max_entries
        # delivery key -> monotonic time it expires; insertion order is arrival order, and every
        # entry lives `window` long, so the oldest to expire is always first.
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def claim(self, key: str, now: float) -> bool:
        """True when `key` was not seen within the window (and is now remembered)."""
        if self.window <= 0:
            return True
        self._forget_expired(now)
        if key in self._expiry:
            return False
        self._expiry[key] = now + self.window
        if len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
        return True

    def release(self, key: str) -> None:
        """Forget `key`: the agent did not take it, so a retry must get through."""
        self._expiry.pop(key, None)

    def _forget_expired(self, now: float) -> None:
        expiry = self._expiry
        while expiry:
            key, until = next(iter(expiry.items()))
            if until > now:
                return
            del expiry[key]

    def __len__(self) -> int:
        return len(self._expiry)
