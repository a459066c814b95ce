"""Properties of the health state machines: every (state, input) pair, against a reference model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.schema import PassiveHealthConfig
from a3s_gateway.stdlib.health.http import ProbeState
from a3s_gateway.stdlib.health.passive import PassiveHealth


@settings(deadline=None)  # timings vary on a loaded CI machine; nothing here is timed
@given(st.integers(1, 5), st.integers(1, 5), st.lists(st.booleans(), max_size=60))
def test_probe_verdict_matches_the_definition(up: int, down: int, results: list[bool]) -> None:
    """The verdict flips exactly when the last `threshold` results since the previous flip all
    contradict it."""
    state = ProbeState()
    verdict, since_flip = True, []
    for good in results:
        flipped = state.record(good, healthy_threshold=up, unhealthy_threshold=down)
        since_flip.append(good)
        threshold = up if not verdict else down
        tail = since_flip[-threshold:]
        expect_flip = len(tail) == threshold and all(r != verdict for r in tail)
        assert flipped is expect_flip
        if expect_flip:
            verdict, since_flip = not verdict, []
        assert state.healthy is verdict
        assert 0 <= state.streak < max(up, down)


events = st.lists(
    st.tuples(st.sampled_from(["ok", "fail", "probe", "wait"]), st.floats(0, 20, allow_nan=False)),
    max_size=60,
)


@settings(deadline=None)  # timings vary on a loaded CI machine; nothing here is timed
@given(st.integers(1, 4), st.floats(0.5, 20), st.floats(0.5, 60), events)
def test_passive_eviction_matches_the_definition(
    max_failures: int, window: float, cooldown: float, evs: list[tuple[str, float]]
) -> None:
    table = PassiveHealth(PassiveHealthConfig(max_failures=max_failures, window=window, cooldown=cooldown))
    now = 1000.0
    run: list[float] = []  # reference: the current run of consecutive failures
    evicted_until: float | None = None
    for event, dt in evs:
        now += dt
        if evicted_until is not None and now >= evicted_until:
            evicted_until = None
        serving = evicted_until is None
        if event == "ok":
            table.record_success("a", now)
            if serving:
                run = []
        elif event == "fail":
            evicted = table.record_failure("a", now)
            expect = False
            if serving:
                run = [*run, now][-max_failures:]
                if len(run) == max_failures and now - run[0] <= window:
                    expect, run, evicted_until = True, [], now + cooldown
            assert evicted is expect
        elif event == "probe":
            table.probe_succeeded("a", now)
            evicted_until = None
        assert table.available("a", now) is (evicted_until is None)
