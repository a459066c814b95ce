"""One client exchange served through an upstream of the other API: `serve(conversion, request, send)`.

The client's path says which endpoint it called (the last segments: `chat/completions`,
`messages`, `messages/count_tokens`, `models`, `models/<id>`); the request is rewritten for the
upstream's endpoint under `Upstream.prefix` (`/v1/messages`, `/v1/chat/completions` ...), its
body converted, and its credentials replaced: every header that carries the client's key or
names the client's API (`authorization`, `x-api-key`, `anthropic-*`, `openai-*`, cookies) is
dropped and the upstream's own key set (`x-api-key` plus `anthropic-version`, or a Bearer
token). The Host header is dropped too, so the upstream gets its own authority. The response is
converted back: a JSON body whole, a stream event by event (`bodies.ConvertedStream`), an
error into the client's error format, whatever produced it (the upstream, or the gateway
failing to reach it: 502, 503, 504).

`send` is whatever reaches the upstream: the middleware's `next`, or the model router's call
to one of its services.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import anyio.lowlevel

from ...runtime.api import Handler, Headers, Request, Response
from ...runtime.errors import GatewayError, PayloadTooLarge
from . import anthropic_to_openai, openai_to_anthropic
from ._fields import dumps, parse_object
from .bodies import ConvertedStream, EventConverter, WholeBody, read_body, read_request_body
from .errors import (
    ConversionError,
    anthropic_error,
    anthropic_type_for_status,
    openai_error,
    openai_type_for_status,
)

__all__ = ["ESTIMATE_HEADER", "Api", "Conversion", "Upstream", "error_response", "serve"]

Api = Literal["openai", "anthropic"]
# Marks a count_tokens answer that the gateway estimated (the upstream has no such endpoint).
ESTIMATE_HEADER = "x-a3s-token-count"
MAX_ERROR_BODY = 1024 * 1024
_CLIENT_FIELDS = (
    b"authorization",
    b"x-api-key",
    b"cookie",
    b"host",
    b"content-length",
    b"content-type",
    b"accept",
    b"accept-encoding",
)
_CLIENT_PREFIXES = (b"anthropic-", b"openai-", b"x-stainless-")
_RESPONSE_DROPPED = frozenset({b"content-length", b"content-type", b"content-encoding", b"transfer-encoding"})


@dataclass(frozen=True, slots=True)
class Upstream:
    """How to reach an upstream API: which one, under which path, with which key."""

    api: Api
    api_key: str = ""
    anthropic_version: str = "2023-06-01"
    prefix: str = "/v1"
    # An OpenAI-compatible server's tokenizer endpoint (vLLM: "/tokenize"), which answers
    # Anthropic's count_tokens; "" (or a failing call): the gateway's estimate.
    tokenize_path: str = ""

    def headers(self) -> list[tuple[bytes, bytes]]:
        key = self.api_key.encode("latin-1")
        if self.api == "anthropic":
            auth = [(b"x-api-key", key)] if key else []
            return [*auth, (b"anthropic-version", self.anthropic_version.encode("latin-1"))]
        return [(b"authorization", b"Bearer " + key)] if key else []


@dataclass(frozen=True, slots=True)
class Conversion:
    """A client API served by an upstream of the other one."""

    client: Api
    upstream: Upstream
    default_max_tokens: int = openai_to_anthropic.DEFAULT_MAX_TOKENS
    max_body: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.client == self.upstream.api:
            raise ValueError("a conversion needs two different APIs")


def error_response(
    client: Api, status: int, message: str, *, param: str | None = None, code: str | None = None
) -> Response:
    """An error in the client's own format."""
    if client == "anthropic":
        return Response.json(status, anthropic_error(message, anthropic_type_for_status(status)))
    return Response.json(
        status, openai_error(message, openai_type_for_status(status), param=param, code=code)
    )


async def serve(conversion: Conversion, request: Request, send: Handler) -> Response:
    client = conversion.client
    try:
        return await _serve(conversion, request, send)
    except ConversionError as exc:
        return error_response(client, 400, exc.message, param=exc.param, code=exc.code)
    except PayloadTooLarge as exc:
        return error_response(client, 413, exc.message)
    except GatewayError as exc:  # the upstream could not be reached, timed out, broke off
        response = error_response(client, exc.status, exc.message)
        response.headers.raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers]
        return response


async def _serve(conversion: Conversion, request: Request, send: Handler) -> Response:
    client, path = conversion.client, request.path.rstrip("/")
    if client == "openai" and path.endswith("/chat/completions"):
        return await _generate(conversion, request, send, "/chat/completions")
    if client == "anthropic" and path.endswith("/messages/count_tokens"):
        return await _count_tokens(conversion, request, send)
    if client == "anthropic" and path.endswith("/messages"):
        return await _generate(conversion, request, send, "/messages")
    _, sep, model = path.rpartition("/models/")
    if path.endswith("/models") or (sep and model and "/" not in model):
        return await _models(conversion, request, send, model if sep else "")
    return error_response(client, 404, f"no such endpoint: {request.method} {request.path}")


def _post_only(conversion: Conversion, request: Request) -> None:
    if request.method != "POST":
        raise _MethodNotAllowed(f"use POST for {request.path}", headers=[("allow", "POST")])


class _MethodNotAllowed(GatewayError):
    status, reason = 405, "method_not_allowed"


async def _generate(conversion: Conversion, request: Request, send: Handler, endpoint: str) -> Response:
    _post_only(conversion, request)
    body = parse_object(await read_request_body(request, conversion.max_body))
    upstream = conversion.upstream
    if conversion.client == "openai":
        converted = openai_to_anthropic.convert_request(
            body, default_max_tokens=conversion.default_max_tokens
        )
        target = upstream.prefix + "/messages"
    else:
        converted = anthropic_to_openai.convert_request(body)
        target = upstream.prefix + "/chat/completions"
    _rewrite(request, upstream, target, dumps(converted).encode(), "POST")
    # Let the loop run before going upstream: reading, converting and encoding the request, and
    # then routing and connecting it, are one stretch of CPU otherwise, in which no other
    # stream's event is relayed (the tail of docs/benchmarks.md#llm-stream-event-latency).
    await anyio.lowlevel.checkpoint()
    response = await send(request)
    if response.status >= 300:
        return await _upstream_error(conversion, response)
    if body.get("stream") and (response.headers.get("content-type") or "").startswith("text/event-stream"):
        return _stream(conversion, response, body)
    return await _whole(conversion, response, _converter_of(conversion).convert_response)


def _converter_of(conversion: Conversion) -> Any:
    """The module of this direction (client format -> upstream format)."""
    return openai_to_anthropic if conversion.client == "openai" else anthropic_to_openai


def _rewrite(request: Request, upstream: Upstream, target: str, data: bytes | None, method: str) -> None:
    raw = [
        (name, value)
        for name, value in request.headers.raw
        if name not in _CLIENT_FIELDS and not name.startswith(_CLIENT_PREFIXES)
    ]
    raw += upstream.headers()
    raw.append((b"accept-encoding", b"identity"))  # the converter reads the body: no compression
    if data is not None:
        raw += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    request.headers = Headers(raw)
    request.method = method
    request.target = target
    request.body = WholeBody(data or b"")  # not iter_body: an async generator costs its hooks
    request.content_length = len(data) if data is not None else 0


def _stream(conversion: Conversion, response: Response, body: dict[str, Any]) -> Response:
    converter: EventConverter = _converter_of(conversion).StreamConverter(body)
    headers = _client_headers(response.headers, b"text/event-stream")
    headers.raw.append((b"cache-control", b"no-cache"))
    return Response(response.status, headers, ConvertedStream(response.body, converter))


async def _whole(conversion: Conversion, response: Response, convert: Any) -> Response:
    data = await read_body(response.body, max(conversion.max_body, MAX_ERROR_BODY))
    try:
        converted = convert(parse_object(data, "the upstream's response"))
    except (ConversionError, AttributeError, TypeError) as exc:
        raise _BadUpstream(f"the upstream's answer could not be converted: {exc}") from None
    out = dumps(converted).encode()
    headers = _client_headers(response.headers, b"application/json")
    headers.raw.append((b"content-length", str(len(out)).encode()))
    return Response(response.status, headers, WholeBody(out))


class _BadUpstream(GatewayError):
    status, reason = 502, "bad_gateway"


def _client_headers(upstream: Headers, content_type: bytes) -> Headers:
    raw = [(n, v) for n, v in upstream.raw if n not in _RESPONSE_DROPPED]
    raw.append((b"content-type", content_type))
    return Headers(raw)


async def _upstream_error(conversion: Conversion, response: Response) -> Response:
    data = await read_body(response.body, MAX_ERROR_BODY)
    try:
        parsed: Any = json.loads(data)
    except ValueError:
        parsed = None
    status, body = _converter_of(conversion).convert_error(response.status, parsed)
    out = Response.json(status, body)
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        out.headers.set("retry-after", retry_after)
    return out


async def _count_tokens(conversion: Conversion, request: Request, send: Handler) -> Response:
    """Anthropic's count_tokens with an OpenAI-compatible upstream, which has no such endpoint:
    the upstream's tokenizer when it has one (vLLM's `/tokenize`: `{"model", "messages"}` ->
    `{"count"}`), else an estimate. `x-a3s-token-count` says which (`upstream` or `estimate`)."""
    _post_only(conversion, request)
    body = parse_object(await read_request_body(request, conversion.max_body))
    upstream = conversion.upstream
    if upstream.tokenize_path:
        converted = anthropic_to_openai.convert_request(body, count_only=True)
        payload = {k: converted[k] for k in ("model", "messages", "tools") if k in converted}
        _rewrite(request, upstream, upstream.tokenize_path, dumps(payload).encode(), "POST")
        count = await _upstream_count(send, request)
        if count is not None:
            return Response.json(200, {"input_tokens": count}, [(ESTIMATE_HEADER, "upstream")])
    count = anthropic_to_openai.estimate_tokens(body)
    return Response.json(200, {"input_tokens": count}, [(ESTIMATE_HEADER, "estimate")])


async def _upstream_count(send: Handler, request: Request) -> int | None:
    """The upstream tokenizer's count, or None when it cannot give one (down, 404, odd answer)."""
    try:
        response = await send(request)
        data = await read_body(response.body, MAX_ERROR_BODY)
    except GatewayError:
        return None
    try:
        count = json.loads(data).get("count") if response.status == 200 else None
    except (ValueError, AttributeError):
        return None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


async def _models(conversion: Conversion, request: Request, send: Handler, model: str) -> Response:
    if request.method != "GET":
        raise _MethodNotAllowed(f"use GET for {request.path}", headers=[("allow", "GET")])
    upstream = conversion.upstream
    _rewrite(request, upstream, upstream.prefix + "/models" + (f"/{model}" if model else ""), None, "GET")
    response = await send(request)
    if response.status >= 300:
        return await _upstream_error(conversion, response)
    module = _converter_of(conversion)
    return await _whole(conversion, response, module.convert_model if model else module.convert_models)
