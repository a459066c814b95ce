"""The circuit breaker state machine: pure, driven by (input, now), encoded as a table.

Theory of operation
-------------------
A breaker protects a service (or one backend) that is failing from being hammered, and the
clients from waiting on it. It has three states:

- CLOSED: requests pass. Outcomes are counted: consecutive failures, and (when a ratio is
  configured) successes and failures over a sliding `window`. The breaker trips to OPEN when
  `failure_threshold` consecutive failures are seen, or when at least `min_requests` requests in
  the window failed at `failure_ratio` or more.
- OPEN: requests are refused at once (the middleware answers 503 with Retry-After) until
  `cooldown` has passed since the trip. The first request after that is let through as a trial
  and the breaker is HALF_OPEN.
- HALF_OPEN: at most `half_open_max_requests` trial requests are in flight; others are refused.
  `success_threshold` successful trials close the breaker (counters reset); one failed trial
  opens it again for another full cooldown. A trial that ends without an outcome (the client
  went away) frees its slot.

Outcomes arrive after their request was admitted, possibly after the state moved on: every
state change starts a new epoch, a request's ticket carries the epoch it was admitted in, and an
outcome from an older epoch is the input STALE, which never changes anything. So a slow request
admitted while CLOSED cannot close a breaker that tripped meanwhile, nor count as a trial.

Time never advances by itself: OPEN becomes HALF_OPEN when a request arrives after the cooldown,
which keeps the machine free of timers and lets tests drive it with plain numbers.

The table below maps (state, input) to rows of (guard, action, next state); the first row whose
guard holds applies. Every (state, input) pair has a row whose guard is "always", so the machine
is total; a property test visits every pair under every combination of guards.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TABLE", "Breaker", "BreakerPolicy", "Input", "Row", "State", "Ticket"]


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Input(enum.Enum):
    REQUEST = "request"
    SUCCESS = "success"
    FAILURE = "failure"
    # The request ended without a verdict (cancelled, client gone).
    CANCEL = "cancel"
    # An outcome of a request admitted in an earlier epoch.
    STALE = "stale"


class Action(enum.Enum):
    ADMIT = "admit"
    ADMIT_TRIAL = "admit-trial"
    REJECT = "reject"
    COUNT_SUCCESS = "count-success"
    COUNT_FAILURE = "count-failure"
    TRIP = "trip"
    COUNT_TRIAL_SUCCESS = "count-trial-success"
    CLOSE = "close"
    REOPEN = "reopen"
    RELEASE_TRIAL = "release-trial"
    IGNORE = "ignore"


Guard = str  # a name in Breaker._GUARDS


@dataclass(frozen=True, slots=True)
class Row:
    guard: Guard
    action: Action
    target: State


S, E, A = State, Input, Action  # short names keep the table readable
TABLE: dict[tuple[State, Input], tuple[Row, ...]] = {
    (S.CLOSED, E.REQUEST): (Row("always", A.ADMIT, S.CLOSED),),
    (S.CLOSED, E.SUCCESS): (Row("always", A.COUNT_SUCCESS, S.CLOSED),),
    (S.CLOSED, E.FAILURE): (Row("failure_trips", A.TRIP, S.OPEN), Row("always", A.COUNT_FAILURE, S.CLOSED)),
    (S.CLOSED, E.CANCEL): (Row("always", A.IGNORE, S.CLOSED),),
    (S.CLOSED, E.STALE): (Row("always", A.IGNORE, S.CLOSED),),
    (S.OPEN, E.REQUEST): (Row("cooled_down", A.ADMIT_TRIAL, S.HALF_OPEN), Row("always", A.REJECT, S.OPEN)),
    # Only stale outcomes can reach an open breaker (its epoch admits nobody); listed for totality.
    (S.OPEN, E.SUCCESS): (Row("always", A.IGNORE, S.OPEN),),
    (S.OPEN, E.FAILURE): (Row("always", A.IGNORE, S.OPEN),),
    (S.OPEN, E.CANCEL): (Row("always", A.IGNORE, S.OPEN),),
    (S.OPEN, E.STALE): (Row("always", A.IGNORE, S.OPEN),),
    (S.HALF_OPEN, E.REQUEST): (
        Row("trial_slot_free", A.ADMIT_TRIAL, S.HALF_OPEN),
        Row("always", A.REJECT, S.HALF_OPEN),
    ),
    (S.HALF_OPEN, E.SUCCESS): (
        Row("enough_successes", A.CLOSE, S.CLOSED),
        Row("always", A.COUNT_TRIAL_SUCCESS, S.HALF_OPEN),
    ),
    (S.HALF_OPEN, E.FAILURE): (Row("always", A.REOPEN, S.OPEN),),
    (S.HALF_OPEN, E.CANCEL): (Row("always", A.RELEASE_TRIAL, S.HALF_OPEN),),
    (S.HALF_OPEN, E.STALE): (Row("always", A.IGNORE, S.HALF_OPEN),),
}
del S, E, A


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    cooldown: float = 30.0
    success_threshold: int = 1
    half_open_max_requests: int = 1
    failure_ratio: float | None = None
    window: float = 10.0
    min_requests: int = 10
    # The failure-ratio window is kept as this many buckets (its resolution).
    buckets: int = 10


@dataclass(frozen=True, slots=True)
class Ticket:
    """What an admitted request carries until its outcome is reported."""

    epoch: int
    trial: bool


class _Window:
    """Successes and failures over the last `window` seconds, in `buckets` slices."""

    def __init__(self, window: float, buckets: int) -> None:
        self.width = window / buckets
        self.index = [-1] * buckets
        self.total = [0] * buckets
        self.failed = [0] * buckets

    def add(self, now: float, failed: bool) -> None:
        current = int(now // self.width)
        slot = current % len(self.index)
        if self.index[slot] != current:
            self.index[slot], self.total[slot], self.failed[slot] = current, 0, 0
        self.total[slot] += 1
        self.failed[slot] += int(failed)

    def counts(self, now: float) -> tuple[int, int]:
        current = int(now // self.width)
        live = [i for i, idx in enumerate(self.index) if current - len(self.index) < idx <= current]
        return sum(self.total[i] for i in live), sum(self.failed[i] for i in live)

    def reset(self) -> None:
        n = len(self.index)
        self.index, self.total, self.failed = [-1] * n, [0] * n, [0] * n


class Breaker:
    """One circuit. `request(now)` -> Ticket or None (refused); `record(ticket, input, now)`."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = State.CLOSED
        self.epoch = 0
        self.consecutive_failures = 0
        self.trial_successes = 0
        self.trials_in_flight = 0
        self.opened_at = -math.inf
        self.trips = 0
        self.rejected = 0
        self._window = _Window(policy.window, policy.buckets)

    # ------------------------------------------------------------------ the two entry points

    def request(self, now: float) -> Ticket | None:
        action = self.handle(Input.REQUEST, now)
        if action is Action.REJECT:
            return None
        return Ticket(self.epoch, trial=action is Action.ADMIT_TRIAL)

    def record(self, ticket: Ticket, outcome: Input, now: float) -> Action:
        """Report how an admitted request ended: SUCCESS, FAILURE or CANCEL."""
        if outcome not in (Input.SUCCESS, Input.FAILURE, Input.CANCEL):
            raise ValueError(f"not an outcome: {outcome}")
        return self.handle(Input.STALE if ticket.epoch != self.epoch else outcome, now)

    # ------------------------------------------------------------------ the machine

    def handle(self, event: Input, now: float) -> Action:
        for row in TABLE[(self.state, event)]:
            if self._GUARDS[row.guard](self, now):
                self._ACTIONS[row.action](self, now)
                if row.target is not self.state:
                    self.state = row.target
                    self.epoch += 1
                return row.action
        raise AssertionError(f"no row applies to {(self.state, event)}")  # pragma: no cover

    def would_admit(self, now: float) -> bool:
        """Whether a request now would pass, without counting it (to steer a balancer)."""
        if self.state is State.OPEN:
            return self._cooled_down(now)
        if self.state is State.HALF_OPEN:
            return self._trial_slot_free(now)
        return True

    def retry_after(self, now: float) -> float:
        """Seconds until a refused client may try again."""
        if self.state is State.OPEN:
            return max(0.0, self.opened_at + self.policy.cooldown - now)
        return 0.0

    def snapshot(self, now: float) -> dict[str, Any]:
        total, failed = self._window.counts(now)
        return {
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "window_requests": total,
            "window_failures": failed,
            "trial_successes": self.trial_successes,
            "trials_in_flight": self.trials_in_flight,
            "retry_after": self.retry_after(now),
            "trips": self.trips,
            "rejected": self.rejected,
        }

    # ------------------------------------------------------------------ guards

    def _always(self, now: float) -> bool:
        return True

    def _failure_trips(self, now: float) -> bool:
        # Judged as if this failure were already counted.
        if self.consecutive_failures + 1 >= self.policy.failure_threshold:
            return True
        if self.policy.failure_ratio is None:
            return False
        total, failed = self._window.counts(now)
        total, failed = total + 1, failed + 1
        return total >= self.policy.min_requests and failed / total >= self.policy.failure_ratio

    def _cooled_down(self, now: float) -> bool:
        return now >= self.opened_at + self.policy.cooldown

    def _trial_slot_free(self, now: float) -> bool:
        return self.trials_in_flight < self.policy.half_open_max_requests

    def _enough_successes(self, now: float) -> bool:
        return self.trial_successes + 1 >= self.policy.success_threshold

    _GUARDS: dict[str, Callable[[Breaker, float], bool]] = {
        "always": _always,
        "failure_trips": _failure_trips,
        "cooled_down": _cooled_down,
        "trial_slot_free": _trial_slot_free,
        "enough_successes": _enough_successes,
    }

    # ------------------------------------------------------------------ actions

    def _admit(self, now: float) -> None:
        pass

    def _admit_trial(self, now: float) -> None:
        self.trials_in_flight += 1

    def _reject(self, now: float) -> None:
        self.rejected += 1

    def _count_success(self, now: float) -> None:
        self.consecutive_failures = 0
        if self.policy.failure_ratio is not None:
            self._window.add(now, failed=False)

    def _count_failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.policy.failure_ratio is not None:
            self._window.add(now, failed=True)

    def _trip(self, now: float) -> None:
        self.trips += 1
        self.opened_at = now
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.consecutive_failures = 0
        self.trials_in_flight = 0
        self.trial_successes = 0
        self._window.reset()

    def _count_trial_success(self, now: float) -> None:
        self.trial_successes += 1
        self.trials_in_flight = max(0, self.trials_in_flight - 1)

    def _close(self, now: float) -> None:
        self.opened_at = -math.inf
        self._reset_counters()

    def _release_trial(self, now: float) -> None:
        self.trials_in_flight = max(0, self.trials_in_flight - 1)

    def _ignore(self, now: float) -> None:
        pass

    _ACTIONS: dict[Action, Callable[[Breaker, float], None]] = {
        Action.ADMIT: _admit,
        Action.ADMIT_TRIAL: _admit_trial,
        Action.REJECT: _reject,
        Action.COUNT_SUCCESS: _count_success,
        Action.COUNT_FAILURE: _count_failure,
        Action.TRIP: _trip,
        Action.COUNT_TRIAL_SUCCESS: _count_trial_success,
        Action.CLOSE: _close,
        Action.REOPEN: _trip,  # a failed trial opens the circuit for another full cooldown
        Action.RELEASE_TRIAL: _release_trial,
        Action.IGNORE: _ignore,
    }
