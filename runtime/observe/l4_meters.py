"""Recording relayed TCP connections: bytes each way and duration, per entrypoint and router.

A `TcpMeters` is built with each graph generation when metrics are on (None when off: a TCP
connection then pays nothing, and the relay never does, either way). It holds the label children
of every (entrypoint, router) of the generation's TCP tables, made once. A connection looks its
`TcpRouteMeter` up once, when it is routed, and counts its relay's byte totals (`Relay.sent`,
`Relay.received`, which the relay keeps anyway) when it ends, plus what moved since the last
count at each tick of its entrypoint while it is busy: a long connection shows in the counters
within a tick, and no chunk ever pays for a counter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .metric_names import TCP_BYTES, TCP_CONNECTION_DURATION
from .metrics import GatewayMetrics

__all__ = ["TcpMeters", "TcpRouteMeter"]


class TcpRouteMeter:
    """The children of one TCP router (on one entrypoint)."""

    __slots__ = ("bytes_in", "bytes_out", "duration")

    def __init__(self, metrics: GatewayMetrics, entrypoint: str, router: str, service: str) -> None:
        labels = (entrypoint, router, service)
        self.bytes_in: Any = metrics.metric(TCP_BYTES).labels(*labels, "in")
        self.bytes_out: Any = metrics.metric(TCP_BYTES).labels(*labels, "out")
        self.duration: Any = metrics.metric(TCP_CONNECTION_DURATION).labels(*labels)

    def count(self, sent: int, received: int) -> None:
        if sent:
            self.bytes_in.inc(sent)
        if received:
            self.bytes_out.inc(received)


class TcpMeters:
    """The meters of one graph generation's TCP routers, by (entrypoint, router)."""

    def __init__(self, metrics: GatewayMetrics, routes: Iterable[tuple[str, str, str]]) -> None:
        self.routes = {(e, r): TcpRouteMeter(metrics, e, r, s) for e, r, s in routes}

    def get(self, entrypoint: str, router: str) -> TcpRouteMeter | None:
        return self.routes.get((entrypoint, router))
