"""Properties of the KPA over arbitrary configurations, load traces and ready counts.

* desired replicas always lie in [min_replicas, max_replicas];
* one decision never moves further than the rate limits allow relative to the ready count
  (Knative's bound: ceil(up_rate x max(1, ready)) and floor(max(1, ready) / down_rate));
* while panicking, desired never goes down;
* desired is monotone in load: more load at every instant never yields fewer replicas.
"""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.stdlib.scalers.kpa import Decision, Kpa, KpaConfig


@st.composite
def configs(draw: st.DrawFn, *, delay: bool = True) -> KpaConfig:
    lo = draw(st.integers(0, 5))
    hi = draw(st.integers(max(1, lo), 60))
    return KpaConfig(
        min_replicas=lo,
        max_replicas=hi,
        container_concurrency=draw(st.integers(0, 20)),
        target_utilization=draw(st.floats(0.1, 1.0)),
        stable_window=float(draw(st.integers(6, 60))),
        panic_window_percentage=draw(st.floats(1.0, 100.0)),
        panic_threshold_percentage=draw(st.floats(101.0, 1000.0)),
        scale_to_zero_grace=float(draw(st.integers(0, 60))),
        scale_down_delay=float(draw(st.integers(0, 30))) if delay else 0.0,
        max_scale_up_rate=draw(st.floats(1.01, 1000.0)),
        max_scale_down_rate=draw(st.floats(1.01, 10.0)),
        tick_interval=float(draw(st.sampled_from([1, 2, 5]))),
    )


loads = st.lists(st.floats(0.0, 2000.0, allow_nan=False), min_size=1, max_size=150)
readies = st.lists(st.integers(0, 80), min_size=1, max_size=150)


def run(cfg: KpaConfig, load: list[float], ready: list[int], start_ready: int = 0) -> list[Decision]:
    """One observation per second, a decision every tick; ready[i % len] replicas at step i."""
    now = 1000.0
    kpa = Kpa(cfg, now=now, ready=start_ready)
    out: list[Decision] = []
    for i, value in enumerate(load):
        kpa.observe(now, value)
        if i % int(cfg.tick_interval) == 0:
            out.append(kpa.decide(now, ready[i % len(ready)]))
        now += 1.0
    return out


@settings(max_examples=100, deadline=None)
@given(configs(), loads, readies, st.integers(0, 80))
def test_desired_within_bounds(cfg: KpaConfig, load: list[float], ready: list[int], start: int) -> None:
    for d in run(cfg, load, ready, start):
        assert cfg.min_replicas <= d.desired <= cfg.max_replicas, d


@settings(max_examples=100, deadline=None)
@given(configs(delay=False), loads, readies)
def test_never_faster_than_the_rate_limits(cfg: KpaConfig, load: list[float], ready: list[int]) -> None:
    for d in run(cfg, load, ready):
        base = max(1, d.ready)
        up = math.ceil(cfg.max_scale_up_rate * base)
        down = math.floor(base / cfg.max_scale_down_rate)
        assert (d.max_scale_up, d.max_scale_down) == (up, down)
        if not d.panic:  # a panic holds its earlier maximum, which the current ready may not explain
            assert d.desired <= max(up, cfg.min_replicas), d
        assert d.desired >= min(down, cfg.max_replicas), d


@settings(max_examples=100, deadline=None)
@given(configs(), loads, readies, st.integers(0, 80))
def test_no_scale_down_while_panicking(
    cfg: KpaConfig, load: list[float], ready: list[int], start: int
) -> None:
    decisions = run(cfg, load, ready, start)
    for before, after in itertools.pairwise(decisions):
        if before.panic and after.panic:
            assert after.desired >= before.desired, (before, after)


@settings(max_examples=100, deadline=None)
@given(
    configs(),
    loads,
    st.lists(st.floats(0.0, 500.0, allow_nan=False), min_size=1, max_size=150),
    readies,
)
def test_monotone_in_load(cfg: KpaConfig, load: list[float], extra: list[float], ready: list[int]) -> None:
    more = [v + extra[i % len(extra)] for i, v in enumerate(load)]
    for low, high in zip(run(cfg, load, ready), run(cfg, more, ready), strict=True):
        assert low.desired <= high.desired, (low, high)
