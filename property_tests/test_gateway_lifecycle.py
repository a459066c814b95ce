"""The Gateway lifecycle table: every (state, event) pair, and random event sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from a3s_gateway.runtime.lifecycle import SERVING, TRANSITIONS, Event, Lifecycle, LifecycleError, State


@pytest.mark.parametrize(("state", "event"), list(itertools.product(State, Event)))
def test_every_pair_transitions_or_refuses_without_moving(state: State, event: Event) -> None:
    life = Lifecycle(state)
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(LifecycleError) as info:
            life.fire(event)
        assert info.value.state is state and info.value.event is event
        assert life.state is state
        assert not life.allows(event)
    else:
        assert life.allows(event)
        assert life.fire(event) is expected
        assert life.state is expected


def test_every_state_is_reachable_from_created() -> None:
    seen, frontier = {State.CREATED}, [State.CREATED]
    while frontier:
        state = frontier.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src is state and dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    assert seen == set(State)


def test_every_state_can_reach_stopped() -> None:
    for state in State:
        seen, frontier = {state}, [state]
        while frontier:
            current = frontier.pop()
            for (src, _), dst in TRANSITIONS.items():
                if src is current and dst not in seen:
                    seen.add(dst)
                    frontier.append(dst)
        assert State.STOPPED in seen, state


@given(st.lists(st.sampled_from(list(Event)), max_size=40))
def test_random_event_sequences_follow_the_table(events: list[Event]) -> None:
    life = Lifecycle()
    served = False
    for event in events:
        before = life.state
        try:
            after = life.fire(event)
        except LifecycleError:
            assert life.state is before
            continue
        assert after is TRANSITIONS[(before, event)]
        served = served or after in SERVING
        # Stopped is final: nothing leaves it.
        if before is State.STOPPED:
            assert after is State.STOPPED
        # Serving is only ever reached through a successful start.
        if after is State.RUNNING and before is not State.RELOADING:
            assert (before, event) == (State.STARTING, Event.STARTED)
    if life.state is State.RELOADING:
        assert served


@given(st.lists(st.sampled_from([Event.RELOADED, Event.RELOAD_FAILED]), max_size=20))
def test_any_number_of_reloads_ends_running(outcomes: list[Event]) -> None:
    life = Lifecycle()
    life.fire(Event.START)
    life.fire(Event.STARTED)
    for outcome in outcomes:
        life.fire(Event.RELOAD)
        assert life.state is State.RELOADING
        assert life.fire(outcome) is State.RUNNING
    assert life.fire(Event.SHUTDOWN) is State.STOPPING
    assert life.fire(Event.SHUTDOWN) is State.STOPPING
    assert life.fire(Event.STOPPED) is State.STOPPED
