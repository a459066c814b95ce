"""The rapid-reset budget of an HTTP/2 connection on a manual clock (STYLE.md practice 6).

`ResetBudget` takes `now`, so these properties drive it through any sequence of accepted
streams, client resets and elapsed times:

* safety: however resets are timed, the ones allowed between two instants never exceed
  `burst + rate * elapsed` (a token bucket), nor `max_resets` in a window of accepted streams;
* liveness: a client that resets no faster than `rate` per second and within the per-streams
  share is never cut off.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from a3s_gateway.runtime.protocols._h2guard import ResetBudget

# (seconds since the previous step, True for a reset / False for an accepted stream)
_STEPS = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=0.5, allow_nan=False), st.booleans()), max_size=300
)


@given(
    steps=_STEPS,
    rate=st.floats(min_value=0.5, max_value=200.0),
    burst=st.integers(min_value=1, max_value=50),
)
def test_allowed_resets_never_outrun_the_bucket(
    steps: list[tuple[float, bool]], rate: float, burst: int
) -> None:
    budget = ResetBudget(max_resets=10**9, per_streams=10**9, rate=rate, burst=burst)
    now, allowed = 0.0, []
    for dt, is_reset in steps:
        now += dt
        if not is_reset:
            budget.accepted()
        elif budget.reset(now) is None:
            allowed.append(now)
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= burst + rate * (allowed[j] - start) + 1e-6


@given(steps=_STEPS, max_resets=st.integers(min_value=1, max_value=20))
def test_allowed_resets_never_exceed_the_share_of_accepted_streams(
    steps: list[tuple[float, bool]], max_resets: int
) -> None:
    per_streams = 2 * max_resets
    budget = ResetBudget(max_resets=max_resets, per_streams=per_streams, rate=1e9, burst=10**9)
    in_window = accepted = 0
    for _, is_reset in steps:
        if not is_reset:
            budget.accepted()
            accepted += 1
            if accepted > per_streams:  # the window moves on with this stream
                accepted, in_window = 1, 0
        elif budget.reset(0.0) is None:
            in_window += 1
            assert in_window <= max_resets


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), max_size=200),
    rate=st.floats(min_value=1.0, max_value=200.0),
    burst=st.integers(min_value=1, max_value=50),
)
def test_a_client_within_the_rate_is_never_cut_off(gaps: list[float], rate: float, burst: int) -> None:
    budget = ResetBudget(max_resets=1, per_streams=1, rate=rate, burst=burst)
    now = 0.0
    for gap in gaps:
        now += max(gap, 1.0 / rate) * (1 + 1e-9)  # never faster than `rate`
        budget.accepted()  # one stream per reset: within any share
        assert budget.reset(now) is None
