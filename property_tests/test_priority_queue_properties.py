"""Properties of the `queue` middleware's line (stdlib/common/concurrency_queue.py), against a model.

A random walk of arrivals (of random classes), finished requests, clients that leave the line and
limit changes drives `Line` and a few-line reference model side by side. After every step they
agree on who holds a slot, who waits and who was shed, and:

- a slot goes to the oldest waiter of the highest class waiting;
- the one shed when the line is full is the newest waiter of the lowest class, when that class is
  lower than the newcomer's, else the newcomer: no request is shed while one of a lower class
  waits;
- the requests in flight never exceed the limit, except those admitted before the limit was lowered;
- the line never holds more than `max_waiting`, except those who waited before it was lowered.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.stdlib.common.concurrency_queue import Limits, Line, Shed, Waiter
from a3s_gateway.stdlib.common.priority import Priority

Op = tuple[str, int]
# Arrivals are the most frequent step, and often of the same few classes (FIFO within a class).
classes = st.one_of(st.integers(0, 4), st.sampled_from([1, 3]))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), classes),
        st.tuples(st.just("arrive"), classes),
        st.tuples(st.just("finish"), st.integers(0, 50)),
        st.tuples(st.just("leave"), st.integers(0, 50)),
        st.tuples(st.just("limit"), st.integers(1, 4)),
        st.tuples(st.just("max_waiting"), st.integers(0, 5)),
    ),
    max_size=80,
)


@dataclass
class Model:
    """The reference: waiters as (class, arrival number, id), chosen by sorting."""

    limit: int
    max_waiting: int
    in_flight: list[int] = field(default_factory=list)
    waiting: list[tuple[int, int, int]] = field(default_factory=list)
    shed: list[int] = field(default_factory=list)

    def arrive(self, rid: int, cls: int) -> None:
        if len(self.in_flight) < self.limit and not self.waiting:
            self.in_flight.append(rid)
            return
        if len(self.waiting) >= self.max_waiting:
            victim = max(self.waiting, default=None)  # lowest class, newest arrival
            if victim is None or victim[0] <= cls:
                self.shed.append(rid)
                return
            self.waiting.remove(victim)
            self.shed.append(victim[2])
        self.waiting.append((cls, rid, rid))

    def dispatch(self) -> None:
        while self.waiting and len(self.in_flight) < self.limit:
            first = min(self.waiting)
            self.waiting.remove(first)
            self.in_flight.append(first[2])


def run(walk: list[Op], limit: int, max_waiting: int) -> None:
    limits = Limits(limit, max_waiting)
    line = Line(limits)
    model = Model(limit, max_waiting)
    waiters: dict[int, Waiter] = {}
    in_flight: list[int] = []
    shed: list[int] = []
    ids = itertools.count()
    high_water = limit  # the largest limit since the last time the line was at or below it
    for op, arg in walk:
        if op == "arrive":
            rid = next(ids)
            try:
                waiter = line.enter(Priority(arg))
            except Shed:
                shed.append(rid)
            else:
                if waiter is None:
                    in_flight.append(rid)
                else:
                    waiters[rid] = waiter
            model.arrive(rid, arg)
        elif op == "finish" and in_flight:
            rid = in_flight.pop(arg % len(in_flight))
            line.release()
            model.in_flight.remove(rid)
            model.dispatch()
        elif op == "leave" and waiters:
            rid = sorted(waiters)[arg % len(waiters)]
            line.leave(waiters.pop(rid))
            if rid in model.in_flight:
                model.in_flight.remove(rid)
                model.dispatch()
            else:
                model.waiting = [w for w in model.waiting if w[2] != rid]
        elif op in ("limit", "max_waiting"):
            if op == "limit":
                limits.max_concurrent = model.limit = arg
                high_water = max(high_water, arg)
            else:
                limits.max_waiting = model.max_waiting = arg
            line.dispatch()
            model.dispatch()
        # What each waiter was told: a slot, or shed.
        for rid, waiter in list(waiters.items()):
            if waiter.granted:
                in_flight.append(rid)
                del waiters[rid]
            elif waiter.shed:
                shed.append(rid)
                del waiters[rid]
        assert sorted(in_flight) == sorted(model.in_flight)
        assert sorted(waiters) == sorted(w[2] for w in model.waiting)
        assert sorted(shed) == sorted(model.shed)
        assert line.in_flight == len(in_flight) <= max(high_water, limits.max_concurrent)
        if len(in_flight) <= limits.max_concurrent:
            high_water = limits.max_concurrent
        depths = line.waiters.depths()
        assert sum(depths) == len(waiters)
        for cls in Priority:
            assert depths[cls] == sum(1 for w in model.waiting if w[0] == cls)


@settings(max_examples=500, deadline=None)
@given(walk=ops, limit=st.integers(1, 3), max_waiting=st.integers(0, 4))
def test_the_line_matches_its_model(walk: list[Op], limit: int, max_waiting: int) -> None:
    # Waiters hold anyio Events, which need a running event loop.
    async def check() -> None:
        run(walk, limit, max_waiting)

    anyio.run(check)
