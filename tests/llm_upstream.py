"""A fake OpenAI + Anthropic upstream over real sockets, reporting usage the way the real APIs do.

    POST /v1/chat/completions   OpenAI: JSON, or SSE chunks when `stream`; the usage chunk
                                (`choices: []`) only when `stream_options.include_usage` is true
    POST /v1/messages           Anthropic: JSON, or the event sequence message_start (input
                                tokens) ... message_delta (output tokens) message_stop
    GET  /v1/models             a model list (no usage)

Requests are checked as the real APIs check them (a JSON object with a `model`; Anthropic
requires `max_tokens`) and answered 400 otherwise. The reply has `words` output tokens (the
request's max_tokens when smaller); the prompt costs `prompt_tokens`. Every request is recorded
(`seen`: method, path, headers, parsed body), so tests see what the gateway sent upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from .middlewares.http_peer import read_request


@dataclass
class FakeLlm:
    port: int = 0
    prompt_tokens: int = 10
    words: int = 5
    seen: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200  # answer this status (with an error body) instead of a completion
    delay: float = 0.0  # seconds between streamed events (so that concurrent streams overlap)
    gate: anyio.Event | None = None  # when set: the rest of a stream waits for it after event 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        buffer = b""
        try:
            async with stream:
                while True:
                    request, buffer = await read_request(stream, buffer)
                    headers = dict(request["headers"].items())
                    await self._answer(stream, request["method"], request["target"], headers, request["body"])
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _answer(
        self, stream: anyio.abc.ByteStream, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> None:
        body = json.loads(raw) if raw else None
        self.seen.append({"method": method, "path": path, "headers": headers, "body": body})
        if path == "/v1/models":
            return await _send_json(
                stream, 200, {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}
            )
        anthropic = path == "/v1/messages"
        problem = _problem(body, anthropic)
        if problem is not None or self.status != 200:
            status = 400 if problem is not None else self.status
            return await _send_json(stream, status, _error(anthropic, problem or "upstream says no"))
        assert isinstance(body, dict)
        words = min(self.words, body.get("max_tokens") or body.get("max_completion_tokens") or self.words)
        if anthropic:
            events = _anthropic_events(body, self.prompt_tokens, words)
        else:
            events = _openai_events(body, self.prompt_tokens, words)
        if not body.get("stream"):
            return await _send_json(stream, 200, events)
        await stream.send(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for n, event in enumerate(events):
            await stream.send(b"%x\r\n%s\r\n" % (len(event), event))
            if n == 0 and self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await anyio.sleep(self.delay)
        await stream.send(b"0\r\n\r\n")


def _problem(body: Any, anthropic: bool) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "the body must be a JSON object with a model"
    if anthropic and not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    return None


def _error(anthropic: bool, message: str) -> dict[str, Any]:
    if anthropic:
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


def _sse(data: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data)}\n\n".encode()


def _openai_events(body: dict[str, Any], prompt: int, words: int) -> Any:
    base = {"id": "chatcmpl-1", "created": 1, "model": body["model"]}
    usage = {"prompt_tokens": prompt, "completion_tokens": words, "total_tokens": prompt + words}
    text = " ".join(["word"] * words)
    if not body.get("stream"):
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
    wants = (body.get("stream_options") or {}).get("include_usage") is True
    chunk = {**base, "object": "chat.completion.chunk"}
    extra = {"usage": None} if wants else {}
    events = [
        _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], **extra})
    ]
    for _ in range(words):
        events.append(_sse({**chunk, "choices": [{"index": 0, "delta": {"content": "word "}}], **extra}))
    events.append(_sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra}))
    if wants:
        events.append(_sse({**chunk, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return events


def _anthropic_events(body: dict[str, Any], prompt: int, words: int) -> Any:
    text = " ".join(["word"] * words)
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"]}
    if not body.get("stream"):
        usage = {"input_tokens": prompt, "output_tokens": words}
        content = [{"type": "text", "text": text}]
        return {
            **message,
            "content": content,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": prompt, "output_tokens": 1}}  # fmt: skip
    events = [
        _sse({"type": "message_start", "message": start}, "message_start"),
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    for _ in range(words):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}
        events.append(_sse(delta, "content_block_delta"))
    events += [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": words},
            },
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return events


async def _send_json(stream: anyio.abc.ByteStream, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    await stream.send(head.encode() + data)


@asynccontextmanager
async def fake_llm(**options: Any) -> AsyncIterator[FakeLlm]:
    """A running FakeLlm on 127.0.0.1 (a free port)."""
    llm = FakeLlm(**options)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    llm.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, llm.handle)
        try:
            yield llm
        finally:
            tg.cancel_scope.cancel()


def gateway_hcl(
    port: int, upstream: str, keys: str, *, chain: tuple[str, ...] = ("keys",), extra: str = ""
) -> str:
    """A gateway on `port` routing everything to `upstream` through `chain`, whose `keys` is an
    `llm-keys` middleware with the options `keys`; `extra` adds blocks (an `api`, a `jwt` ...)."""
    names = ", ".join(f'"{name}"' for name in chain)
    return f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
services "llm" {{
  load_balancer {{
    servers = [{{ url = "{upstream}" }}]
  }}
}}
routers "llm" {{
  rule        = "PathPrefix(`/`)"
  service     = "llm"
  middlewares = [{names}]
}}
middlewares "keys" {{
  type = "llm-keys"
{keys}
}}
{extra}
"""
