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
SERVICE_SERVER_AGENT_STATE = Series(
    f"{PREFIX}service_server_agent_state",
    "gauge",
    ("service", "url", "state"),
    "agent_health: 1 for the state a server is in (loading, ready, busy, error, unreachable), 0 for the others.",
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

ACME_CERTIFICATE_NOT_AFTER = Series(
    f"{PREFIX}acme_certificate_not_after",
    "gauge",
    ("resolver", "names"),
    "Unix time an ACME certificate expires (its names comma-separated); absent until issued.",
    workers="max",
    source="state",
)
ACME_CERTIFICATE_FAILURES = Series(
    f"{PREFIX}acme_certificate_failures",
    "gauge",
    ("resolver", "names"),
    "Failed orders in a row for an ACME certificate (0 once issued or renewed); alert on > 0.",
    workers="max",
    source="state",
)
ACME_ORDERS = Series(
    f"{PREFIX}acme_orders_total",
    "counter",
    ("resolver", "result"),
    "ACME orders this gateway finished, by result (success, failure).",
    source="state",
)

# ------------------------------------------------------------------ what an AI gateway adds

_ROUTE = ("router", "service")

ROUTER_TTFB = Series(
    f"{PREFIX}router_time_to_first_byte_seconds",
    "histogram",
    _ROUTE,
    "Seconds from routing until the response head is ready (add_routers_labels).",
)
SERVICE_TTFB = Series(
    f"{PREFIX}service_time_to_first_byte_seconds",
    "histogram",
    ("service",),
    "Seconds from reaching the service until the response head is ready.",
)
SSE_EVENTS = Series(
    f"{PREFIX}sse_events_total",
    "counter",
    _ROUTE,
    "Server-sent events relayed to clients (responses of type text/event-stream).",
)
SSE_BYTES = Series(
    f"{PREFIX}sse_bytes_total", "counter", _ROUTE, "Bytes of server-sent event streams relayed to clients."
)
OPEN_STREAMS = Series(
    f"{PREFIX}open_streams",
    "gauge",
    _ROUTE,
    "Server-sent event streams being relayed now.",
)
STREAM_DURATION = Series(
    f"{PREFIX}stream_duration_seconds",
    "histogram",
    _ROUTE,
    "Seconds a server-sent event stream lasted, from routing to its end.",
)
UPSTREAM_CONNECT = Series(
    f"{PREFIX}service_connect_duration_seconds",
    "histogram",
    ("service",),
    "Seconds to open a new connection (TCP, and TLS) to a server of the service.",
    source="event",
)
SERVICE_RETRIES = Series(
    f"{PREFIX}service_retries_total",
    "counter",
    ("service",),
    "Requests the retry middleware sent again.",
)
MIDDLEWARE_DENIED = Series(
    f"{PREFIX}middleware_denied_requests_total",
    "counter",
    ("middleware", "type", "code"),
    "Requests a middleware answered itself with an error (a rate limit's 429, an auth's 401 ...).",
)
MIRROR_REQUESTS = Series(
    f"{PREFIX}mirror_requests_total",
    "counter",
    ("service", "mirror"),
    "Shadow copies of requests sent to a mirror service.",
)
CIRCUIT_BREAKER_STATE = Series(
    f"{PREFIX}circuit_breaker_state",
    "gauge",
    ("middleware", "target", "state"),
    "1 for the state a circuit breaker is in (closed, open, half_open), 0 for the others.",
    source="state",
)
SCALER_DESIRED = Series(
    f"{PREFIX}scaler_desired_replicas",
    "gauge",
    ("scaler",),
    "Replicas the autoscaler asks for.",
    source="state",
)
SCALER_READY = Series(
    f"{PREFIX}scaler_ready_replicas", "gauge", ("scaler",), "Replicas ready and in rotation.", source="state"
)
SCALER_STARTING = Series(
    f"{PREFIX}scaler_starting_replicas",
    "gauge",
    ("scaler",),
    "Replicas asked for and not ready yet.",
    source="state",
)
SCALER_PANIC = Series(
    f"{PREFIX}scaler_panic_mode",
    "gauge",
    ("scaler",),
    "1 while the autoscaler is in panic mode.",
    source="state",
)
SCALER_BUFFERED = Series(
    f"{PREFIX}scaler_buffered_requests",
    "gauge",
    ("scaler",),
    "Requests waiting in the cold-start buffer for a replica.",
    source="state",
)
SCALER_COLD_STARTS = Series(
    f"{PREFIX}scaler_cold_starts_total",
    "counter",
    ("scaler",),
    "Times requests had to wait for a first replica.",
    source="event",
)
SCALER_COLD_START_DURATION = Series(
    f"{PREFIX}scaler_cold_start_duration_seconds",
    "histogram",
    ("scaler",),
    "Seconds from the first request waiting with no replica to the first replica ready.",
    source="event",
)
ROLLOUT_PERCENTAGE = Series(
    f"{PREFIX}rollout_percentage",
    "gauge",
    ("service", "revision"),
    "Per cent of the service's traffic the rollout sends to the new revision.",
    source="state",
)
ROLLOUT_STEP = Series(
    f"{PREFIX}rollout_step", "gauge", ("service", "revision"), "The rollout's current step.", source="state"
)
ROLLOUT_ROLLBACKS = Series(
    f"{PREFIX}rollout_rollbacks_total",
    "counter",
    ("service",),
    "Rollouts rolled back (their new revision's error rate or latency was too high).",
    source="event",
)


# ------------------------------------------------------------------ TCP and UDP entrypoints
# Open TCP connections are OPEN_CONNECTIONS (protocol "TCP"), as for HTTP entrypoints.

_L4_ROUTE = ("entrypoint", "router", "service")

TCP_BYTES = Series(
    f"{PREFIX}tcp_bytes_total",
    "counter",
    (*_L4_ROUTE, "direction"),
    "Bytes a TCP router relayed: `in` from clients to servers, `out` back (counted as a connection "
    "ends, and every tick while it is busy).",
    source="event",
)
TCP_CONNECTION_DURATION = Series(
    f"{PREFIX}tcp_connection_duration_seconds",
    "histogram",
    _L4_ROUTE,
    "Seconds a relayed TCP connection lasted, from its accept to its close.",
    source="event",
)
TCP_REFUSED = Series(
    f"{PREFIX}tcp_refused_connections_total",
    "counter",
    ("entrypoint",),
    "TCP connections closed at accept (`tcp_allowed_ips`, `max_connections`, or draining).",
    source="state",
)
TCP_FILTER_REFUSED = Series(
    f"{PREFIX}tcp_filter_refused_connections_total",
    "counter",
    ("middleware", "reason"),
    "TCP connections a tcp-filter middleware refused, by reason (`ip`, `max_connections`).",
    source="state",
)
UDP_SESSIONS = Series(
    f"{PREFIX}udp_sessions",
    "gauge",
    ("entrypoint",),
    "UDP sessions open on an entrypoint.",
    source="state",
)
UDP_BYTES = Series(
    f"{PREFIX}udp_bytes_total",
    "counter",
    ("entrypoint", "direction"),
    "Bytes of datagrams a UDP entrypoint relayed (to its one router's service): `in` from clients, "
    "`out` back.",
    source="state",
)
UDP_DATAGRAMS = Series(
    f"{PREFIX}udp_datagrams_total",
    "counter",
    ("entrypoint", "direction"),
    "Datagrams a UDP entrypoint relayed: `in` from clients, `out` back.",
    source="state",
)


# ------------------------------------------------------------------ the LLM layer (issue 15)
# OpenTelemetry's GenAI semantic conventions name the quantities (gen_ai.client.token.usage with
# gen_ai.token.type = input | output, gen_ai.server.time_to_first_token,
# gen_ai.server.time_per_output_token); OTel records tokens as a histogram per request, we count
# them (a counter is what `sum by (key) (rate(...))` and a budget dashboard need). Every label
# is bounded: `model` is a configured name, glob or "other" (stdlib/common/model_labels.py), `key`
# a configured key's name (keys made through the admin API: see docs/llm.md), `service` and
# `middleware` configured names.

_LLM = ("service", "model", "key")

GEN_AI_TOKENS = Series(
    f"{PREFIX}gen_ai_client_token_usage_tokens_total",
    "counter",
    (*_LLM, "type"),
    "LLM tokens, from the upstream's reported usage, by type (input, output) (llm-keys; else model_router).",
)
GEN_AI_REQUESTS = Series(
    f"{PREFIX}gen_ai_requests_total",
    "counter",
    (*_LLM, "code"),
    "LLM requests, by the status sent (llm-keys, its refusals included; else model_router).",
)
GEN_AI_TIME_TO_FIRST_TOKEN = Series(
    f"{PREFIX}gen_ai_server_time_to_first_token_seconds",
    "histogram",
    ("service", "model"),
    "Seconds from the request reaching llm-keys (else model_router) to the first event of a streamed answer.",
)
GEN_AI_TIME_PER_OUTPUT_TOKEN = Series(
    f"{PREFIX}gen_ai_server_time_per_output_token_seconds",
    "histogram",
    ("service", "model"),
    "Seconds per output token after the first, of a streamed answer.",
)
GEN_AI_FALLBACKS = Series(
    f"{PREFIX}gen_ai_fallbacks_total",
    "counter",
    ("service", "model"),
    "Requests a model_router sent to a fallback (after a 429, 5xx, connect failure or timeout).",
    source="event",
)
ROUTING_DECISIONS = Series(
    f"{PREFIX}routing_decisions_total",
    "counter",
    ("service", "target", "reason"),
    "Requests a routing service sent on, by the service it chose (target) and why: a privacy_router's "
    "level, or a kairos's reason (model, cache, timeout, error, unparsable, no_text).",
    source="event",
)
LLM_KEYS_REDIS_ERRORS = Series(
    f"{PREFIX}llm_keys_redis_errors_total",
    "counter",
    ("middleware",),
    "Calls of llm-keys to Redis that failed or timed out.",
    source="event",
)
LLM_KEYS_FAILED_OPEN = Series(
    f"{PREFIX}llm_keys_failed_open_total",
    "counter",
    ("middleware",),
    "Requests llm-keys let through unmetered while Redis was down (fail_open).",
    source="event",
)
CACHE_REQUESTS = Series(
    f"{PREFIX}cache_requests_total",
    "counter",
    ("middleware", "result"),
    "Requests a cache middleware looked up, by result: hit, revalidated (both answered from it), miss.",
    source="state",
)
QUEUE_WAITING = Series(
    f"{PREFIX}queue_waiting_requests",
    "gauge",
    ("middleware", "service", "priority"),
    "Requests a queue middleware holds waiting for a slot, by priority class (critical ... best_effort).",
    source="state",
)
QUEUE_IN_FLIGHT = Series(
    f"{PREFIX}queue_in_flight_requests",
    "gauge",
    ("middleware", "service"),
    "Requests holding one of a queue middleware's slots (their response not over yet).",
    source="state",
)
QUEUE_SHED = Series(
    f"{PREFIX}queue_shed_requests_total",
    "counter",
    ("middleware", "service", "priority", "reason"),
    "Requests a queue middleware answered 503, by class and reason: overloaded (shed), timeout.",
    source="state",
)
PROVIDER_LAST_ERROR = Series(
    f"{PREFIX}provider_last_error_timestamp_seconds",
    "gauge",
    ("provider",),
    "Unix time a provider last failed: a fragment rejected, or its source lost (docs/providers.md).",
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
    SERVICE_SERVER_AGENT_STATE,
    OPEN_CONNECTIONS,
    CONFIG_RELOADS,
    CONFIG_LAST_RELOAD_SUCCESS,
    TLS_CERTS_NOT_AFTER,
    PROVIDER_LAST_ERROR,
    ACME_CERTIFICATE_NOT_AFTER,
    ACME_CERTIFICATE_FAILURES,
    ACME_ORDERS,
    ROUTER_TTFB,
    SERVICE_TTFB,
    SSE_EVENTS,
    SSE_BYTES,
    OPEN_STREAMS,
    STREAM_DURATION,
    UPSTREAM_CONNECT,
    SERVICE_RETRIES,
    MIDDLEWARE_DENIED,
    MIRROR_REQUESTS,
    CIRCUIT_BREAKER_STATE,
    SCALER_DESIRED,
    SCALER_READY,
    SCALER_STARTING,
    SCALER_PANIC,
    SCALER_BUFFERED,
    SCALER_COLD_STARTS,
    SCALER_COLD_START_DURATION,
    ROLLOUT_PERCENTAGE,
    ROLLOUT_STEP,
    ROLLOUT_ROLLBACKS,
    TCP_BYTES,
    TCP_CONNECTION_DURATION,
    TCP_REFUSED,
    TCP_FILTER_REFUSED,
    UDP_SESSIONS,
    UDP_BYTES,
    UDP_DATAGRAMS,
    GEN_AI_TOKENS,
    GEN_AI_REQUESTS,
    GEN_AI_TIME_TO_FIRST_TOKEN,
    GEN_AI_TIME_PER_OUTPUT_TOKEN,
    GEN_AI_FALLBACKS,
    LLM_KEYS_REDIS_ERRORS,
    LLM_KEYS_FAILED_OPEN,
    CACHE_REQUESTS,
    ROUTING_DECISIONS,
    QUEUE_WAITING,
    QUEUE_IN_FLIGHT,
    QUEUE_SHED,
)
