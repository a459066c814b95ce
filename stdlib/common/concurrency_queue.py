"""Bounded concurrency with a bounded waiting line served by priority class: the `queue` middleware's state.

Theory of operation, per service (`Line`):

* a request enters at once while fewer than `max_concurrent` are in flight and nobody waits;
* otherwise it waits, in the line of its class (`ClassQueue`: the oldest of the highest class is
  admitted first when a slot frees);
* when `max_waiting` already wait, someone is shed with a 503: the newest waiter of the lowest
  class present if that class is lower than the arrival's (it leaves, the arrival takes its
  place), else the arrival itself. So best_effort goes first, then low, and so on; a critical
  request is shed only by a line full of critical ones;
* a waiter leaves the line when its client goes away (its task is cancelled) or its wait times
  out; a slot granted to a waiter that left at that moment goes to the next one.

`Limits` is shared by every service's line of one middleware node and changed only by
`QueueState.reconfigure` (at a reload's commit): a raised `max_concurrent` admits waiters at
once, a lowered one lets the requests in flight finish and admits no one until below it, and a
lowered `max_waiting` sheds nobody already waiting. The counts are read by the metrics and the
admin API through `statistics()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from .priority import ClassQueue, Priority

__all__ = ["Limits", "Line", "QueueState", "Shed", "Waiter"]


@dataclass(slots=True)
class Limits:
    max_concurrent: int
    max_waiting: int


class Shed(Exception):
    """The request (or the waiter told so) is shed: answer 503."""


class Waiter:
    """A request waiting for a slot: `event` is set when it is granted one or shed."""

    __slots__ = ("event", "granted", "priority", "shed")

    def __init__(self, priority: Priority) -> None:
        self.priority = priority
        self.event = anyio.Event()
        self.granted = False
        self.shed = False


_CLASSES = len(Priority)


class Line:
    """One service's slots and waiting line (see the module docstring)."""

    __slots__ = ("in_flight", "limits", "shed", "timeouts", "waiters")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.in_flight = 0
        self.waiters: ClassQueue[Waiter] = ClassQueue()
        # Requests shed (line full) and timed out, per class.
        self.shed = [0] * _CLASSES
        self.timeouts = [0] * _CLASSES

    def enter(self, priority: Priority) -> Waiter | None:
        """None: the request holds a slot now. A `Waiter`: wait on it. Raises `Shed`."""
        if self.in_flight < self.limits.max_concurrent and not self.waiters:
            self.in_flight += 1
            return None
        if len(self.waiters) >= self.limits.max_waiting:
            lowest = self.waiters.lowest()
            if lowest is None or lowest <= priority:
                self.shed[priority] += 1
                raise Shed
            victim = self.waiters.pop_newest(lowest)
            victim.shed = True
            self.shed[lowest] += 1
            victim.event.set()
        waiter = Waiter(priority)
        self.waiters.append(waiter, priority)
        return waiter

    def leave(self, waiter: Waiter, *, timed_out: bool = False) -> None:
        """`waiter` gives up (its client left, or `timed_out`); a slot it was granted goes back."""
        if waiter.granted:
            waiter.granted = False
            self.release()
        elif self.waiters.remove(waiter) and timed_out:
            self.timeouts[waiter.priority] += 1

    def release(self) -> None:
        """A request that held a slot is over (its response body ended)."""
        self.in_flight -= 1
        self.dispatch()

    def dispatch(self) -> None:
        while self.waiters and self.in_flight < self.limits.max_concurrent:
            waiter = self.waiters.popleft()
            waiter.granted = True
            self.in_flight += 1
            waiter.event.set()

    def statistics(self) -> dict[str, object]:
        depths = self.waiters.depths()
        return {
            "in_flight": self.in_flight,
            "waiting": {p.label: depths[p] for p in Priority},
            "shed": {p.label: self.shed[p] for p in Priority},
            "timeouts": {p.label: self.timeouts[p] for p in Priority},
        }


class QueueState:
    """A `queue` middleware node's lines, by service: live state kept across every reload that
    keeps the node (its config may change: `reconfigure`)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.lines: dict[str, Line] = {}

    def line(self, service: str) -> Line:
        line = self.lines.get(service)
        if line is None:
            line = self.lines[service] = Line(self.limits)
        return line

    def reconfigure(self, limits: Limits) -> None:
        """New limits (at a reload's commit): no waiter is dropped; a raised limit admits at once."""
        self.limits.max_concurrent = limits.max_concurrent
        self.limits.max_waiting = limits.max_waiting
        for line in self.lines.values():
            line.dispatch()

    def statistics(self) -> dict[str, dict[str, object]]:
        return {service: line.statistics() for service, line in sorted(self.lines.items())}
