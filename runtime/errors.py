"""The gateway's error taxonomy.

Anything that goes wrong while serving a request is one of these, carrying the HTTP status and a
short machine-readable reason. They are turned into responses at exactly one place (the stream
handler in `runtime/pipeline.py`): a JSON body with the request id, or gRPC trailers for gRPC
requests. Users never see a Python traceback.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class: a failure with the status the client should see."""

    status: int = 500
    reason: str = "internal_error"
    # gRPC status code used when the request is gRPC (see grpc/status codes): 13 = INTERNAL.
    grpc_status: int = 13

    def __init__(self, message: str = "", *, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message or self.reason.replace("_", " "))
        self.message = message or self.reason.replace("_", " ")
        self.headers: list[tuple[str, str]] = headers or []


class BadRequest(GatewayError):
    status, reason, grpc_status = 400, "bad_request", 13


class Unauthorized(GatewayError):
    """401: missing or wrong credentials. Carries the `WWW-Authenticate` challenge (RFC 9110 §11.6.1)."""

    status, reason, grpc_status = 401, "unauthorized", 16


class Forbidden(GatewayError):
    status, reason, grpc_status = 403, "forbidden", 7


class NotFound(GatewayError):
    status, reason, grpc_status = 404, "no_route", 12


class MisdirectedRequest(GatewayError):
    """The Host names a server whose TLS options differ from those the connection's SNI chose
    (RFC 9110 §15.5.20; Traefik answers domain fronting across TLS options so)."""

    status, reason, grpc_status = 421, "misdirected_request", 9


class RequestTimeout(GatewayError):
    status, reason, grpc_status = 408, "request_timeout", 4


class PayloadTooLarge(GatewayError):
    status, reason, grpc_status = 413, "payload_too_large", 8


class UriTooLong(GatewayError):
    status, reason, grpc_status = 414, "uri_too_long", 8


class TooManyRequests(GatewayError):
    status, reason, grpc_status = 429, "rate_limited", 8


class HeadersTooLarge(GatewayError):
    status, reason, grpc_status = 431, "request_headers_too_large", 8


class Unimplemented(GatewayError):
    """501: the request needs something the gateway does not implement (RFC 9110 §15.6.2), e.g.
    a transfer coding other than chunked (RFC 9112 §6.1)."""

    status, reason, grpc_status = 501, "not_implemented", 12


class ClientClosed(GatewayError):
    """The client went away; nothing can be sent. 499 as nginx logs it."""

    status, reason, grpc_status = 499, "client_closed_request", 1


class BadGateway(GatewayError):
    """The upstream answered something that is not valid HTTP, or closed mid-response."""

    status, reason, grpc_status = 502, "bad_gateway", 14


class UpstreamConnectError(BadGateway):
    reason = "upstream_connect_failed"


class ServiceUnavailable(GatewayError):
    status, reason, grpc_status = 503, "service_unavailable", 14


class NoHealthyBackend(ServiceUnavailable):
    reason = "no_healthy_backend"


class CircuitOpen(ServiceUnavailable):
    reason = "circuit_open"


class BufferFull(ServiceUnavailable):
    reason = "cold_start_buffer_full"


class BufferTimeout(ServiceUnavailable):
    reason = "cold_start_timeout"


class Overloaded(ServiceUnavailable):
    """Shed by a `queue` middleware: every slot busy and the waiting line full of requests of a
    class at least as high (the lowest class is shed first)."""

    reason = "overloaded"


class QueueTimeout(ServiceUnavailable):
    """A request waited its `queue` middleware's `timeout` for a slot."""

    reason = "queue_timeout"


class GatewayTimeout(GatewayError):
    status, reason, grpc_status = 504, "upstream_timeout", 4


class UpstreamConnectTimeout(GatewayTimeout):
    """No connection within the service's connect timeout: like a refused connect, nothing
    reached the backend, so another backend may take the request (nginx's default
    `proxy_next_upstream error timeout`); the client sees 504 when none can."""

    reason = "upstream_connect_timeout"


# Failures before anything of the request reached the backend: the same request may be sent to
# another backend (the service) or again (the retry middleware), whatever its method.
CONNECT_FAILURES = (UpstreamConnectError, UpstreamConnectTimeout)
