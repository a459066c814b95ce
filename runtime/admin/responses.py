"""The admin API's JSON responses and errors, in the shape the data plane's errors use."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..api import Headers, Request, Response, iter_body


def json_response(status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Pretty JSON (people read it with curl); values the encoder does not know become strings."""
    data = (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode()
    out = Headers.from_pairs(headers)
    out.set("content-type", "application/json")
    out.set("content-length", str(len(data)))
    out.set("cache-control", "no-store")
    return Response(status, out, iter_body(data), generated=True)


def error(
    status: int, kind: str, message: str, headers: Iterable[tuple[str, str]] = (), **extra: Any
) -> Response:
    return json_response(
        status, {"error": {"type": kind, "message": message, "status": status, **extra}}, headers
    )


def not_found(request: Request) -> Response:
    return error(404, "not_found", f"no admin endpoint {request.path}")


def method_not_allowed(request: Request, allow: Iterable[str]) -> Response:
    allowed = ", ".join(allow)
    # RFC 9110 §15.5.6: a 405 carries Allow with the methods the target supports.
    return error(
        405, "method_not_allowed", f"{request.method} is not allowed on {request.path}", [("allow", allowed)]
    )
