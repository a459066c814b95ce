"""State series: read from the live graph when Prometheus scrapes, free on the request path.

`GraphCollector` is registered with the gateway's registry; at each scrape it reads the graph
generation serving new requests (`current()`) and reports each server's health, each configured
certificate's expiry, and (see `ai_series.py`) the scalers', breakers' and rollouts' state from
their own `snapshot()`s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .metric_names import SERVICE_SERVER_UP, TLS_CERTS_NOT_AFTER
from .metrics import state_gauges
from .tls_certs import CertInfo

if TYPE_CHECKING:
    from ..graph import LiveGraph

__all__ = ["GraphCollector"]


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
        yield state_gauges(TLS_CERTS_NOT_AFTER)(((c.cn, c.sans), c.not_after) for c in self._certs())
