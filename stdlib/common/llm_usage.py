"""Token usage of LLM requests and responses, read as the bytes pass: nothing is held back.

Which API a client speaks is read from the request path: `.../messages` (and `count_tokens`) is
Anthropic's Messages API, anything else (`/chat/completions`, `/completions`, `/embeddings`) the
OpenAI API. The response is in the client's format (a converting service downstream converts
before the body reaches this layer).

Where usage is found (what the upstream bills):

- a JSON response: `usage.prompt_tokens` / `completion_tokens` (OpenAI), `usage.input_tokens` /
  `output_tokens` plus the cache's `cache_creation_input_tokens` / `cache_read_input_tokens`
  (Anthropic);
- an OpenAI stream: the last chunk, `"choices": []` with `usage`, sent when the request asked
  for it with `stream_options.include_usage` (the gateway adds that, see `prepare_body`, and
  takes the chunk out again when the client did not ask for it);
- an Anthropic stream: `message_start` carries the input tokens, `message_delta` the output
  tokens so far (cumulative: the last one counts).

`UsageMeter.wrap(body)` returns a body that yields every upstream chunk as it arrives, after
scanning it. It cuts SSE events at their blank line only to look into them (an event split
across chunks is looked at when its end arrives); the bytes themselves go out unchanged and at
once, except when the usage chunk is to be removed: then each chunk goes out up to the end of
its last complete event, which is the whole chunk whenever the upstream writes whole events.
A JSON body is copied (up to `max_json`) while it streams through and read when it ends.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from ...runtime.api import BodyStream, LlmExchange, Request, Response
from ..llm.sse import split_events

__all__ = [
    "ApiFormat",
    "LlmRequest",
    "Usage",
    "UsageMeter",
    "api_format",
    "meter_response",
    "prepare_body",
    "read_request",
    "request_of",
]

ApiFormat = Literal["openai", "anthropic"]

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
# The endpoints whose output is billed (chat, legacy completions, the Responses API, Messages).
_GENERATING = ("/completions", "/responses", "/messages")


def api_format(path: str) -> ApiFormat:
    """The API a client speaks, by the endpoint it calls: Anthropic's `/v1/messages` (and its
    `count_tokens`), else OpenAI's (chat completions, completions, embeddings, models)."""
    return "anthropic" if path.rstrip("/").endswith(("/messages", "/count_tokens")) else "openai"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """What metering needs from a request body (already parsed)."""

    format: ApiFormat
    model: str | None
    stream: bool
    client_wants_usage: bool  # an OpenAI stream whose client asked for the usage chunk
    estimate: Usage  # the prompt's size in tokens (estimated) and the most output allowed
    body: dict[str, Any] | None


def read_request(path: str, raw: bytes, *, bytes_per_token: float, default_max_tokens: int) -> LlmRequest:
    """Parse `raw` (a JSON object or empty) into what metering needs. Raises ValueError when not JSON.

    Only a body is billed: a GET (`/v1/models`) and Anthropic's free `count_tokens` estimate
    nothing, and only the generating endpoints reserve output (`max_tokens`, or
    `default_max_tokens`); embeddings bill their input only.
    """
    body: dict[str, Any] | None = None
    if raw.strip():
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("the request body must be a JSON object")
        body = parsed
    return request_of(path, body, raw, bytes_per_token=bytes_per_token, default_max_tokens=default_max_tokens)


def request_of(
    path: str,
    body: dict[str, Any] | None,
    raw: bytes,
    *,
    bytes_per_token: float | None,
    default_max_tokens: int = 0,
) -> LlmRequest:
    """What metering needs from an already parsed body (`raw`, its bytes). With `bytes_per_token`
    None nothing is to be reserved (a model_router reading usage only): the estimate stays 0."""
    fmt = api_format(path)
    data = body or {}
    model = data.get("model")
    stream = data.get("stream") is True
    options = data.get("stream_options")
    wants = isinstance(options, dict) and options.get("include_usage") is True
    estimate = Usage()
    endpoint = path.rstrip("/")
    if body is not None and bytes_per_token is not None and not endpoint.endswith("/count_tokens"):
        limit = data.get("max_completion_tokens")  # OpenAI's current name; null is "not sent"
        if limit is None:
            limit = data.get("max_tokens")
        output = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else None
        if output is None:
            output = default_max_tokens if endpoint.endswith(_GENERATING) else 0
        estimate = Usage(math.ceil(len(raw) / bytes_per_token), output)
    return LlmRequest(
        format=fmt,
        model=model if isinstance(model, str) else None,
        stream=stream,
        client_wants_usage=fmt == "openai" and stream and wants,
        estimate=estimate,
        body=body,
    )


def prepare_body(request: LlmRequest, raw: bytes) -> bytes:
    """The body to send upstream: an OpenAI stream is asked for its usage chunk."""
    if request.format != "openai" or not request.stream or request.client_wants_usage or request.body is None:
        return raw
    options = request.body.get("stream_options")
    merged = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return json.dumps({**request.body, "stream_options": merged}, separators=(",", ":")).encode()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_of(fmt: ApiFormat, usage: Any) -> Usage | None:
    """A usage object in `fmt`'s spelling, or None when it is not one."""
    if not isinstance(usage, dict):
        return None
    if fmt == "openai" and ("prompt_tokens" in usage or "completion_tokens" in usage):
        return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))
    if "input_tokens" in usage or "output_tokens" in usage:
        cached = _int(usage.get("cache_creation_input_tokens")) + _int(usage.get("cache_read_input_tokens"))
        return Usage(_int(usage.get("input_tokens")) + cached, _int(usage.get("output_tokens")))
    return None


class UsageMeter:
    """Reads usage from one response body as it streams (see the module docstring)."""

    def __init__(
        self,
        fmt: ApiFormat,
        *,
        strip_usage_chunk: bool,
        max_json: int = 8 << 20,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.format = fmt
        # `now()` when the first bytes went on to the client (for the time to first token).
        self.now = now
        self.first_at: float | None = None
        self.strip = strip_usage_chunk
        self.max_json = max_json
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._copy = bytearray()
        self._pending = b""

    @property
    def usage(self) -> Usage | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return Usage(self.input_tokens or 0, self.output_tokens or 0)

    def wrap(
        self, body: BodyStream, sse: bool, done: Callable[[BaseException | None], Awaitable[None]]
    ) -> BodyStream:
        """`body`, metered; `done(error)` runs once when it ends, fails or is closed early.

        `done` also runs when the body is closed by a cancellation: what it awaits, it shields.
        """
        return self._metered(body, sse, done)

    async def _metered(
        self, body: BodyStream, sse: bool, done: Callable[[BaseException | None], Awaitable[None]]
    ) -> AsyncGenerator[bytes, None]:
        feed, finish = (self._feed_sse, self._finish_sse) if sse else (self._feed_json, self._finish_json)
        error: BaseException | None = None
        try:
            async for chunk in body:
                out = feed(chunk)
                if out:
                    if self.first_at is None and self.now is not None:
                        self.first_at = self.now()
                    yield out
            tail = finish()
            if tail:
                yield tail
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                await body.aclose()
            finally:
                await done(error)  # runs even when cancelled: `done` shields what it awaits

    # A JSON body: every chunk goes on at once; a copy (up to max_json) is read at the end.

    def _feed_json(self, chunk: bytes) -> bytes:
        if len(self._copy) <= self.max_json:
            self._copy += chunk
        return chunk

    def _finish_json(self) -> bytes:
        if len(self._copy) <= self.max_json:
            try:
                payload = json.loads(self._copy)
            except ValueError:
                return b""
            found = usage_of(self.format, payload.get("usage")) if isinstance(payload, dict) else None
            if found is not None:
                self.input_tokens, self.output_tokens = found.input_tokens, found.output_tokens
        return b""

    # An SSE body: complete events are looked into; only a partial last event is kept between chunks.

    def _feed_sse(self, chunk: bytes) -> bytes:
        events, self._pending = split_events(self._pending + chunk if self._pending else chunk)
        kept = [event for event in events if self._event(event) or not self.strip]
        if not self.strip:
            return chunk
        return b"".join(kept)

    def _finish_sse(self) -> bytes:
        pending, self._pending = self._pending, b""
        if pending and self._event(pending) and self.strip:
            return pending  # an unterminated last event
        return b""

    def _event(self, event: bytes) -> bool:
        """Read usage from one SSE event; False when it is the usage chunk to remove."""
        if self.format == "openai":
            if _USAGE_OBJECT.search(event) is None:
                return True
            payload = _data(event)
            found = usage_of("openai", payload.get("usage")) if payload is not None else None
            if found is None:
                return True
            self.input_tokens, self.output_tokens = found.input_tokens, found.output_tokens
            return not (self.strip and _EMPTY_CHOICES.search(event) is not None)
        if b"message_start" in event or b"message_delta" in event:
            self._anthropic(_data(event))
        return True

    def _anthropic(self, payload: dict[str, Any] | None) -> None:
        if payload is None:
            return
        kind = payload.get("type")
        source = payload.get("message") if kind == "message_start" else payload
        found = usage_of("anthropic", source.get("usage")) if isinstance(source, dict) else None
        if found is None:
            return
        usage = source.get("usage") if isinstance(source, dict) else None
        assert isinstance(usage, dict)
        if kind == "message_start" or "input_tokens" in usage:
            self.input_tokens = found.input_tokens
        if "output_tokens" in usage:
            self.output_tokens = found.output_tokens


def meter_response(
    request: Request,
    response: Response,
    llm: LlmRequest,
    now: Callable[[], float],
    start: float,
    report: Callable[[LlmExchange], None],
    exchange: LlmExchange,
    settle: Callable[[Usage | None], Awaitable[None]] | None = None,
) -> None:
    """Read `response`'s usage as its body passes; when the body ends, put it in
    `request.state["llm_usage"]` (for the access log), `settle(usage)` and `report` `exchange`
    with the tokens and, for a stream, the token times. The one metering path: llm-keys calls it,
    and a model_router that no llm-keys metered.

    A body that is neither JSON nor SSE (audio, a file ...) holds no usage: `exchange` is reported
    at once, as it is. The usage chunk the gateway asked for (`prepare_body`) is removed here.
    """
    content_type = (response.headers.get("content-type") or "").lower()
    sse = content_type.startswith("text/event-stream")
    if not sse and "json" not in content_type:
        report(exchange)
        return
    strip = sse and llm.stream and llm.format == "openai" and not llm.client_wants_usage
    if strip:
        response.headers.remove("content-length")
    meter = UsageMeter(llm.format, strip_usage_chunk=strip, now=now if sse else None)

    async def done(error: BaseException | None) -> None:
        usage = meter.usage
        if usage is not None:
            request.state["llm_usage"] = usage
            exchange.input_tokens, exchange.output_tokens = usage.input_tokens, usage.output_tokens
        if settle is not None:
            await settle(usage)
        first = meter.first_at
        if first is not None:
            exchange.time_to_first_token = first - start
            if usage is not None and usage.output_tokens > 1 and error is None:
                # OpenTelemetry's time per output token: after the first, over the rest.
                exchange.time_per_output_token = (now() - first) / (usage.output_tokens - 1)
        report(exchange)

    response.body = meter.wrap(response.body, sse, done)


def _data(event: bytes) -> dict[str, Any] | None:
    """The JSON object of an event's `data:` lines, or None."""
    lines = [line[5:].lstrip() for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        payload = json.loads(b"\n".join(lines))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
