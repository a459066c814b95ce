"""The front of a scaled service, or of a service with revisions: built per generation.

`scaling_front(...)` is called by the graph for each HTTP service while a generation is built.
It returns None for a plain service, or a `ScalingFront`, which the service calls instead of
picking a backend itself: `await front(request, path)`. `path` is the service's own request path
(`ServicePath`, _serve.py): its balancer, `send` to one backend (in-flight count, latency EWMA,
passive health) and `serve_on` a set of backends (pick, send, and on a connect failure try
another), so a scaled or revisioned service counts, heals and fails over as a plain one does.

The live objects it wires up are long-lived state kept across reloads (`KeptState`, the
contract's view of the generation being built; a new scaler's loop runs on the contract's
`Spawner`, both from runtime/api.py): the
`Scaler` of the service (`scaling { ... }`, _scaler.py), or the `RevisionSet` (revisions and
rollout, _revision_set.py) and one `Scaler` per scaled revision (`scaler:svc/rev`: the service's
`scaling` block, or a revision's own `scaling = { ... }`, merged by the compiler into
`RevisionConfig.scaling`; each scales on its own, as in Knative). A scaler is kept across
reloads while its executor, executor options and servers are unchanged.

Building a front changes nothing live: a kept scaler takes its new limits, the revisions their
new split, and a new scaler starts its executor, all at the reload's commit (`txn.on_commit`),
so a reload that fails leaves every scaler and replica as it was.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ...compiler.ir import Node, fingerprint
from ...compiler.schema import LoadBalancerConfig, ScalingConfig, ServiceConfig
from ...runtime.api import Backend, Clock, KeptState, Request, Response, Spawner
from ..base import BuildContext
from ._revision_set import RevisionSet
from ._scaler import Scaler
from ._serve import ServicePath, serve_scaled

__all__ = ["ScalingFront", "scaling_front"]


def scaling_front(
    node: Node,
    txn: KeptState,
    ctx: BuildContext,
    tasks: Spawner,
    resolve: Callable[[str], str] = lambda url: url,
) -> ScalingFront | None:
    """The front of service `node` (None when it has neither scaling nor revisions)."""
    config = node.config
    assert isinstance(config, ServiceConfig)
    scaler: Scaler | None = None
    revisions: RevisionSet | None = None
    revision_scalers: dict[str, Scaler] = {}
    if config.revisions:
        revisions = txn.obtain(node.id, "", lambda: RevisionSet(node.name, ctx), slot="revisions")
        txn.on_commit(revisions.prepare(config, ctx.clock, resolve))
        for revision in config.revisions:
            if revision.scaling is not None:
                servers = [resolve(s.url) for s in revision.servers if s.url]
                unit = f"{node.name}/{revision.name}"
                revision_scalers[revision.name] = _scaler(unit, revision.scaling, servers, txn, ctx, tasks)
    elif config.scaling is not None:
        lb = config.load_balancer or LoadBalancerConfig()
        servers = [resolve(s.url) for s in lb.servers if s.url]
        scaler = _scaler(node.name, config.scaling, servers, txn, ctx, tasks)
    if scaler is None and revisions is None:
        return None
    return ScalingFront(config, scaler, revisions, ctx.clock, revision_scalers)


def _scaler(
    unit: str,
    scaling: ScalingConfig,
    servers: list[str],
    txn: KeptState,
    ctx: BuildContext,
    tasks: Spawner,
) -> Scaler:
    """The live scaler of one scaled unit: a service, or one revision of it (`service/revision`)."""
    # Replicas live as long as the executor and its servers are unchanged.
    key = fingerprint("executor", [scaling.executor, scaling.executor_options, servers])

    def create() -> Scaler:
        scaler = Scaler(unit, scaling, ctx, servers=servers)
        # Its executor (and replicas) start with the generation that uses it, at the commit.
        txn.on_commit(functools.partial(tasks.start_soon, scaler.run, name=f"scaler {unit}"))
        return scaler

    scaler: Scaler = txn.obtain(f"scaler:{unit}", key, create, _close_scaler)
    txn.on_commit(functools.partial(scaler.reconfigure, scaling))
    return scaler


async def _close_scaler(scaler: Any) -> None:
    await scaler.aclose()


class ScalingFront:
    """Per generation (cheap): routes one request through the scaler or the revisions."""

    def __init__(
        self,
        config: ServiceConfig,
        scaler: Scaler | None,
        revisions: RevisionSet | None,
        clock: Clock,
        revision_scalers: Mapping[str, Scaler] | None = None,
    ) -> None:
        self.config = config
        self.scaler = scaler
        self.revisions = revisions
        self.clock = clock
        # Revisions that scale on their own, by name (the others are served from their servers).
        self.revision_scalers: Mapping[str, Scaler] = revision_scalers or {}

    def __call__(self, request: Request, path: ServicePath) -> Awaitable[Response]:
        if self.scaler is not None:
            return serve_scaled(self.scaler, request, path)
        assert self.revisions is not None
        return self.revisions.handle(request, path, self.revision_scalers)

    def backends(self) -> tuple[Backend, ...]:
        """The backends the service's health checks judge: the servers of unscaled revisions.

        A scaler's replicas are not listed: the scaler starts, probes and retires them itself, so
        only passive health (through `path.send`) applies to them.
        """
        if self.revisions is None:
            return ()
        return tuple(
            b
            for name, group in self.revisions.backends.items()
            if name not in self.revision_scalers
            for b in group
        )

    def has_available(self) -> bool:
        """Whether a request can be served now: a scaled unit always can (it buffers)."""
        if self.revisions is None or self.revision_scalers:
            return True
        return any(b.available for group in self.revisions.backends.values() for b in group)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.scaler is not None:
            out["scaler"] = self.scaler.snapshot()
        if self.revisions is not None:
            out["revisions"] = self.revisions.snapshot()
        if self.revision_scalers:
            out["revision_scalers"] = {name: s.snapshot() for name, s in self.revision_scalers.items()}
        return out
