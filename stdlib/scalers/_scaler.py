"""The scaler of one service: the KPA, the executor and the cold-start buffer, and their loop.

A `Scaler` is long-lived state, kept across reloads while the service's executor, its options
and the servers are unchanged (other scaling knobs are applied in place by `reconfigure`, so
tuning the autoscaler never restarts a model server). Its `run()` task, owned by the gateway's task group, does three things:

* runs the executor (`executor.run()`), whose ready set it mirrors into the buffer;
* samples the buffer's time-weighted concurrency (in flight + queued) every `granularity`
  seconds into the KPA, and asks the KPA for a decision every `tick_interval`;
* wakes at once when the buffer pokes it (a request had to wait, or was refused with the buffer
  off: the activator's poke), records the instantaneous concurrency and decides right away, so a
  cold start does not wait a tick.

A decision that changes the replica count calls `executor.scale(n)`; nothing else does, so a
request that times out in the buffer never cancels a replica that is loading. The executor and
the KPA kinds come from the registry (`executor` = `scaling.executor`, scaler kind `kpa`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

import anyio

from ...compiler.schema import ScalingConfig
from ...runtime.api import Backend
from ..base import BuildContext
from ..executors._base import Executor
from ..registry import lookup
from ._buffer import ColdStartBuffer

__all__ = ["Decider", "Scaler"]

_MAX_BACKOFF = 30.0


class Decider(Protocol):
    """What the scaler needs of an autoscaler kind (the `kpa` one)."""

    def observe(self, now: float, concurrency: float) -> None: ...
    def note_traffic(self, now: float) -> None: ...
    def decide(self, now: float, ready: int) -> Any: ...
    def snapshot(self) -> dict[str, Any]: ...


def retry_after(scaling: ScalingConfig) -> float:
    """Retry-After for a cold-start 503: about as long as a request was willing to wait."""
    return float(min(max(1.0, scaling.buffer_timeout), 30.0))


class Scaler:
    def __init__(
        self,
        service: str,
        scaling: ScalingConfig,
        ctx: BuildContext,
        *,
        servers: Sequence[str] = (),
        granularity: float = 1.0,
    ) -> None:
        self.service = service
        self.scaling = scaling
        self.clock = ctx.clock
        self.log = ctx.logger.getChild(f"scaler.{service}")
        self.publish = ctx.publish  # the live feed: decisions and ready-set changes
        self.granularity = min(granularity, scaling.tick_interval)
        self.executor = _executor(scaling, ctx, servers)
        self.kpa = _decider(scaling, ctx.clock.now(), service, 0)
        self.buffer = ColdStartBuffer(
            max_requests=scaling.buffer_max_requests,
            max_bytes=scaling.buffer_max_bytes,
            timeout=scaling.buffer_timeout,
            container_concurrency=scaling.container_concurrency,
            on_demand=self.poke,
            clock=ctx.clock,
            retry_after=retry_after(scaling),
        )
        self.buffer.on_cold_start = functools.partial(ctx.recorder.cold_start, service)
        self.executor.drainer = self.buffer.wait_idle
        self.backends: dict[str, Backend] = {}
        self.asked: int | None = None
        self._poked = False
        self._wake: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._done: anyio.Event | None = None
        self._closed = False
        self.executor.subscribe(self._on_ready)
        self._on_ready(self.executor.ready_endpoints())

    # ------------------------------------------------------------------ request side

    def backend(self, url: str) -> Backend:
        backend = self.backends.get(url)
        if backend is None:  # a replica that left rotation while a request was being admitted
            backend = Backend(url=url)
        return backend

    def is_ready(self, url: str) -> bool:
        """Whether `url` is a ready replica now (published by the executor, in rotation)."""
        return url in self.backends

    def poke(self) -> None:
        """A request has to wait (single flight, from the buffer): decide now, not at the tick."""
        self._poked = True
        if self._wake is not None:
            self._wake.set()

    def reconfigure(self, scaling: ScalingConfig) -> None:
        """A reload changed the scaling block but not the executor: keep the replicas.

        The autoscaler starts afresh (in panic mode over more than one ready replica, as Knative
        does after a restart, so it never scales down on an empty history); the buffer keeps its
        queue and takes the new limits.
        """
        if scaling == self.scaling:
            return
        self.scaling = scaling
        self.granularity = min(self.granularity, scaling.tick_interval)
        ready = len(self.executor.ready_endpoints())
        self.kpa = _decider(scaling, self.clock.now(), self.service, ready)
        self.buffer.max_requests = scaling.buffer_max_requests
        self.buffer.max_bytes = scaling.buffer_max_bytes
        self.buffer.timeout = scaling.buffer_timeout
        self.buffer.container_concurrency = scaling.container_concurrency
        self.buffer.retry_after = retry_after(scaling)
        self.buffer.set_replicas(self.buffer.replicas)
        self.asked = None
        self.poke()

    def _on_ready(self, urls: list[str]) -> None:
        self.backends = {url: self.backends.get(url) or Backend(url=url) for url in urls}
        self.buffer.set_replicas(urls)
        self.publish("replicas", {"service": self.service, "ready": len(urls), "desired": self.asked})

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Until cancelled: run the executor and the autoscaling loop."""
        if self._closed:  # closed (a shutdown, a reload) before the task the commit started ran
            return
        self._done = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._run_executor)
                    await self._loop()
        finally:
            self._done.set()

    async def _run_executor(self) -> None:
        """The executor's task; a failure (an API server away, a bad kubeconfig) is logged and
        retried with back-off instead of taking the gateway down."""
        backoff = 1.0
        while True:
            try:
                await self.executor.run()
                return
            except Exception:
                self.log.exception("executor %r failed; retrying in %gs", self.scaling.executor, backoff)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _loop(self) -> None:
        next_tick = self.clock.now()
        while True:
            self._wake = anyio.Event()
            now = self.clock.now()
            poked, self._poked = self._poked, False
            if poked:  # read before the sample, which takes the requests refused meanwhile
                self.kpa.observe(now, float(self.buffer.concurrency()))
            self.kpa.observe(now, self.buffer.take_concurrency(now))
            if poked:
                self.kpa.note_traffic(now)
                await self._decide(now)
            elif now >= next_tick:
                await self._decide(now)
                next_tick = now + self.scaling.tick_interval
            with anyio.move_on_after(self.granularity):
                await self._wake.wait()

    async def _decide(self, now: float) -> None:
        try:
            ready = len(self.executor.ready_endpoints())
            decision = self.kpa.decide(now, ready)
            desired = int(decision.desired)
            if desired != self.asked:
                await self.executor.scale(desired)
                previous, self.asked = self.asked, desired
                event = {"service": self.service, "desired": desired, "previous": previous, "ready": ready}
                # From no replica to some, with requests waiting or arriving: a cold start.
                self.publish("scale", {**event, "cold_start": ready == 0 and desired > 0})
        except Exception:
            self.log.exception("scaling decision failed")

    async def aclose(self) -> None:
        """Fail the waiting requests, stop the loop and the executor (its replicas with it)."""
        self._closed = True
        self.buffer.close()
        scope, done = self._scope, self._done
        if scope is not None and done is not None:
            scope.cancel()
            with anyio.CancelScope(shield=True):
                await done.wait()
        await self.executor.aclose()

    def snapshot(self) -> dict[str, Any]:
        stats = self.buffer.statistics()
        return {
            "service": self.service,
            "executor": self.scaling.executor,
            "asked": self.asked,
            "autoscaler": self.kpa.snapshot(),
            "replicas": self.executor.snapshot(),
            "buffer": {name: getattr(stats, name) for name in stats.__slots__},
        }


def _executor(scaling: ScalingConfig, ctx: BuildContext, servers: Sequence[str]) -> Executor[Any]:
    kind = lookup("executor", scaling.executor)
    if kind is None:
        raise ValueError(f"no executor kind {scaling.executor!r} is registered")
    config = kind.config.model_validate(scaling.executor_options)
    executor: Executor[Any] = kind.impl(config, ctx, servers=servers)
    return executor


def _decider(scaling: ScalingConfig, now: float, service: str, ready: int) -> Decider:
    kind = lookup("scaler", "kpa")
    assert kind is not None, "the kpa scaler kind is part of the stdlib"
    fields = {name: getattr(scaling, name) for name in kind.config.model_fields}
    config = kind.config.model_validate(fields)
    decider: Decider = kind.impl(config, now=now, ready=ready, name=service)
    return decider
