"""State series: read from the live graph when Prometheus scrapes, free on the request path.

`GraphCollector` is registered with the gateway's registry; at each scrape it reads the graph
generation serving new requests (`current()`) and reports each server's health, each configured
certificate's expiry, each circuit breaker's state, each cache's hits and misses, each queue's
lines, and each scaler's and rollout's numbers, all from the objects' own `snapshot()`s and
`statistics()` (the ones the admin API shows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ...stdlib.health.agent import STATES as AGENT_STATES
from ..admin.scaling import rollouts, scalers
from .metric_names import (
    CACHE_REQUESTS,
    CIRCUIT_BREAKER_STATE,
    QUEUE_IN_FLIGHT,
    QUEUE_SHED,
    QUEUE_WAITING,
    ROLLOUT_PERCENTAGE,
    ROLLOUT_STEP,
    SCALER_BUFFERED,
    SCALER_DESIRED,
    SCALER_PANIC,
    SCALER_READY,
    SCALER_STARTING,
    SERVICE_SERVER_AGENT_STATE,
    SERVICE_SERVER_UP,
    TLS_CERTS_NOT_AFTER,
    Series,
)
from .metrics import state_counters, state_gauges
from .tls_certs import CertInfo

if TYPE_CHECKING:
    from ..graph import LiveGraph

__all__ = ["GraphCollector"]

# A breaker's states (stdlib/common/breaker.py), as label values.
_BREAKER_STATES = (("closed", "closed"), ("open", "open"), ("half-open", "half_open"))
Samples = Iterable[tuple[tuple[str, ...], float]]


class GraphCollector:
    """A prometheus-client collector of the state series (see the module docstring)."""

    def __init__(self, current: Callable[[], LiveGraph | None], certs: Callable[[], list[CertInfo]]) -> None:
        self._current = current
        self._certs = certs

    def collect(self) -> Iterator[Any]:
        graph = self._current()
        if graph is None:
            return
        yield state_gauges(SERVICE_SERVER_UP)(
            ((name, backend.url), 1.0 if backend.available else 0.0)
            for name, service in sorted(graph.services.items())
            for backend in service.backends
        )
        yield state_gauges(SERVICE_SERVER_AGENT_STATE)(_agent_states(graph))
        yield state_gauges(TLS_CERTS_NOT_AFTER)(((c.cn, c.sans), c.not_after) for c in self._certs())
        yield state_gauges(CIRCUIT_BREAKER_STATE)(_breakers(graph))
        yield state_counters(CACHE_REQUESTS)(_caches(graph))
        queues = list(_queues(graph))
        yield state_gauges(QUEUE_WAITING)(
            ((mw, svc, p), float(n)) for mw, svc, s in queues for p, n in s["waiting"].items()
        )
        yield state_gauges(QUEUE_IN_FLIGHT)(((mw, svc), float(s["in_flight"])) for mw, svc, s in queues)
        yield state_counters(QUEUE_SHED)(_sheds(queues))
        found = scalers(graph)
        for series, read in _SCALER_GAUGES:
            yield state_gauges(series)(((s["name"],), float(read(s))) for s in found)
        steps = [(r["service"], r["rollout"]) for r in rollouts(graph)]
        yield state_gauges(ROLLOUT_PERCENTAGE)(((svc, r["to"]), float(r["percentage"])) for svc, r in steps)
        yield state_gauges(ROLLOUT_STEP)(((svc, r["to"]), float(r["step"])) for svc, r in steps)


def _agent_states(graph: LiveGraph) -> Samples:
    for name, service in sorted(graph.services.items()):
        for backend in service.backends:
            current = service.health.state(backend.key)
            if current is not None:  # the service has agent_health
                for state in AGENT_STATES:
                    yield (name, backend.url, state), 1.0 if state == current else 0.0


def _breakers(graph: LiveGraph) -> Samples:
    for name, middleware in sorted(graph.middlewares.items()):
        snapshot = getattr(middleware, "state_snapshot", None)
        if snapshot is None:
            continue
        for target, breaker in snapshot().items():
            for state, label in _BREAKER_STATES:
                yield (name, target, label), 1.0 if breaker["state"] == state else 0.0


def _caches(graph: LiveGraph) -> Samples:
    """Each cache middleware's lookups, from its statistics() (the admin API's numbers)."""
    for name, middleware in sorted(graph.middlewares.items()):
        statistics = getattr(middleware, "cache_statistics", None)
        if statistics is None:
            continue
        counts = statistics()
        for result, field in _CACHE_RESULTS:
            yield (name, result), float(counts[field])


def _queues(graph: LiveGraph) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(middleware, service, statistics) of each queue middleware's line, from its statistics()."""
    for name, middleware in sorted(graph.middlewares.items()):
        statistics = getattr(middleware, "queue_statistics", None)
        if statistics is not None:
            for service, line in statistics().items():
                yield name, service, line


def _sheds(queues: list[tuple[str, str, dict[str, Any]]]) -> Samples:
    for name, service, line in queues:
        for reason, field in (("overloaded", "shed"), ("timeout", "timeouts")):
            for priority, count in line[field].items():
                yield (name, service, priority, reason), float(count)


_CACHE_RESULTS = (("hit", "hits"), ("revalidated", "revalidated"), ("miss", "misses"))


def _desired(s: dict[str, Any]) -> int:
    last = s["autoscaler"].get("last")
    return int(last["desired"]) if last else int(s["replicas"]["desired"])


def _ready(s: dict[str, Any]) -> int:
    return len(s["replicas"]["ready"])


_SCALER_GAUGES: tuple[tuple[Series, Callable[[dict[str, Any]], float]], ...] = (
    (SCALER_DESIRED, _desired),
    (SCALER_READY, _ready),
    # Asked of the executor and not ready yet.
    (SCALER_STARTING, lambda s: max(int(s["replicas"]["desired"]) - _ready(s), 0)),
    (SCALER_PANIC, lambda s: 1.0 if s["autoscaler"]["panic"] else 0.0),
    (SCALER_BUFFERED, lambda s: s["buffer"]["queued"]),
)
