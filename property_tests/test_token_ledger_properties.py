"""Properties of llm-keys' ledger (stdlib/common/token_ledger.py): whatever the interleaving of
reservations, settlements (real usage at most the estimate) and time, a sliding window never
holds more than its limit (or one request larger than the limit, alone), and its running total
is exactly the sum of the entries still inside the window.
"""

from __future__ import annotations

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.common.token_ledger import LocalLedger, Meter

LIMIT, WINDOW = 100.0, 60.0

# ("reserve", estimate, fraction really used) | ("settle", which outstanding) | ("advance", seconds)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(1, 150), st.floats(0, 1)),
        st.tuples(st.just("settle"), st.integers(0, 20), st.just(0.0)),
        st.tuples(st.just("advance"), st.integers(0, 90), st.just(0.0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_a_window_never_holds_more_than_its_limit(ops: list[tuple[str, int, float]]) -> None:
    anyio.run(_check, ops)


async def _check(ops: list[tuple[str, int, float]]) -> None:
    clock = ManualClock()
    ledger = LocalLedger(clock)
    outstanding: list[tuple[str, float, float, float]] = []  # id, estimate, used, stamp
    for n, (op, value, fraction) in enumerate(ops):
        if op == "reserve":
            meter = Meter("tpm", "window", LIMIT, WINDOW, float(value))
            answer = await ledger.reserve(f"r{n}", [meter])
            if answer.admitted:
                outstanding.append((f"r{n}", float(value), round(value * fraction), answer.stamp))
            else:
                assert answer.retry_after is not None and 0 <= answer.retry_after <= WINDOW
        elif op == "settle" and outstanding:
            rid, estimate, used, stamp = outstanding.pop(value % len(outstanding))
            meter = Meter("tpm", "window", LIMIT, WINDOW, estimate)
            await ledger.settle(rid, [meter], stamp, [used - estimate])
        else:
            clock.advance(value)
        window = ledger.windows.get("tpm")
        if window is None:
            continue
        window.evict(clock.now(), WINDOW)
        amounts = [amount for _, amount in window.entries.values()]
        assert abs(window.total - sum(amounts)) < 1e-6
        assert sum(amounts) <= LIMIT or len(amounts) == 1
