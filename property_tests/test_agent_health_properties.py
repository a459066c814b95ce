"""agent_health's verdict: Loading probes are neither good nor bad. Whatever Loading probes are
interleaved, the failure streak and the verdict are those of the same run without them; and a
backend whose last probe said Loading takes no traffic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.schema import AgentHealthConfig
from a3s_gateway.runtime.api import Backend
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.health.agent import _GOOD, LOADING, STATES, AgentHealthChecker


def run(states: list[str], up: int, down: int) -> tuple[AgentHealthChecker, Backend]:
    config = AgentHealthConfig(server="json", healthy_threshold=up, unhealthy_threshold=down)
    checker = AgentHealthChecker(config, clock=ManualClock())
    backend = Backend("http://model")
    checker.track([backend], 0.0)
    for t, state in enumerate(states):
        checker._states[backend.key] = state
        checker.record(backend, _GOOD[state], float(t))
    return checker, backend


@settings(deadline=None)
@given(st.lists(st.sampled_from(STATES), max_size=40), st.integers(1, 4), st.integers(1, 4))
def test_loading_is_invisible_to_the_verdict(states: list[str], up: int, down: int) -> None:
    checker, backend = run(states, up, down)
    without, _ = run([s for s in states if s != LOADING], up, down)
    mine, theirs = checker._targets[backend.key].state, without._targets[backend.key].state
    assert (mine.healthy, mine.streak) == (theirs.healthy, theirs.streak)
    if states and states[-1] == LOADING:
        assert not backend.healthy
    else:
        assert backend.healthy is mine.healthy
