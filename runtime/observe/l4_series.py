"""State series of the TCP and UDP entrypoints, read from the live objects when scraped.

`L4Collector` reads each UDP server's `statistics()` (its open sessions, and the datagrams and
bytes it relayed each way), each TCP server's refusals at accept, and the refusals of each
tcp-filter middleware of the current generation (`TcpFilterState.statistics()`). All of these
are counts the servers and filters keep anyway: the series cost nothing per datagram or
connection. Under `--workers` they report the answering worker's objects (as every state series).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .metric_names import TCP_FILTER_REFUSED, TCP_REFUSED, UDP_BYTES, UDP_DATAGRAMS, UDP_SESSIONS
from .metrics import state_counters, state_gauges

if TYPE_CHECKING:
    from ..graph import LiveGraph

__all__ = ["L4Collector"]


class L4Collector:
    """A prometheus-client collector of the L4 state series (see the module docstring)."""

    def __init__(
        self, listeners: Callable[[], Mapping[str, Any]], current: Callable[[], LiveGraph | None]
    ) -> None:
        self._listeners = listeners
        self._current = current

    def collect(self) -> Iterator[Any]:
        tcp: list[tuple[str, Any]] = []
        udp: list[tuple[str, Any]] = []
        for name, listener in sorted(self._listeners().items()):
            protocol = listener.config.protocol
            if protocol in ("tcp", "udp"):
                (tcp if protocol == "tcp" else udp).append((name, listener.server.statistics()))
        yield state_counters(TCP_REFUSED)(((name,), s.refused) for name, s in tcp)
        yield state_gauges(UDP_SESSIONS)(((name,), s.sessions) for name, s in udp)
        yield state_counters(UDP_BYTES)(
            sample for name, s in udp for sample in (((name, "in"), s.bytes_in), ((name, "out"), s.bytes_out))
        )
        yield state_counters(UDP_DATAGRAMS)(
            sample
            for name, s in udp
            for sample in (((name, "in"), s.datagrams_in), ((name, "out"), s.datagrams_out))
        )
        graph = self._current()
        filters = sorted(graph.tcp_filters.items()) if graph is not None else []
        yield state_counters(TCP_FILTER_REFUSED)(
            sample
            for name, state in filters
            for stats in (state.statistics(),)
            for sample in (
                ((name, "ip"), stats["refused_ip"]),
                ((name, "max_connections"), stats["refused_full"]),
            )
        )
