"""The rollout machine over every (phase, event) pair and over arbitrary event sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.schema import RolloutConfig
from a3s_gateway.stdlib.scalers._rollout import (
    EVENT_TYPES,
    TRANSITIONS,
    Abort,
    Event,
    Phase,
    RolloutState,
    Start,
    StepStats,
    Tick,
    transition,
)

configs = st.builds(
    lambda step, interval, err, lat, mn: RolloutConfig.model_validate(
        {
            "from": "v1",
            "to": "v2",
            "step_percent": step,
            "step_interval_secs": interval,
            "error_rate_threshold": err,
            "latency_threshold_ms": lat,
            "min_requests": mn,
        }
    ),
    st.floats(1, 100),
    st.floats(0.5, 120),
    st.floats(0, 1),
    st.floats(1, 10_000),
    st.integers(0, 200),
)
stats = st.builds(
    lambda n, e, p: StepStats(n, min(e, n), p),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.floats(0, 20_000),
)
events: st.SearchStrategy[Event] = st.one_of(
    st.just(Start()), st.builds(Tick, stats), st.builds(Abort, st.text(max_size=5))
)


@st.composite
def states(draw: st.DrawFn, phase: Phase) -> RolloutState:
    pct = {Phase.PENDING: 0.0, Phase.DONE: 100.0, Phase.ROLLED_BACK: 0.0}.get(phase, draw(st.floats(1, 100)))
    return RolloutState(
        "v1", "v2", phase=phase, step=draw(st.integers(0 if phase is Phase.PENDING else 1, 20)),
        percentage=pct, step_started=draw(st.floats(0, 1000)),
    )  # fmt: skip


def test_the_table_is_complete() -> None:
    assert set(TRANSITIONS) == set(itertools.product(Phase, EVENT_TYPES))


def event_of(kind: type) -> st.SearchStrategy[Event]:
    return {
        Start: st.just(Start()),
        Tick: st.builds(Tick, stats),
        Abort: st.builds(Abort, st.text(max_size=5)),
    }[kind]


@pytest.mark.parametrize(("phase", "kind"), list(itertools.product(Phase, EVENT_TYPES)))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), config=configs, dt=st.floats(0, 2000))
def test_every_state_event_pair(
    phase: Phase, kind: type, data: st.DataObject, config: RolloutConfig, dt: float
) -> None:
    state = data.draw(states(phase))
    event = data.draw(event_of(kind))
    now = state.step_started + dt
    after = transition(config, state, event, now)
    assert 0.0 <= after.percentage <= 100.0
    if state.finished:
        assert after == state, "DONE and ROLLED_BACK absorb every event"
    if after.phase is Phase.ROLLED_BACK and not state.finished:
        assert after.percentage == 0.0 and after.reason
        if isinstance(event, Tick):  # only a judged step rolls back
            assert event.stats.requests >= max(1, config.min_requests)
    if after.phase is Phase.DONE and not state.finished:
        assert state.percentage >= 100.0 and isinstance(event, Tick)
        assert now - state.step_started >= config.step_interval_secs
    if state.phase is Phase.STEPPING and after.phase is Phase.STEPPING:
        assert after.percentage >= state.percentage and after.step >= state.step
    if state.phase is not Phase.PENDING:
        assert after.phase is not Phase.PENDING
    assert RolloutState.from_dict(after.to_dict()) == after


@settings(max_examples=200, deadline=None)
@given(configs, st.lists(st.tuples(events, st.floats(0, 60)), max_size=60))
def test_sequences_only_move_forward(config: RolloutConfig, seq: list[tuple[Event, float]]) -> None:
    state = RolloutState.initial(config)
    now = 0.0
    for event, dt in seq:
        now += dt
        after = transition(config, state, event, now)
        if after.phase is Phase.STEPPING and state.phase is Phase.STEPPING:
            assert after.percentage >= state.percentage
            # A step only advances once its interval is over.
            if after.step > state.step:
                assert now - state.step_started >= config.step_interval_secs
                assert after.percentage == min(100.0, state.percentage + config.step_percent)
        state = after
