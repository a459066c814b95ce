"""Properties of the pure limiters and of the circuit breaker table, on a fake clock.

- A token bucket never admits more than `burst + rate * t` requests in any interval of length t.
- A sliding window never admits more than `limit` requests in any interval of length `period`.
- A fixed window never admits more than `limit` requests in one window.
- A limiter table never holds more than `max_keys` keys.
- The breaker table is total, and a random walk over (input, time) keeps its invariants; every
  (state, input) pair is visited under every relevant guard outcome.
"""

from __future__ import annotations

import bisect
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.stdlib.common.breaker import TABLE, Breaker, BreakerPolicy, Input, State, Ticket
from a3s_gateway.stdlib.common.limiters import (
    FixedWindow,
    LimiterSpec,
    LimiterTable,
    SlidingWindow,
    TokenBucket,
)

# Gaps between request attempts, in seconds: bursts (0), sub-interval spacing, and long pauses.
gaps = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.2), st.floats(min_value=0.0, max_value=5.0)),
    min_size=1,
    max_size=150,
)


def _times(start: float, deltas: list[float]) -> list[float]:
    return list(itertools.accumulate(deltas, initial=start))[1:]


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=100.0),
    burst=st.integers(min_value=1, max_value=20),
    deltas=gaps,
    start=st.floats(min_value=0.0, max_value=1e6),
)
def test_token_bucket_never_exceeds_burst_plus_rate_times_t(
    rate: float, burst: int, deltas: list[float], start: float
) -> None:
    bucket = TokenBucket(rate, burst, start)
    admitted = [t for t in _times(start, deltas) if bucket.hit(t).allowed]
    for i, first in enumerate(admitted):
        for j in range(i, len(admitted)):
            t = admitted[j] - first
            assert j - i + 1 <= burst + rate * t + 1e-6, (first, admitted[j])


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=15),
    period=st.floats(min_value=0.01, max_value=10.0),
    deltas=gaps,
    start=st.floats(min_value=0.0, max_value=1e6),
)
def test_sliding_window_never_exceeds_its_limit(
    limit: int, period: float, deltas: list[float], start: float
) -> None:
    window = SlidingWindow(limit, period)
    admitted = [t for t in _times(start, deltas) if window.hit(t).allowed]
    for i, first in enumerate(admitted):
        # Admissions in the half-open interval [first, first + period).
        end = bisect.bisect_left(admitted, first + period, lo=i)
        assert end - i <= limit


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=15),
    period=st.floats(min_value=0.01, max_value=10.0),
    deltas=gaps,
)
def test_fixed_window_never_exceeds_its_limit_per_window(
    limit: int, period: float, deltas: list[float]
) -> None:
    window = FixedWindow(limit, period)
    counts: dict[int, int] = {}
    for t in _times(0.0, deltas):
        if window.hit(t).allowed:
            counts[int(t // period)] = counts.get(int(t // period), 0) + 1
    assert all(count <= limit for count in counts.values())


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from(["token-bucket", "fixed-window", "sliding-window"]),
    max_keys=st.integers(min_value=1, max_value=8),
    hits=st.lists(st.tuples(st.integers(min_value=0, max_value=20), st.floats(0.0, 3.0)), max_size=200),
)
def test_limiter_table_is_bounded_and_decisions_are_consistent(
    algorithm: str, max_keys: int, hits: list[tuple[int, float]]
) -> None:
    table = LimiterTable(LimiterSpec(algorithm, 3, 1.0, 3), max_keys)  # type: ignore[arg-type]
    now = 0.0
    for key, gap in hits:
        now += gap
        decision = table.hit(str(key), now)
        assert len(table) <= max_keys
        assert 0 <= decision.remaining <= decision.limit
        assert decision.allowed == (decision.retry_after == 0)


# --------------------------------------------------------------------------- circuit breaker

POLICY = BreakerPolicy(failure_threshold=3, cooldown=10.0, success_threshold=2, half_open_max_requests=2)
GUARDS = {"always", "failure_trips", "cooled_down", "trial_slot_free", "enough_successes"}


def test_breaker_table_is_total_and_well_formed() -> None:
    for state, event in itertools.product(State, Input):
        rows = TABLE[(state, event)]
        assert rows[-1].guard == "always", (state, event)
        assert all(row.guard in GUARDS for row in rows)
    assert set(TABLE) == set(itertools.product(State, Input))


def _breaker_in(state: State, now: float) -> tuple[Breaker, list[Ticket]]:
    """A breaker driven (through its public inputs) into `state` at time `now`."""
    breaker = Breaker(POLICY)
    tickets: list[Ticket] = []
    if state is State.CLOSED:
        return breaker, tickets
    for _ in range(POLICY.failure_threshold):
        ticket = breaker.request(now - 20)
        assert ticket is not None
        breaker.record(ticket, Input.FAILURE, now - 20)
    if state is State.OPEN:
        breaker.opened_at = now - 5  # still cooling down at `now`
        return breaker, tickets
    ticket = breaker.request(now)
    assert ticket is not None and ticket.trial
    tickets.append(ticket)
    return breaker, tickets


# Each variant sets the counters so that the guard of the first row holds, or not.
VARIANTS = ["first-row", "fallback"]


def _arrange(breaker: Breaker, state: State, event: Input, variant: str, now: float) -> None:
    first = variant == "first-row"
    if state is State.CLOSED and event is Input.FAILURE:
        breaker.consecutive_failures = POLICY.failure_threshold - 1 if first else 0
    elif state is State.OPEN and event is Input.REQUEST:
        breaker.opened_at = now - (POLICY.cooldown if first else 1.0)
    elif state is State.HALF_OPEN and event is Input.REQUEST:
        breaker.trials_in_flight = 1 if first else POLICY.half_open_max_requests
    elif state is State.HALF_OPEN and event is Input.SUCCESS:
        breaker.trial_successes = POLICY.success_threshold - 1 if first else 0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("event", list(Input))
@pytest.mark.parametrize("state", list(State))
def test_every_state_and_input_follows_the_table(state: State, event: Input, variant: str) -> None:
    now = 1000.0
    breaker, _ = _breaker_in(state, now)
    assert breaker.state is state
    _arrange(breaker, state, event, variant, now)
    rows = TABLE[(state, event)]
    expected = rows[0] if variant == "first-row" or len(rows) == 1 else rows[-1]
    epoch = breaker.epoch
    if event is Input.REQUEST:
        ticket = breaker.request(now)
        assert (ticket is None) == (expected.action.value == "reject")
    elif event is Input.STALE:
        action = breaker.record(Ticket(epoch - 1, trial=False), Input.SUCCESS, now)
        assert action is expected.action
    else:
        action = breaker.record(Ticket(epoch, trial=state is State.HALF_OPEN), event, now)
        assert action is expected.action
    assert breaker.state is expected.target
    assert (breaker.epoch != epoch) == (expected.target is not state)
    _check_invariants(breaker, now)


def _check_invariants(breaker: Breaker, now: float) -> None:
    if breaker.state is State.CLOSED:
        assert breaker.consecutive_failures < POLICY.failure_threshold
        assert breaker.trials_in_flight == 0
    if breaker.state is State.HALF_OPEN:
        assert 0 <= breaker.trials_in_flight <= POLICY.half_open_max_requests
        assert breaker.trial_successes < POLICY.success_threshold
    if breaker.state is State.OPEN:
        assert breaker.retry_after(now) <= POLICY.cooldown + 1e-9


steps = st.lists(
    st.tuples(
        st.sampled_from(["request", "success", "failure", "cancel"]), st.floats(0.0, 8.0), st.integers(0, 5)
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps)
def test_random_walks_keep_the_breaker_invariants(steps: list[tuple[str, float, int]]) -> None:
    breaker = Breaker(POLICY)
    now = 0.0
    in_flight: list[Ticket] = []
    for kind, gap, pick in steps:
        now += gap
        before = breaker.state
        if kind == "request":
            cooled = before is State.OPEN and now >= breaker.opened_at + POLICY.cooldown
            ticket = breaker.request(now)
            if before is State.CLOSED or cooled:
                assert ticket is not None
            if before is State.OPEN and not cooled:
                assert ticket is None
            if ticket is not None:
                in_flight.append(ticket)
        elif in_flight:
            ticket = in_flight.pop(pick % len(in_flight))
            outcome = {"success": Input.SUCCESS, "failure": Input.FAILURE, "cancel": Input.CANCEL}[kind]
            breaker.record(ticket, outcome, now)
            if before is State.CLOSED and breaker.state is State.OPEN:
                assert outcome is Input.FAILURE
            if breaker.state is State.CLOSED and before is not State.CLOSED:
                assert outcome is Input.SUCCESS and ticket.trial
        _check_invariants(breaker, now)
