"""A tally (runtime/observe/tally.py) batches a kind of request's durations and folds them into
its children in C: whatever the durations (bucket bounds included) and wherever the reads fall
(a read folds first), its counters and histograms hold what one-by-one updates would have,
the sums up to rounding; a child is made when its first value is recorded, not before."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from a3s_gateway.runtime.observe.local_metrics import LocalCounter, LocalHistogram
from a3s_gateway.runtime.observe.tally import BATCH, Immediate, Tally

_BOUNDS = [0.005, 0.05, 0.5, 5.0]
# Durations on and around the bounds as well as anywhere.
_SECONDS = st.sampled_from([0.0, *_BOUNDS]) | st.floats(min_value=0, max_value=20, allow_nan=False)
# A request: its start-to-end and reached-to-end durations (None: it never reached the
# service), and whether the registry is read after it.
_REQUEST = st.tuples(_SECONDS, st.none() | _SECONDS, st.booleans())


class _Service:
    def __init__(self) -> None:
        self.ttfb = LocalHistogram(_BOUNDS)
        self.retries = LocalCounter(_BOUNDS)


def _pair() -> tuple[LocalCounter, LocalHistogram]:
    return LocalCounter(_BOUNDS), LocalHistogram(_BOUNDS)


@given(st.lists(_REQUEST, max_size=3 * BATCH))
def test_a_tally_holds_what_one_by_one_updates_would(
    requests: list[tuple[float, float | None, bool]],
) -> None:
    entry, served = _pair(), _pair()
    made: list[str] = []

    def elapsed_targets() -> list[tuple[Any, Any]]:
        made.append("elapsed")
        return [entry]

    def served_targets() -> list[tuple[Any, Any]]:
        made.append("served")
        return [served]

    tally = Tally(elapsed_targets, served_targets, None, _Service(), local=True)
    expected_entry, expected_served = _pair(), _pair()
    for elapsed, reached, read in requests:
        end = 100.0
        tally.ended(end - elapsed, None if reached is None else end - reached, end)
        # The same durations, recorded one by one (the subtraction as `ended` does it).
        expected_entry[0].inc()
        expected_entry[1].observe(end - (end - elapsed))
        if reached is not None:
            expected_served[0].inc()
            expected_served[1].observe(end - (end - reached))
        if read:
            tally.fold()
    tally.fold()
    for got, want in ((entry, expected_entry), (served, expected_served)):
        assert got[0].value == want[0].value
        assert got[1].counts == want[1].counts
        assert math.isclose(got[1].sum, want[1].sum, rel_tol=1e-9, abs_tol=1e-9)
    # A child exists once a value went to it, never before.
    assert made.count("elapsed") == (1 if requests else 0)
    assert made.count("served") == (1 if any(r is not None for _, r, _ in requests) else 0)


@given(st.lists(_SECONDS, max_size=20))
def test_immediate_values_are_recorded_at_once(durations: list[float]) -> None:
    # Under --workers (prometheus-client's children) nothing waits for a fold: another process
    # may read the values at any time.
    counter, histogram = _pair()
    values = Immediate(lambda: [(counter, histogram)])
    for i, seconds in enumerate(durations, 1):
        values.append(seconds)
        assert counter.value == i
        assert sum(histogram.counts) == i
    assert len(values) == 0
