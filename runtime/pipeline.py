"""The single error boundary of the data plane.

Everything below `dispatch` (router, middlewares, services, the proxy, the upstream client)
signals failure by raising a `GatewayError`; this is the only place that turns one into a
response. Anything else that escapes is a bug: it is logged with its traceback and the client
gets a plain 500 with the request id, never the traceback. Cancellation is not an error and
passes through untouched (asyncio's CancelledError and trio's Cancelled are BaseExceptions).
"""

from __future__ import annotations

import logging

from .api import Handler, Headers, Request, Response
from .errors import GatewayError

__all__ = ["error_response", "recover", "run_dispatch"]

log = logging.getLogger("a3s_gateway.pipeline")


async def run_dispatch(dispatch: Handler, request: Request) -> Response:
    """Run the request through the graph; always returns a response (errors included)."""
    try:
        return await dispatch(request)
    except Exception as exc:
        return recover(request, exc)


def recover(request: Request, exc: Exception) -> Response:
    """The response for an exception that escaped `dispatch` (run_dispatch's except clause,
    for callers that inline it to save a coroutine per request)."""
    if isinstance(exc, GatewayError):
        return error_response(request, exc)
    log.error(
        "unhandled error while serving %s %s (request id %s)",
        request.method,
        request.target,
        request.request_id,
        exc_info=exc,
    )
    return error_response(request, GatewayError())


def error_response(request: Request, error: GatewayError) -> Response:
    """The response a client sees for `error`: JSON with the request id, or gRPC status fields."""
    if request.is_grpc:
        return _grpc_error(error)
    return Response.from_error(error, request.request_id)


def _grpc_error(error: GatewayError) -> Response:
    """A gRPC "trailers-only" answer: status 200 with grpc-status/grpc-message as headers.

    On the wire, trailers-only is one HEADERS frame with END_STREAM: the HTTP/2 connection
    (`runtime/h2connection.py`, `_bodiless`) sends a gRPC head holding `grpc-status` that way.
    Over HTTP/1.1 there is no gRPC, so only the HTTP/2 side sees this shape.
    """
    headers = Headers.from_pairs(error.headers)
    headers.set("content-type", "application/grpc")
    headers.set("grpc-status", str(error.grpc_status))
    # grpc-message is percent-encoded (gRPC over HTTP/2 spec, "Responses").
    headers.set("grpc-message", _percent_encode(error.message))
    headers.set("content-length", "0")
    return Response(200, headers, generated=True)


def _percent_encode(text: str) -> str:
    """grpc-message encoding: UTF-8, then %XX for bytes outside printable ASCII and for '%'."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x25 else f"%{b:02X}" for b in text.encode())
