"""The interface every load-balancing strategy implements, and helpers they share.

A balancer is rebuilt on every reload (it is cheap); what must survive a reload (a round-robin
cursor, smooth-WRR current weights) lives in the object `new_state` returns, which the runtime
keeps under the service's id and fingerprint. Live per-backend numbers (in-flight count, latency
EWMA and window, health) live on `api.Backend` itself, which the service keeps by backend key and
updates: a balancer only reads them.

`pick` sees every backend of the service and must consider only the available ones (healthy and
not draining): `candidates()` is the one filter they call (it spells out `Backend.available` for
speed; property_tests/test_balancer_properties.py keeps the two equal). Randomised strategies take
an injectable `random.Random`, so tests seed it and are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ...runtime.api import DEFAULT_LATENCY_DECAY, Backend, Request
from ..base import BuildContext, ConfigModel

__all__ = ["BalancerKind", "Cursor", "candidates", "two_choices"]

ConfigT = TypeVar("ConfigT", bound=ConfigModel)


class BalancerKind(Generic[ConfigT]):
    """A load-balancing strategy: `pick(backends, request)` returns an available backend or None."""

    def __init__(
        self, config: ConfigT, state: Any, ctx: BuildContext, *, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self.state = state
        self.ctx = ctx
        self.rng = rng if rng is not None else random.Random()

    @classmethod
    def new_state(cls, config: ConfigT, ctx: BuildContext) -> Any:
        """Long-lived state kept across reloads while the service is unchanged (None: stateless)."""
        return None

    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        """The backend for this request, or None when no backend is available."""
        raise NotImplementedError

    # A strategy that picks by the request's body (a conversation id, the prompt) sets this and
    # implements `inspect`: the service awaits `inspect(request)` once before it picks
    # (runtime/service.py), and `pick` finds what it left in `request.state`. `pick` stays
    # synchronous, so the connect-failure retry and the scalers' buffer can call it again.
    reads_body: bool = False

    async def inspect(self, request: Request) -> None:
        """Read what `pick` needs from the request (its body), leaving the body readable."""

    # The time constant of every backend's latency peak-EWMA (`Backend.observe_latency`, which
    # the service calls once per exchange whatever the strategy, for the admin API). A strategy
    # that ranks by that average (`ewma`) sets its own.
    latency_decay: float = DEFAULT_LATENCY_DECAY


@dataclass(slots=True)
class Cursor:
    """A rotating position, long-lived so a reload does not restart the rotation."""

    next: int = 0

    def advance(self, modulo: int) -> int:
        """The current position modulo `modulo`, then step forward."""
        position = self.next % modulo
        self.next = (self.next + 1) % (1 << 62)
        return position


def candidates(backends: Sequence[Backend]) -> list[Backend]:
    """The backends a balancer may pick: healthy and not draining."""
    # `Backend.available` spelled out, in a loop: this runs on every pick, and a comprehension
    # is a frame of its own (Python 3.11) and the property a call per backend.
    found = []
    for backend in backends:
        if backend.healthy and not backend.draining:
            found.append(backend)
    return found


def two_choices(rng: random.Random, cands: Sequence[Backend], cost: Callable[[Backend], float]) -> Backend:
    """Power of two choices: the cheaper of two distinct backends drawn uniformly (the first on a tie).

    The drawn pair is itself random, so preferring the first on a tie adds no bias. With one
    candidate there is no choice to make.
    """
    if len(cands) == 1:
        return cands[0]
    i, j = rng.sample(range(len(cands)), 2)
    a, b = cands[i], cands[j]
    return b if cost(b) < cost(a) else a
