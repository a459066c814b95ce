"""Knative Pod Autoscaler (KPA): how many replicas a service wants, decided from concurrency.

The gateway is Knative's activator and autoscaler in one process. It observes, about once per
second, the concurrency of the service (requests in flight on replicas plus requests waiting in
the cold-start buffer, time-weighted), and every `tick_interval` it decides a replica count.
`Kpa.decide(now, ready)` follows `knative/serving` `pkg/autoscaler/scaling/autoscaler.go`:

    target          = (container_concurrency or 100) x target_utilization   (per replica)
    panic_window    = max(granularity, stable_window x panic_window_percentage / 100)
    ready'          = max(1, ready)
    max_up          = ceil(max_scale_up_rate x ready')
    max_down        = floor(ready' / max_scale_down_rate)          (0 when not reachable)
    stable          = ceil(avg_concurrency(stable_window) / target)  clamped to [max_down, max_up]
    panic           = ceil(avg_concurrency(panic_window)  / target)  clamped to [max_down, max_up]
    enter panic     when ceil(avg(panic_window) / target) / ready' >= panic_threshold_percentage / 100
    leave panic     when below the threshold and no panic for a whole stable_window
    in panic        desired = max(stable, panic, every desired since panic began): never down
    otherwise       desired = stable
    then            max over the last scale_down_delay; clamp to [min_replicas, max_replicas];
                    initial_replicas until that many were ready once;
                    the last replica goes only after scale_to_zero_grace without traffic.

Knative starts a fresh autoscaler in panic mode when more than one replica is ready, so a restart
(for us: a reload that changed the scaling block) never scales down on an empty history. Every
decision is a `Decision` record with its inputs, kept in a bounded history and logged when the
count or the mode changes. The object never reads a clock: `now` is an argument.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field

from ..base import ConfigModel, Duration
from ..registry import register
from ._window import MaxWindow, WindowAverage

__all__ = ["CONCURRENCY_TARGET_DEFAULT", "Decision", "Kpa", "KpaConfig"]

# Knative's container-concurrency-target-default: the per-replica concurrency aimed at when
# container_concurrency is 0 (unlimited), before target_utilization applies.
CONCURRENCY_TARGET_DEFAULT = 100.0
# Knative's autoscaling.TargetMin: the target never drops below this.
_TARGET_MIN = 0.01
# Knative's BucketSize.
BUCKET_SECONDS = 1.0

_log = logging.getLogger("a3s_gateway.scaler")


class KpaConfig(ConfigModel):
    """The autoscaler's knobs: the KPA-related keys of a service's `scaling` block.

    The defaults are Knative's and equal `ScalingConfig`'s (a test checks that they agree).
    """

    min_replicas: int = Field(default=0, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    initial_replicas: int | None = Field(default=None, ge=0)
    container_concurrency: int = Field(default=0, ge=0)
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    stable_window: Duration = 60.0
    panic_window_percentage: float = Field(default=10.0, gt=0, le=100)
    panic_threshold_percentage: float = Field(default=200.0, gt=100)
    scale_to_zero_grace: Duration = 30.0
    scale_down_delay: Duration = 0.0
    max_scale_up_rate: float = Field(default=1000.0, gt=1)
    max_scale_down_rate: float = Field(default=2.0, gt=1)
    tick_interval: Duration = 2.0

    @classmethod
    def from_scaling(cls, scaling: Any) -> KpaConfig:
        """The KPA part of a `ScalingConfig` (or any object with these attributes)."""
        return cls.model_validate({name: getattr(scaling, name) for name in cls.model_fields})

    @property
    def target(self) -> float:
        total = float(self.container_concurrency) or CONCURRENCY_TARGET_DEFAULT
        return max(_TARGET_MIN, total * self.target_utilization)

    def panic_window(self, granularity: float = BUCKET_SECONDS) -> float:
        return max(granularity, self.stable_window * self.panic_window_percentage / 100.0)


@dataclass(frozen=True, slots=True)
class Decision:
    """One autoscaling decision and everything it was computed from."""

    at: float
    desired: int
    ready: int
    panic: bool
    reason: str
    stable_concurrency: float
    panic_concurrency: float
    target: float
    desired_stable: int
    desired_panic: int
    max_scale_up: int
    max_scale_down: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@register("scaler", "kpa", config=KpaConfig)
class Kpa:
    """The decider. `observe` samples, `decide` decides; both take `now` (monotonic seconds)."""

    def __init__(
        self,
        config: KpaConfig,
        *,
        now: float,
        ready: int = 0,
        granularity: float = BUCKET_SECONDS,
        history: int = 256,
        name: str = "",
    ) -> None:
        self.config = config
        self.name = name
        self.target = config.target
        self._stable = WindowAverage(config.stable_window, granularity)
        self._panic = WindowAverage(config.panic_window(granularity), granularity)
        self._delay = MaxWindow(config.scale_down_delay) if config.scale_down_delay > 0 else None
        # Knative: a new autoscaler over more than one ready replica starts panicking.
        self._panic_since: float | None = now if ready > 1 else None
        self._max_panic = ready if ready > 1 else 0
        initial = config.min_replicas if config.initial_replicas is None else config.initial_replicas
        self._initial = min(initial, config.max_replicas)
        self._initial_pending = self._initial > 0
        self._last_traffic: float | None = None
        self.history: deque[Decision] = deque(maxlen=history)

    # ------------------------------------------------------------------ inputs

    def observe(self, now: float, concurrency: float) -> None:
        """Record a concurrency sample: in-flight plus queued requests (time-weighted)."""
        concurrency = max(0.0, concurrency)
        self._stable.record(now, concurrency)
        self._panic.record(now, concurrency)
        if concurrency > 0:
            self._last_traffic = now

    def note_traffic(self, now: float) -> None:
        """A request arrived (the activator's poke): the grace period restarts."""
        self._last_traffic = now

    @property
    def panicking(self) -> bool:
        return self._panic_since is not None

    @property
    def last(self) -> Decision | None:
        return self.history[-1] if self.history else None

    # ------------------------------------------------------------------ the decision

    def decide(self, now: float, ready: int, *, reachable: bool = True) -> Decision:
        cfg = self.config
        stable_avg = self._stable.average(now)
        panic_avg = self._panic.average(now)
        ready_f = float(max(1, ready))
        max_up = math.ceil(cfg.max_scale_up_rate * ready_f)
        max_down = math.floor(ready_f / cfg.max_scale_down_rate) if reachable else 0
        dspc = math.ceil(stable_avg / self.target - 1e-9)
        dppc = math.ceil(panic_avg / self.target - 1e-9)
        stable_n = min(max(dspc, max_down), max_up)
        panic_n = min(max(dppc, max_down), max_up)
        reasons: list[str] = []
        desired = self._panic_step(now, stable_n, panic_n, dppc / ready_f, reasons)
        desired = self._delay_step(now, desired, reasons)
        desired = self._bounds_step(desired, reasons)
        desired = self._initial_step(desired, ready, reasons)
        desired = self._zero_step(now, desired, ready, reasons)
        decision = Decision(
            at=now, desired=desired, ready=ready, panic=self.panicking, reason=", ".join(reasons),
            stable_concurrency=stable_avg, panic_concurrency=panic_avg, target=self.target,
            desired_stable=dspc, desired_panic=dppc, max_scale_up=max_up, max_scale_down=max_down,
        )  # fmt: skip
        self._log(decision, self.last)
        self.history.append(decision)
        return decision

    def _panic_step(self, now: float, stable_n: int, panic_n: int, ratio: float, reasons: list[str]) -> int:
        over = ratio >= self.config.panic_threshold_percentage / 100.0
        if over:
            self._panic_since = now  # enter, or extend the panic
        elif self._panic_since is not None and self._panic_since + self.config.stable_window < now:
            self._panic_since, self._max_panic = None, 0
        if self._panic_since is None:
            reasons.append("stable")
            return stable_n
        desired = max(stable_n, panic_n)
        if desired < self._max_panic:
            reasons.append(f"panic: holding {self._max_panic} (no scale down while panicking)")
        else:
            reasons.append("panic")
        self._max_panic = max(self._max_panic, desired)
        return self._max_panic

    def _delay_step(self, now: float, desired: int, reasons: list[str]) -> int:
        if self._delay is None:
            return desired
        self._delay.record(now, desired)
        delayed = self._delay.current(now)
        if delayed != desired:
            reasons.append(f"scale_down_delay: staying at {delayed} instead of {desired}")
        return delayed

    def _bounds_step(self, desired: int, reasons: list[str]) -> int:
        bounded = min(max(desired, self.config.min_replicas), self.config.max_replicas)
        if bounded != desired:
            reasons.append(f"bounds [{self.config.min_replicas}, {self.config.max_replicas}]")
        return bounded

    def _initial_step(self, desired: int, ready: int, reasons: list[str]) -> int:
        if self._initial_pending and ready >= self._initial:
            self._initial_pending = False
        if self._initial_pending and desired < self._initial:
            reasons.append(f"initial_replicas {self._initial} not yet ready")
            return self._initial
        return desired

    def _zero_step(self, now: float, desired: int, ready: int, reasons: list[str]) -> int:
        # Only the step from one replica (asked for or running) to none waits for the grace.
        current = max(ready, self.last.desired if self.last is not None else 0)
        if desired != 0 or current == 0:
            return desired
        quiet = math.inf if self._last_traffic is None else now - self._last_traffic
        if quiet < self.config.scale_to_zero_grace:
            reasons.append(f"scale_to_zero_grace: {quiet:.1f}s without traffic")
            return 1
        reasons.append("scale to zero")
        return 0

    def _log(self, decision: Decision, previous: Decision | None) -> None:
        changed = previous is None or (previous.desired, previous.panic) != (decision.desired, decision.panic)
        level = logging.INFO if changed else logging.DEBUG
        if _log.isEnabledFor(level):
            _log.log(
                level,
                "scaler %s: desired %d (ready %d, %s) stable=%.2f panic=%.2f target=%.2f",
                self.name, decision.desired, decision.ready, decision.reason,
                decision.stable_concurrency, decision.panic_concurrency, decision.target,
            )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """What the dashboard shows: mode, the last decision and the recent history."""
        return {
            "panic": self.panicking,
            "target": self.target,
            "last": self.last.to_dict() if self.last else None,
            "history": [d.to_dict() for d in self.history],
        }
