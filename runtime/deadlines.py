"""Deadlines watched by a ticker, so that a wait costs an attribute store instead of a cancel scope.

A cancel scope with a deadline costs several microseconds to enter and leave on asyncio (it
schedules and cancels a timer), which on the request path is a measurable share of a proxied
request. Long-lived waits that rarely time out (an upstream's response head, the next body
chunk) instead publish `deadline` (monotonic seconds, `inf` when not waiting) on an object
registered with a `DeadlineWatch`; the entrypoint's ticker calls `check(now)` a few times a
second and runs `expire()` on whatever is overdue, which typically closes the socket the
waiter is blocked on (the waiter then sees the close and raises the timeout error).

The watch is ambient: the listener sets `CURRENT` in each connection task, and tasks started
from there inherit it (contextvars are copied into new tasks). Code running without one (the
upstream client used on its own, in tests or tools) falls back to cancel scopes.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Protocol

__all__ = ["CURRENT", "DeadlineWatch", "Expirable"]

INF = float("inf")
log = logging.getLogger("a3s_gateway.deadlines")


class Expirable(Protocol):
    deadline: float

    async def expire(self) -> None: ...


class DeadlineWatch(set[Expirable]):
    """The items being watched. A set itself, so that `add` and `discard`, which every upstream
    exchange calls, are the set's own C methods rather than Python methods that call them
    (nothing compares two watches: each is passed on by reference, from the listener down)."""

    __slots__ = ()

    async def check(self, now: float) -> None:
        """Expire every registered item whose deadline has passed (each at most once)."""
        overdue = [item for item in self if item.deadline <= now]
        for item in overdue:
            self.discard(item)
            try:
                await item.expire()
            except Exception:  # one broken item must not stop the ticker that guards all others
                log.exception("expiring %r failed", item)


CURRENT: ContextVar[DeadlineWatch | None] = ContextVar("a3s_deadline_watch", default=None)
