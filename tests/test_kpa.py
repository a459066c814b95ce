"""The Knative Pod Autoscaler as a pure decision object, driven by a ManualClock."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from a3s_gateway.compiler.schema import ScalingConfig
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.registry import lookup
from a3s_gateway.stdlib.scalers._window import ConcurrencyMeter, MaxWindow, WindowAverage
from a3s_gateway.stdlib.scalers.kpa import Decision, Kpa, KpaConfig


def drive(
    kpa: Kpa,
    clock: ManualClock,
    load: Callable[[float], float],
    seconds: float,
    ready: int | Callable[[], int],
) -> list[Decision]:
    """Observe `load(t)` once a second and decide every tick_interval, as the runtime does."""
    out: list[Decision] = []
    start = clock.now()
    next_tick = start
    while clock.now() - start < seconds:
        kpa.observe(clock.now(), load(clock.now() - start))
        if clock.now() >= next_tick:
            out.append(kpa.decide(clock.now(), ready() if callable(ready) else ready))
            next_tick += kpa.config.tick_interval
        clock.advance(1.0)
    return out


def test_registered_as_scaler_kind() -> None:
    kind = lookup("scaler", "kpa")
    assert kind is not None and kind.impl is Kpa and kind.config is KpaConfig
    assert "Knative" in kind.doc


def test_defaults_match_the_scaling_block() -> None:
    scaling = ScalingConfig()
    assert KpaConfig.from_scaling(scaling) == KpaConfig()
    for name, field in KpaConfig.model_fields.items():
        assert field.default == ScalingConfig.model_fields[name].default, name


@pytest.mark.parametrize(
    ("container_concurrency", "utilization", "target"),
    [(0, 0.7, 70.0), (10, 0.7, 7.0), (1, 0.7, 0.7), (4, 1.0, 4.0), (0, 0.5, 50.0)],
)
def test_target_per_replica(container_concurrency: int, utilization: float, target: float) -> None:
    cfg = KpaConfig(container_concurrency=container_concurrency, target_utilization=utilization)
    assert cfg.target == pytest.approx(target)


@pytest.mark.parametrize(
    ("load", "cc", "ready", "expected"),
    [
        (0.0, 10, 0, 0),
        (1.0, 10, 0, 1),  # any traffic wants a replica
        (7.0, 10, 1, 1),
        (7.1, 10, 1, 2),
        (35.0, 10, 5, 5),
        (70.0, 0, 1, 1),  # container_concurrency 0: Knative's default target 100 x 0.7
        (71.0, 0, 1, 2),
        (10.0, 1, 10, 15),  # target 0.7 per replica
    ],
)
def test_steady_load(load: float, cc: int, ready: int, expected: int) -> None:
    clock = ManualClock()
    kpa = Kpa(KpaConfig(container_concurrency=cc, stable_window=6, max_replicas=100), now=clock.now())
    decisions = drive(kpa, clock, lambda t: load, 20, ready)
    assert decisions[-1].desired == expected
    assert decisions[-1].panic is False or expected > ready


def test_scale_up_is_rate_limited_relative_to_ready() -> None:
    clock = ManualClock()
    cfg = KpaConfig(container_concurrency=1, target_utilization=1.0, max_scale_up_rate=2, max_replicas=100)
    kpa = Kpa(cfg, now=clock.now())
    decisions = drive(kpa, clock, lambda t: 50.0, 10, 3)
    assert all(d.desired <= 6 for d in decisions)
    assert decisions[-1].desired == 6 and decisions[-1].max_scale_up == 6


def test_scale_down_is_rate_limited_relative_to_ready() -> None:
    clock = ManualClock()
    cfg = KpaConfig(container_concurrency=1, stable_window=6, max_replicas=100)
    kpa = Kpa(cfg, now=clock.now())
    decisions = drive(kpa, clock, lambda t: 0.0, 20, 10)
    assert [d.desired for d in decisions] == [5] * len(decisions)


def test_panic_mode_scales_up_on_a_burst_and_never_down_while_panicking() -> None:
    clock = ManualClock()
    cfg = KpaConfig(container_concurrency=10, target_utilization=1.0, stable_window=60, max_replicas=100)
    kpa = Kpa(cfg, now=clock.now())
    # One minute at 10 concurrent on one replica, then a burst to 100 for 10 s, then quiet.
    drive(kpa, clock, lambda t: 10.0, 60, 1)
    assert kpa.last is not None and kpa.last.desired == 1 and not kpa.panicking
    burst = drive(kpa, clock, lambda t: 100.0, 10, 1)
    panicked = [d for d in burst if d.panic]
    assert panicked, "a 10x burst on the panic window must panic"
    # The stable average barely moved, but the panic window asks for 10 replicas.
    assert panicked[-1].desired == 10 and panicked[-1].desired_stable < 10
    after = drive(kpa, clock, lambda t: 0.0, 30, 10)
    assert all(d.panic for d in after)
    assert all(d.desired == 10 for d in after), "no scale down while panicking"


def test_panic_lasts_a_stable_window_after_the_last_burst() -> None:
    clock = ManualClock()
    cfg = KpaConfig(container_concurrency=10, target_utilization=1.0, stable_window=20, max_replicas=100)
    kpa = Kpa(cfg, now=clock.now())
    drive(kpa, clock, lambda t: 100.0, 4, 1)
    assert kpa.panicking
    last_burst = clock.now()
    decisions = drive(kpa, clock, lambda t: 0.0, 40, 10)
    still = [d for d in decisions if d.panic]
    calm = [d for d in decisions if not d.panic]
    assert still and calm
    assert max(d.at for d in still) - last_burst <= cfg.stable_window + cfg.tick_interval + 1
    assert min(d.at for d in calm) - last_burst > cfg.stable_window - 1
    # Out of panic, the rate limit takes it down step by step.
    assert calm[0].desired == 5


def test_a_new_autoscaler_over_several_ready_replicas_starts_in_panic() -> None:
    clock = ManualClock()
    kpa = Kpa(KpaConfig(stable_window=10), now=clock.now(), ready=4)
    assert kpa.panicking
    d = drive(kpa, clock, lambda t: 0.0, 4, 4)
    assert all(x.desired == 4 for x in d)
    assert not Kpa(KpaConfig(), now=clock.now(), ready=1).panicking


def test_bounds_clamp_the_result() -> None:
    clock = ManualClock()
    cfg = KpaConfig(min_replicas=2, max_replicas=3, container_concurrency=1, stable_window=6)
    kpa = Kpa(cfg, now=clock.now())
    high = drive(kpa, clock, lambda t: 100.0, 10, 3)
    assert all(d.desired == 3 for d in high)
    low = drive(kpa, clock, lambda t: 0.0, 30, 2)
    assert low[-1].desired == 2 and "bounds" in low[-1].reason


@pytest.mark.parametrize(("grace", "stable"), [(30.0, 6.0), (5.0, 20.0)])
def test_scale_to_zero_waits_for_the_grace_period_without_traffic(grace: float, stable: float) -> None:
    clock = ManualClock()
    cfg = KpaConfig(container_concurrency=1, stable_window=stable, scale_to_zero_grace=grace)
    kpa = Kpa(cfg, now=clock.now())
    drive(kpa, clock, lambda t: 0.5, 10, 1)
    quiet_since = clock.now()
    decisions = drive(kpa, clock, lambda t: 0.0, 80, 1)
    zero = [d for d in decisions if d.desired == 0]
    assert zero, "an idle service must reach zero"
    first_zero = zero[0].at - quiet_since
    # Zero needs an all-zero stable window (Knative) and the grace without traffic.
    assert first_zero >= max(grace, stable - 1)
    assert first_zero <= max(grace, stable) + 2 * cfg.tick_interval + 1
    assert all(d.desired == 1 for d in decisions if d.at < zero[0].at)
    held = [d for d in decisions if "scale_to_zero_grace" in d.reason]
    assert held or grace <= stable


def test_traffic_during_the_grace_period_keeps_the_replica() -> None:
    clock = ManualClock()
    cfg = KpaConfig(container_concurrency=1, stable_window=6, scale_to_zero_grace=20)
    kpa = Kpa(cfg, now=clock.now())
    drive(kpa, clock, lambda t: 0.5, 10, 1)
    drive(kpa, clock, lambda t: 0.0, 15, 1)
    kpa.note_traffic(clock.now())  # a request arrived and finished between two samples
    decisions = drive(kpa, clock, lambda t: 0.0, 15, 1)
    assert all(d.desired == 1 for d in decisions)


def test_scale_down_delay_holds_the_maximum() -> None:
    clock = ManualClock()
    cfg = KpaConfig(container_concurrency=1, target_utilization=1.0, stable_window=6, scale_down_delay=20)
    kpa = Kpa(cfg, now=clock.now())
    drive(kpa, clock, lambda t: 4.0, 10, 4)
    assert kpa.last is not None and kpa.last.desired == 4
    drop = clock.now()
    decisions = drive(kpa, clock, lambda t: 1.0, 40, 4)
    held = [d for d in decisions if d.desired == 4]
    assert held and "scale_down_delay" in held[-1].reason
    assert max(d.at for d in held) - drop <= 20 + cfg.tick_interval
    assert decisions[-1].desired == 2  # floor(4 / max_scale_down_rate)


def test_initial_replicas_until_ready_once() -> None:
    clock = ManualClock()
    cfg = KpaConfig(initial_replicas=2, stable_window=6)
    kpa = Kpa(cfg, now=clock.now())
    ready = [0]
    early = drive(kpa, clock, lambda t: 0.0, 10, lambda: ready[0])
    assert all(d.desired == 2 for d in early) and "initial_replicas" in early[-1].reason
    ready[0] = 2
    later = drive(kpa, clock, lambda t: 0.0, 60, lambda: ready[0])
    assert later[-1].desired < 2


def test_not_reachable_scales_down_without_rate_limit() -> None:
    clock = ManualClock()
    kpa = Kpa(KpaConfig(stable_window=6, scale_to_zero_grace=0), now=clock.now())
    clock.advance(10)
    assert kpa.decide(clock.now(), 8, reachable=False).desired == 0
    assert kpa.decide(clock.now(), 8, reachable=True).max_scale_down == 4


def test_history_is_bounded_and_serialisable() -> None:
    clock = ManualClock()
    kpa = Kpa(KpaConfig(), now=clock.now(), history=5)
    drive(kpa, clock, lambda t: 3.0, 30, 1)
    assert len(kpa.history) == 5
    snap = kpa.snapshot()
    assert snap["last"]["desired"] == 1 and len(snap["history"]) == 5
    assert set(snap["last"]) >= {"desired", "reason", "panic", "stable_concurrency", "ready"}


def test_decisions_are_logged_when_they_change(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    kpa = Kpa(KpaConfig(container_concurrency=1), now=clock.now(), name="llm")
    with caplog.at_level("INFO", logger="a3s_gateway.scaler"):
        drive(kpa, clock, lambda t: 3.0, 10, 1)
    assert any("scaler llm: desired" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------- windows


def test_window_average_over_a_partial_window() -> None:
    w = WindowAverage(10, 1)
    w.record(100.0, 4.0)
    w.record(101.0, 8.0)
    assert w.average(101.5) == pytest.approx(6.0)  # two buckets of data, not ten
    assert w.average(103.0) == pytest.approx(6.0)  # quiet reporter: buckets after the last write left out
    w.record(104.0, 0.0)
    assert w.average(104.0) == pytest.approx(12.0 / 5)  # a gap between writes counts as zero
    assert w.average(114.0) == 0.0 and w.is_empty(114.0)


def test_window_average_slides() -> None:
    w = WindowAverage(3, 1)
    for t, v in enumerate([3.0, 6.0, 9.0, 12.0]):
        w.record(float(t), v)
    assert w.average(3.0) == pytest.approx(9.0)
    w.record(3.2, 0.0)  # same bucket: averaged with 12
    assert w.average(3.5) == pytest.approx((6 + 9 + 6) / 3)


def test_max_window() -> None:
    m = MaxWindow(5)
    m.record(0, 4)
    m.record(1, 2)
    assert m.current(1) == 4
    m.record(5, 1)
    assert m.current(5) == 2
    m.record(7, 3)
    assert m.current(7) == 3


def test_concurrency_meter_is_time_weighted() -> None:
    meter = ConcurrencyMeter(0.0)
    meter.set(0.0, 2)
    meter.set(0.5, 0)
    assert meter.take(1.0) == pytest.approx(1.0)
    assert meter.take(2.0) == 0.0
    assert meter.last_active == 0.5
    meter.set(2.0, 3)
    assert meter.take(2.0) == 3  # no time passed: the current value
    assert math.isclose(meter.take(4.0), 3.0)
