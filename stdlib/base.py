"""Base classes and the build context shared by every node kind.

Handlers are cheap and rebuilt on every reload; state is keyed and long-lived. A kind that keeps
state (a token bucket table, a breaker, a JWKS cache) creates it in `new_state`; the runtime keeps
that object under the node's id and fingerprint and hands the same object back to the rebuilt
handler when the node did not change, so a reload never resets a rate limit or closes a breaker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from ..compiler.model import ConfigModel
from ..compiler.units import Duration, Size
from ..runtime.api import NO_RECORDER, Handler, Publish, Recorder, Request, Response, Spawner, no_publish
from ..runtime.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "BuildContext",
    "ConfigModel",
    "Duration",
    "KeptKind",
    "MiddlewareKind",
    "ServiceKind",
    "Size",
]

ConfigT = TypeVar("ConfigT", bound=ConfigModel)


@dataclass(frozen=True)
class BuildContext:
    """What the runtime gives a kind when building it."""

    node_id: str
    name: str
    clock: Clock = SYSTEM_CLOCK
    env: Mapping[str, str] = field(default_factory=dict)
    # CIDRs whose X-Forwarded-For is believed (the entrypoint's `trusted_proxies`).
    trusted_proxies: tuple[str, ...] = ()
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("a3s_gateway"))
    # State changes an operator watches (replicas, rollout steps) go to the live feed here.
    publish: Publish = no_publish
    # Where a kind reports events for the metrics (a cold start, a rollback); it outlives
    # reloads, so a kept object may hold it.
    recorder: Recorder = NO_RECORDER
    # Where a kind starts work that outlives the request that began it (a multiplexed
    # WebSocket's channels); None outside a running gateway.
    tasks: Spawner | None = None


class KeptKind(Generic[ConfigT]):
    """What middlewares and service kinds share: built from their config, their kept state and
    the build context; the state made by `new_state` and released by `close_state`."""

    def __init__(self, config: ConfigT, state: Any, ctx: BuildContext) -> None:
        self.config = config
        self.state = state
        self.ctx = ctx

    @classmethod
    def new_state(cls, config: ConfigT, ctx: BuildContext) -> Any:
        """Long-lived state kept across reloads while the config is unchanged (None: stateless)."""
        return None

    @classmethod
    async def close_state(cls, state: Any) -> None:
        """Release what `new_state` opened (connections, files) when the node is removed."""


class MiddlewareKind(KeptKind[ConfigT]):
    """A middleware: `await mw(request, next)` returns the response.

    One that applies to TCP routers instead of HTTP ones says so in its declaration (`protocols`).

    Its state is kept while its config is unchanged. A kind whose live state must outlive a
    change of its config (a queue's waiters) sets `keep_state_across_changes`: the runtime then
    keeps the state for as long as the node keeps its name and kind, and hands it the new
    config through `reconfigure` when a reload commits (never while building: a failed reload
    changes nothing).
    """

    keep_state_across_changes: ClassVar[bool] = False

    @classmethod
    def reconfigure(cls, state: Any, config: ConfigT) -> None:
        """Apply a changed config to kept state, at a reload's commit (must not fail)."""

    async def __call__(self, request: Request, next: Handler) -> Response:
        return await next(request)


class ServiceKind(KeptKind[ConfigT]):
    """A service of a kind of its own (`services "llm" { model_router { ... } }`): instead of
    balancing over servers, it hands each request to other services of the same generation,
    found by name in `services` (filled in as the generation is built, so read it per request).
    Its state is kept across reloads as a middleware's is."""

    def __init__(
        self, config: ConfigT, state: Any, ctx: BuildContext, services: Mapping[str, Handler]
    ) -> None:
        super().__init__(config, state, ctx)
        self.services = services

    async def __call__(self, request: Request) -> Response:
        raise NotImplementedError
