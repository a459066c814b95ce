"""Rollout state machine, revision statistics, traffic split and tag routing (ManualClock)."""

from __future__ import annotations

import json
import random

import pytest

from a3s_gateway.compiler.schema import RolloutConfig
from a3s_gateway.runtime.api import Headers
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.scalers import (
    Abort,
    Phase,
    RevisionStats,
    RolloutState,
    Start,
    StepStats,
    Tick,
    pick_revision,
    pinned_revision,
    split_traffic,
    transition,
)


def cfg(**kw: object) -> RolloutConfig:
    base: dict[str, object] = {
        "from": "v1", "to": "v2", "step_percent": 25, "step_interval_secs": 10,
        "error_rate_threshold": 0.02, "latency_threshold_ms": 500, "min_requests": 20,
    }  # fmt: skip
    base.update(kw)
    return RolloutConfig.model_validate(base)


def simulate(
    config: RolloutConfig, error_rate: float, latency_ms: float, rps: int = 50, seconds: int = 200
) -> tuple[RolloutState, list[tuple[float, float]], int]:
    """Drive a rollout with `rps` requests a second; errors and latency as given for v2.

    Returns the final state, the (time, percentage) trace and the number of v2 errors clients saw.
    """
    clock = ManualClock()
    stats = RevisionStats("v2")
    rng = random.Random(7)
    state = transition(config, RolloutState.initial(config), Start(), clock.now())
    trace = [(0.0, state.percentage)]
    t0 = clock.now()
    client_errors = 0
    for _ in range(seconds):
        for i in range(rps):
            if rng.random() * 100 < state.percentage:
                failed = (i % round(1 / error_rate) == 0) if error_rate else False
                client_errors += failed
                stats.record(clock.now() + i / rps, latency_ms / 1000, failed)
        clock.advance(1)
        state = transition(config, state, Tick(stats.since(state.step_started, clock.now())), clock.now())
        trace.append((clock.now() - t0, state.percentage))
        if state.finished:
            break
    return state, trace, client_errors


def test_a_healthy_revision_reaches_100_percent() -> None:
    state, trace, _ = simulate(cfg(), error_rate=0.0, latency_ms=40)
    assert state.phase is Phase.DONE and state.percentage == 100
    assert [p for _, p in trace if p] == sorted(p for _, p in trace if p)  # only up
    assert {p for _, p in trace} >= {25, 50, 75, 100}
    assert len(state.log) == 4 and state.log[0].startswith("step 1 at 25%")
    # Four steps of 10 s each.
    assert 40 <= trace[-1][0] <= 44


def test_five_percent_errors_roll_back_within_one_step() -> None:
    config = cfg()
    state, trace, errors = simulate(config, error_rate=0.05, latency_ms=40)
    assert state.phase is Phase.ROLLED_BACK and state.percentage == 0
    assert "error rate" in state.reason
    assert trace[-1][0] <= config.step_interval_secs
    # Errors seen by clients are bounded by what the first step let through.
    assert errors <= 50 * config.step_interval_secs * 0.25 * 0.05 + 1


def test_slow_p99_rolls_back() -> None:
    state, trace, _ = simulate(cfg(), error_rate=0.0, latency_ms=900)
    assert state.phase is Phase.ROLLED_BACK and "p99" in state.reason
    assert trace[-1][0] <= 10


def test_a_quiet_step_is_extended_not_judged() -> None:
    config = cfg(min_requests=100)
    s = transition(config, RolloutState.initial(config), Start(), 0.0)
    s = transition(config, s, Tick(StepStats(requests=10, errors=5)), 11.0)
    assert s.phase is Phase.STEPPING and s.step == 1 and "extended" in s.reason
    s = transition(config, s, Tick(StepStats(requests=100, errors=0, p99_ms=10)), 30.0)
    assert s.step == 2 and s.percentage == 50 and s.step_started == 30.0


@pytest.mark.parametrize(
    ("phase", "event", "expected"),
    [
        (Phase.PENDING, Start(), Phase.STEPPING),
        (Phase.PENDING, Tick(StepStats(100, 100)), Phase.PENDING),
        (Phase.PENDING, Abort("operator"), Phase.ROLLED_BACK),
        (Phase.STEPPING, Start(), Phase.STEPPING),
        (Phase.STEPPING, Abort("operator"), Phase.ROLLED_BACK),
        (Phase.DONE, Abort("late"), Phase.DONE),
        (Phase.ROLLED_BACK, Start(), Phase.ROLLED_BACK),
    ],
)
def test_table(phase: Phase, event: Start | Tick | Abort, expected: Phase) -> None:
    config = cfg()
    state = RolloutState("v1", "v2", phase=phase, step=1 if phase is Phase.STEPPING else 0)
    assert transition(config, state, event, 5.0).phase is expected


def test_state_survives_a_reload_as_json() -> None:
    config = cfg()
    s = transition(config, RolloutState.initial(config), Start(), 0.0)
    s = transition(config, s, Tick(StepStats(50, 0, 12)), 10.0)
    restored = RolloutState.from_dict(json.loads(json.dumps(s.to_dict())))
    assert restored == s and restored.resumes(config)
    assert not restored.resumes(cfg(to="v3"))


# ---------------------------------------------------------------------------- revision stats


def test_revision_stats_windows_and_p99() -> None:
    stats = RevisionStats("v2", retention=30)
    for i in range(100):
        stats.record(100.0 + i * 0.01, 0.010 if i < 99 else 2.0, error=i % 10 == 0)
    window = stats.since(100.0, 101.0)
    assert (window.requests, window.errors) == (100, 10)
    assert 10.0 <= window.p99_ms <= 11.0  # 99 of 100 at 10 ms; the histogram rounds up by <10 %
    stats.record(102.5, 2.0, error=False)
    assert stats.since(102.0).p99_ms >= 2000.0
    stats.record(200.0, 0.001, error=False)  # past retention: old seconds dropped
    assert stats.since(0.0).requests == 1 and stats.total_requests == 102
    assert stats.snapshot(200.0)["recent_requests"] == 1


def test_split_traffic_with_a_rollout() -> None:
    assert split_traffic({"v1": 90, "v2": 10}) == {"v1": 90, "v2": 10}
    assert split_traffic({"v1": 100, "v2": 0}, ("v1", "v2", 30)) == {"v1": 70, "v2": 30}
    assert split_traffic({"v1": 50, "v2": 0, "canary": 50}, ("v1", "v2", 100)) == {
        "v1": 0, "v2": 50, "canary": 50,
    }  # fmt: skip
    assert split_traffic({"v1": 100, "v2": 0}, ("v1", "v2", 0)) == {"v1": 100, "v2": 0}


def test_pick_revision_by_weight() -> None:
    weights = {"v1": 75.0, "v2": 25.0, "off": 0.0}
    assert pick_revision(weights, 0.0) == "v1"
    assert pick_revision(weights, 0.74) == "v1"
    assert pick_revision(weights, 0.76) == "v2"
    assert pick_revision(weights, 0.9999) == "v2"
    assert pick_revision({"a": 0.0}, 0.5) is None
    rng = random.Random(1)
    counts = {"v1": 0, "v2": 0}
    for _ in range(10_000):
        counts[pick_revision(weights, rng.random()) or "v1"] += 1
    assert 2200 < counts["v2"] < 2800


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("x-a3s-revision", "v2")], "v2"),
        ([("x-a3s-revision", "canary")], "v2"),  # by tag
        ([("x-a3s-revision", "nope")], None),
        ([("cookie", "a=1; rev=v1")], "v1"),
        ([("cookie", "rev=canary")], "v2"),
        ([("x-a3s-revision", "v1"), ("cookie", "rev=v2")], "v1"),  # the header wins
        ([], None),
    ],
)
def test_tag_routing(headers: list[tuple[str, str]], expected: str | None) -> None:
    revisions = [("v1", None), ("v2", "canary")]
    assert pinned_revision(Headers.from_pairs(headers), revisions, cookie="rev") == expected
