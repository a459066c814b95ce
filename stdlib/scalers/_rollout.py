"""Gradual rollout with automatic rollback: a state machine driven by (event, now).

Theory of operation
-------------------
A rollout moves the traffic of a service from revision `from` to revision `to` in steps of
`step_percent`. While a step runs, the `to` revision's requests are counted: how many, how many
failed (5xx or no answer), and their latency histogram. The machine never reads a clock or a
counter itself: the runtime sends it `Tick(stats)` events (about once a second) carrying the `to`
revision's numbers *since the current step began*, and the time `now`.

    PENDING     --Start-->  STEPPING (step 1, step_percent %)
    STEPPING    --Tick-->   ROLLED_BACK  as soon as the step has min_requests and its error rate
                                         is over error_rate_threshold or its p99 is over
                                         latency_threshold_ms (judged continuously, so a bad
                                         revision is caught within one step interval, usually
                                         sooner);
                            STEPPING     (next step, +step_percent, capped at 100) when the step
                                         interval is over and the step was healthy;
                            DONE         when the 100 % step was healthy for a whole interval;
                            STEPPING     (same step, extended) when the interval is over but the
                                         step saw fewer than min_requests: no verdict on noise.
    any live    --Abort-->  ROLLED_BACK  (an operator or the runtime gave up; reason kept)
    DONE, ROLLED_BACK       absorb every event: a finished rollout only changes with its config.

Percentages only grow while STEPPING; ROLLED_BACK sends 0 % to `to` and DONE 100 %. The state is
a frozen record that serialises to a dict (`to_dict` / `from_dict`), so a hot reload resumes the
rollout where it was, and the dashboard shows the step, the percentage and why it rolled back.
The transitions are the `TRANSITIONS` table; a property test visits every (phase, event) pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "TRANSITIONS",
    "Abort",
    "Event",
    "Phase",
    "RolloutParams",
    "RolloutState",
    "Start",
    "StepStats",
    "Tick",
    "transition",
]


class Phase(StrEnum):
    PENDING = "pending"
    STEPPING = "stepping"
    DONE = "done"
    ROLLED_BACK = "rolled_back"


class RolloutParams(Protocol):
    """What the machine reads from `RolloutConfig` (compiler/schema.py)."""

    @property
    def from_(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def step_percent(self) -> float: ...
    @property
    def step_interval_secs(self) -> float: ...
    @property
    def error_rate_threshold(self) -> float: ...
    @property
    def latency_threshold_ms(self) -> float: ...
    @property
    def min_requests(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StepStats:
    """The `to` revision's numbers over the current step."""

    requests: int = 0
    errors: int = 0
    p99_ms: float = 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class Tick:
    stats: StepStats


@dataclass(frozen=True, slots=True)
class Abort:
    reason: str = "aborted"


Event = Start | Tick | Abort
EVENT_TYPES: tuple[type[Start] | type[Tick] | type[Abort], ...] = (Start, Tick, Abort)


@dataclass(frozen=True, slots=True)
class RolloutState:
    from_: str
    to: str
    phase: Phase = Phase.PENDING
    step: int = 0
    percentage: float = 0.0
    step_started: float = 0.0
    reason: str = ""
    # One line per finished step: "step 2 at 20%: 153 requests, 0.0% errors, p99 41ms".
    log: tuple[str, ...] = field(default=())

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.DONE, Phase.ROLLED_BACK)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["phase"] = self.phase.value
        data["log"] = list(self.log)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutState:
        return cls(**{**data, "phase": Phase(data["phase"]), "log": tuple(data.get("log", ()))})

    @classmethod
    def initial(cls, params: RolloutParams) -> RolloutState:
        return cls(from_=params.from_, to=params.to)

    def resumes(self, params: RolloutParams) -> bool:
        """Whether this state belongs to a rollout between the same two revisions."""
        return (self.from_, self.to) == (params.from_, params.to)


Handler = Callable[[RolloutParams, RolloutState, Any, float], RolloutState]


def _start(p: RolloutParams, s: RolloutState, e: Start, now: float) -> RolloutState:
    return replace(s, phase=Phase.STEPPING, step=1, percentage=min(100.0, p.step_percent), step_started=now)


def _tick(p: RolloutParams, s: RolloutState, e: Tick, now: float) -> RolloutState:
    stats = e.stats
    summary = (
        f"step {s.step} at {s.percentage:g}%: {stats.requests} requests, "
        f"{stats.error_rate:.1%} errors, p99 {stats.p99_ms:.0f}ms"
    )
    judged = stats.requests >= max(1, p.min_requests)
    if judged and stats.error_rate > p.error_rate_threshold:
        why = f"error rate {stats.error_rate:.1%} over {p.error_rate_threshold:.1%} ({summary})"
        return _rolled_back(s, why)
    if judged and stats.p99_ms > p.latency_threshold_ms:
        why = f"p99 {stats.p99_ms:.0f}ms over {p.latency_threshold_ms:g}ms ({summary})"
        return _rolled_back(s, why)
    if now - s.step_started < p.step_interval_secs:
        return s
    if not judged:
        return replace(s, reason=f"step {s.step} extended: {stats.requests}/{p.min_requests} requests")
    if s.percentage >= 100.0:
        return replace(s, phase=Phase.DONE, reason="", log=(*s.log, summary))
    return replace(
        s, step=s.step + 1, percentage=min(100.0, s.percentage + p.step_percent), step_started=now,
        reason="", log=(*s.log, summary),
    )  # fmt: skip


def _rolled_back(s: RolloutState, why: str) -> RolloutState:
    return replace(s, phase=Phase.ROLLED_BACK, percentage=0.0, reason=why, log=(*s.log, why))


def _abort(p: RolloutParams, s: RolloutState, e: Abort, now: float) -> RolloutState:
    return _rolled_back(s, e.reason or "aborted")


def _stay(p: RolloutParams, s: RolloutState, e: Any, now: float) -> RolloutState:
    return s


TRANSITIONS: dict[tuple[Phase, type[Start] | type[Tick] | type[Abort]], Handler] = {
    (Phase.PENDING, Start): _start,
    (Phase.PENDING, Tick): _stay,  # nothing to judge before the first step
    (Phase.PENDING, Abort): _abort,
    (Phase.STEPPING, Start): _stay,  # already running
    (Phase.STEPPING, Tick): _tick,
    (Phase.STEPPING, Abort): _abort,
    (Phase.DONE, Start): _stay,
    (Phase.DONE, Tick): _stay,
    (Phase.DONE, Abort): _stay,  # finished: 100 % stays until the config changes
    (Phase.ROLLED_BACK, Start): _stay,
    (Phase.ROLLED_BACK, Tick): _stay,
    (Phase.ROLLED_BACK, Abort): _stay,
}


def transition(params: RolloutParams, state: RolloutState, event: Event, now: float) -> RolloutState:
    """The next state: a pure function of the config, the state, the event and the time."""
    return TRANSITIONS[(state.phase, type(event))](params, state, event, now)
