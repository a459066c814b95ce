"""Every Prometheus series the gateway exports: name, kind, labels and help, in one table.

The names follow Traefik's (`traefik_entrypoint_requests_total` ...) with the prefix
`a3s_gateway_`, and OpenTelemetry's conventions where Traefik has no series (units in the name,
`_seconds`, `_bytes`; `_total` on counters). Other code refers to these constants, never to a
name spelled out again, and docs/observability.md's metric list is generated from `SERIES`
(`make docs`; a test checks it is fresh).

Labels are names from the configuration (entrypoints, routers, services, middlewares, scalers)
or small closed sets (status code, method, protocol, result): never a path, a host, a client
address or a key, so the number of series stays bounded however varied the traffic.

To add a series (issue 15's token counters, say): a `Series(...)` constant here, listed in
`SERIES`; `GatewayMetrics.metric(series)` then gives its prometheus-client object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PREFIX", "SERIES", "Series"]

PREFIX = "a3s_gateway_"

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Series:
    """One metric family. `name` is the exposed name (with `_total` for a counter)."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    # How `run --workers N` combines a gauge over the workers (prometheus-client's multiprocess
    # modes): the sum of the live workers', or the largest.
    workers: Literal["livesum", "max"] = "livesum"
    # Where the value comes from, for the docs: "request" (each request), "state" (read from the
    # live objects when scraped), "event" (a reload, a connection, a cold start ...).
    source: Literal["request", "state", "event"] = "request"


_REQ = ("code", "method", "protocol")

ENTRYPOINT_REQUESTS = Series(
    f"{PREFIX}entrypoint_requests_total",
    "counter",
    ("entrypoint", *_REQ),
    "HTTP requests an entrypoint received, by the status sent.",
)
ENTRYPOINT_DURATION = Series(
    f"{PREFIX}entrypoint_request_duration_seconds",
    "histogram",
    ("entrypoint", *_REQ),
    "Seconds from routing to the end of the response body, per entrypoint.",
)
ROUTER_REQUESTS = Series(
    f"{PREFIX}router_requests_total",
    "counter",
    ("router", "service", *_REQ),
    "HTTP requests a router took (add_routers_labels).",
)
ROUTER_DURATION = Series(
    f"{PREFIX}router_request_duration_seconds",
    "histogram",
    ("router", "service", *_REQ),
    "Seconds from routing to the end of the response body, per router.",
)
SERVICE_REQUESTS = Series(
    f"{PREFIX}service_requests_total",
    "counter",
    ("service", *_REQ),
    "HTTP requests that reached a service (past the router's middlewares).",
)
SERVICE_DURATION = Series(
    f"{PREFIX}service_request_duration_seconds",
    "histogram",
    ("service", *_REQ),
    "Seconds from reaching the service to the end of the response body.",
)
SERVICE_SERVER_UP = Series(
    f"{PREFIX}service_server_up",
    "gauge",
    ("service", "url"),
    "1 when a server of a service is healthy (and not draining), else 0.",
    workers="max",
    source="state",
)
OPEN_CONNECTIONS = Series(
    f"{PREFIX}open_connections",
    "gauge",
    ("entrypoint", "protocol"),
    "Client connections open on an entrypoint.",
    source="event",
)
CONFIG_RELOADS = Series(
    f"{PREFIX}config_reloads_total",
    "counter",
    ("result",),
    "Configuration reloads, by result (success, failure).",
    source="event",
)
CONFIG_LAST_RELOAD_SUCCESS = Series(
    f"{PREFIX}config_last_reload_success_timestamp_seconds",
    "gauge",
    (),
    "Unix time of the last configuration loaded (the start, or a reload).",
    workers="max",
    source="event",
)
TLS_CERTS_NOT_AFTER = Series(
    f"{PREFIX}tls_certs_not_after",
    "gauge",
    ("cn", "sans"),
    "Unix time a configured certificate expires.",
    workers="max",
    source="state",
)

SERIES: tuple[Series, ...] = (
    ENTRYPOINT_REQUESTS,
    ENTRYPOINT_DURATION,
    ROUTER_REQUESTS,
    ROUTER_DURATION,
    SERVICE_REQUESTS,
    SERVICE_DURATION,
    SERVICE_SERVER_UP,
    OPEN_CONNECTIONS,
    CONFIG_RELOADS,
    CONFIG_LAST_RELOAD_SUCCESS,
    TLS_CERTS_NOT_AFTER,
)
