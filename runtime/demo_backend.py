"""A built-in demo backend that speaks the OpenAI chat completions API and Anthropic's Messages API.

    a3s-gateway demo-backend --port 9000 --token-delay 0.05

or, from configuration, a server URL `demo://<name>` (optionally `demo://llm?token_delay=0.01`),
which the gateway starts in-process on 127.0.0.1 with an ephemeral port.

Endpoints: `POST /v1/chat/completions` (a JSON completion, or with `"stream": true` Server-Sent
Events: one `chat.completion.chunk` per token, `token_delay` seconds apart, then `data: [DONE]`),
`POST /v1/messages` (Anthropic's format: a `message`, or with `"stream": true` its event
sequence, `message_start` ... `message_stop`, one `text_delta` per token; `max_tokens` is
required, as Anthropic requires it), `POST /v1/messages/count_tokens`, `GET /v1/models` (in
Anthropic's shape when the request carries `anthropic-version`) and `GET /health`. The reply echoes the last user message, so a test can tell
which request a stream belongs to. Each SSE event is written with its own send on a TCP_NODELAY
socket: nothing is buffered, which is what the gateway's streaming tests rely on.

With `prefix_cache=<blocks>` (and `prefill_delay=<seconds per block>`) each demo replica
simulates a model server's prefix cache (runtime/demo_prefix_cache.py): the first token of a
chat or messages reply waits for the prefill of the prompt's blocks that are not cached, and the
response says how much was, in `x-demo-prefix-cache: <cached blocks>/<prompt blocks>`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from .demo_prefix_cache import PrefixCacheSim, render_prompt
from .events import Body, ConnectionClosed, EndOfBody, Event, RequestHead, Reset, ResponseHead
from .protocols.http1 import ProtocolError, ServerConnection, render_response

__all__ = ["DemoBackend", "DemoOptions", "main_command", "options_from_url"]

_log = logging.getLogger("a3s_gateway.demo")
MAX_BODY = 1024 * 1024


DEFAULT_TOKEN_DELAY, DEFAULT_MODEL = 0.02, "a3s-demo"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    token_delay: float = DEFAULT_TOKEN_DELAY
    model: str = DEFAULT_MODEL
    # Tokens in a reply when the request does not set max_tokens (None: the echo and a sentence).
    reply_tokens: int | None = None
    # A simulated prefix cache of this many blocks (0: none), and the prefill time of a block
    # that is not cached (see runtime/demo_prefix_cache.py).
    prefix_cache: int = 0
    prefill_delay: float = 0.0
    # Answer chat completions as a router model (`router_reply`): the name of one candidate.
    router: bool = False


def options_from_url(url: str) -> DemoOptions:
    """`demo://llm?token_delay=0.01&model=m&reply_tokens=8&prefix_cache=4096&prefill_delay=0.001`,
    or `...&router=1` -> DemoOptions."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return DemoOptions(
        token_delay=float(query.get("token_delay", DEFAULT_TOKEN_DELAY)),
        model=query.get("model", parts.hostname or DEFAULT_MODEL),
        reply_tokens=int(query["reply_tokens"]) if "reply_tokens" in query else None,
        prefix_cache=int(query.get("prefix_cache", 0)),
        prefill_delay=float(query.get("prefill_delay", 0.0)),
        router=query.get("router", "") in ("1", "true"),
    )


# --------------------------------------------------------------------------- the API


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _after(delay: float, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    await anyio.sleep(delay)
    async for chunk in body:
        yield chunk


def _json(status: int, payload: Any) -> Reply:
    data = json.dumps(payload).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
    return Reply(status, headers, _once(data))


def _error(status: int, message: str) -> Reply:
    return _json(status, {"error": {"message": message, "type": "invalid_request_error"}})


def _anthropic_error(status: int, message: str) -> Reply:
    return _json(status, {"type": "error", "error": {"type": "invalid_request_error", "message": message}})


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


_FILLER = [
    "This",
    "is",
    "the",
    "a3s-gateway",
    "demo",
    "backend,",
    "streaming",
    "its",
    "answer",
    "token",
    "by",
    "token.",
]


def reply_tokens(text: str, count: int | None) -> list[str]:
    """The demo reply: an echo of the prompt and a sentence, cut or padded to `count` tokens."""
    words = ["You", "said:", *text.split()] if text else ["Hello!"]
    if count is None:
        words += _FILLER
    else:
        while len(words) < count:
            words += _FILLER
        words = words[: max(count, 1)]
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


class DemoApi:
    """Request -> reply, independent of sockets."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.prefix_cache = PrefixCacheSim(options.prefix_cache) if options.prefix_cache else None

    def handle(self, method: str, path: str, body: bytes, anthropic: bool = False) -> Reply:
        """`anthropic`: the request carries `anthropic-version` (an Anthropic client)."""
        path = path.split("?", 1)[0]
        if path == "/health":
            return _json(200, {"status": "ok"})
        if path == "/v1/models" and method == "GET":
            if anthropic:
                info = {"type": "model", "id": self.options.model, "display_name": self.options.model}
                page = {"data": [{**info, "created_at": "2025-01-01T00:00:00Z"}], "has_more": False}
                return _json(200, {**page, "first_id": self.options.model, "last_id": self.options.model})
            model = {"id": self.options.model, "object": "model", "created": 0, "owned_by": "a3s-gateway"}
            return _json(200, {"object": "list", "data": [model]})
        if path in ("/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"):
            if method != "POST":
                return _error(405, "use POST")
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                return _error(400, "the body is not JSON")
            if not isinstance(request, dict):
                return _error(400, "the body must be a JSON object")
            if path == "/v1/chat/completions":
                return self._prefill(request, self._chat(request))
            if path == "/v1/messages":
                return self._prefill(request, self._messages(request))
            return _json(200, {"input_tokens": 8})
        return _error(404, f"no such endpoint: {method} {path}")

    def _prefill(self, request: dict[str, Any], reply: Reply) -> Reply:
        """With a simulated prefix cache: the reply starts after the uncached blocks' prefill."""
        if self.prefix_cache is None or reply.status != 200:
            return reply
        hits, blocks = self.prefix_cache.admit(render_prompt(request))
        reply.headers.append(("x-demo-prefix-cache", f"{hits}/{blocks}"))
        reply.body = _after((blocks - hits) * self.options.prefill_delay, reply.body)
        return reply

    def _chat(self, request: dict[str, Any]) -> Reply:
        if self.options.router:
            return router_reply(request)
        count = request.get("max_tokens") or request.get("max_completion_tokens") or self.options.reply_tokens
        tokens = reply_tokens(_last_user_text(request.get("messages")), int(count) if count else None)
        model = str(request.get("model") or self.options.model)
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if request.get("stream"):
            headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
            options = request.get("stream_options")
            with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return Reply(200, headers, self._stream(ident, model, tokens, with_usage))
        usage = {"prompt_tokens": 8, "completion_tokens": len(tokens), "total_tokens": 8 + len(tokens)}
        message = {"role": "assistant", "content": "".join(tokens)}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        completion = {"id": ident, "object": "chat.completion", "created": int(time.time())}
        return _json(200, {**completion, "model": model, "choices": [choice], "usage": usage})

    async def _stream(self, ident: str, model: str, tokens: list[str], usage: bool) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            doc = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
            return b"data: " + json.dumps({**doc, "choices": [choice]}).encode() + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for token in tokens:
            await anyio.sleep(self.options.token_delay)
            yield chunk({"content": token})
        yield chunk({}, "stop")
        if usage:  # stream_options.include_usage: a last chunk with no choices and the usage
            counts = {"prompt_tokens": 8, "completion_tokens": len(tokens), "total_tokens": 8 + len(tokens)}
            doc = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
            yield b"data: " + json.dumps({**doc, "choices": [], "usage": counts}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    def _messages(self, request: dict[str, Any]) -> Reply:
        count = request.get("max_tokens")
        if not isinstance(count, int) or count < 1:
            return _anthropic_error(400, "max_tokens: Field required")
        # max_tokens is a cap here, as in Anthropic's API: a reply cut by it stops with `max_tokens`.
        tokens = reply_tokens(_last_user_text(request.get("messages")), self.options.reply_tokens)
        stop = "max_tokens" if len(tokens) > count else "end_turn"
        tokens = tokens[:count]
        model = str(request.get("model") or self.options.model)
        ident = f"msg_{uuid.uuid4().hex[:24]}"
        if request.get("stream"):
            headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
            return Reply(200, headers, self._message_events(ident, model, tokens, stop))
        message = {"id": ident, "type": "message", "role": "assistant", "model": model}
        content = [{"type": "text", "text": "".join(tokens)}]
        usage = {"input_tokens": 8, "output_tokens": len(tokens)}
        return _json(
            200, {**message, "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}
        )

    async def _message_events(
        self, ident: str, model: str, tokens: list[str], stop: str
    ) -> AsyncIterator[bytes]:
        message = {"id": ident, "type": "message", "role": "assistant", "model": model, "content": []}
        usage = {"input_tokens": 8, "output_tokens": 1}
        start = {**message, "stop_reason": None, "stop_sequence": None, "usage": usage}
        yield _sse("message_start", {"type": "message_start", "message": start})
        block = {"type": "text", "text": ""}
        yield _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
        yield _sse("ping", {"type": "ping"})
        for token in tokens:
            await anyio.sleep(self.options.token_delay)
            delta = {"type": "text_delta", "text": token}
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        end = {"stop_reason": stop, "stop_sequence": None}
        yield _sse(
            "message_delta", {"type": "message_delta", "delta": end, "usage": {"output_tokens": len(tokens)}}
        )
        yield _sse("message_stop", {"type": "message_stop"})


# --------------------------------------------------------------------------- a router model

_CANDIDATE = re.compile(r"^- ([A-Za-z0-9_.-]+): (.*)$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]{3,}")
ROUTER_SLOW = 2.0  # seconds a `#slow` request waits for its answer


def router_reply(request: dict[str, Any]) -> Reply:
    """Answer as a router model (`kairos`, stdlib/services/kairos.py): the system message lists
    candidates as `- name: description` lines; the answer is the name of the one whose words the
    user's text shares most (the first on a tie). For tests, a user text with `#slow` is answered
    after ROUTER_SLOW seconds, and one with `#babble` gets a sentence instead of a name."""
    messages = request.get("messages")
    messages = messages if isinstance(messages, list) else []
    system = " ".join(
        str(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "system"
    )
    text = _last_user_text(messages)
    words = set(_WORD.findall(text.lower()))
    candidates = _CANDIDATE.findall(system)
    scores = [len(words & set(_WORD.findall(f"{name} {about}".lower()))) for name, about in candidates]
    answer = candidates[scores.index(max(scores))][0] if candidates else "none"
    if "#babble" in text:
        answer = f"I would probably send this to {answer}, but it depends."
    message = {"role": "assistant", "content": answer}
    choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
    completion = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": 0}
    usage = {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}
    data = json.dumps({**completion, "model": request.get("model"), "choices": [choice], "usage": usage})
    headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
    return Reply(200, headers, _later(ROUTER_SLOW if "#slow" in text else 0.0, data.encode()))


async def _later(delay: float, data: bytes) -> AsyncIterator[bytes]:
    if delay:
        await anyio.sleep(delay)
    yield data


# --------------------------------------------------------------------------- the server


class DemoBackend:
    """The demo API served on a TCP listener: `await tg.start(backend.serve)` returns the port."""

    def __init__(self, options: DemoOptions | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = DemoApi(options or DemoOptions())
        self.host = host
        self.port = port
        self._scope: anyio.CancelScope | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        self.port = int(listener.extra(SocketAttribute.local_port))
        with anyio.CancelScope() as self._scope:
            async with listener:
                task_status.started(self.port)
                await listener.serve(self._connection)

    def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self) -> None:
        self.stop()

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        sock = stream.extra(SocketAttribute.raw_socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        async with stream:
            try:
                await _Exchange(stream, self.api).run()
            except ProtocolError as exc:
                head = ResponseHead(1, exc.status, [(b"content-type", b"text/plain")])
                await stream.send(render_response(head, exc.message.encode()))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass


class _Exchange:
    """The requests of one connection, answered in turn (keep-alive)."""

    def __init__(self, stream: anyio.abc.SocketStream, api: DemoApi) -> None:
        self.stream = stream
        self.api = api
        self.conn = ServerConnection()
        self.pending: deque[Event] = deque()

    async def next_event(self) -> Event:
        while not self.pending:
            try:
                data = await self.stream.receive(65536)
            except anyio.EndOfStream:
                data = b""
            self.pending.extend(self.conn.receive_data(data))
            if not data and not self.pending:
                return ConnectionClosed()
        return self.pending.popleft()

    async def run(self) -> None:
        while True:
            head = await self.next_event()
            if not isinstance(head, RequestHead):
                return
            body = await self.read_body()
            if body is None:
                return
            anthropic = any(name == b"anthropic-version" for name, _ in head.headers)
            reply = self.api.handle(head.method.decode(), head.target.decode("latin-1"), body, anthropic)
            await self.write(reply)
            if not self.conn.can_reuse:
                return
            self.pending.extend(self.conn.start_next_cycle())

    async def read_body(self) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            event = await self.next_event()
            if isinstance(event, Body):
                size += len(event.data)
                if size > MAX_BODY:
                    raise ProtocolError(413, "request body too large")
                parts.append(event.data)
            elif isinstance(event, EndOfBody):
                return b"".join(parts)
            elif isinstance(event, ConnectionClosed | Reset):
                return None

    async def write(self, reply: Reply) -> None:
        headers = [(k.encode(), v.encode()) for k, v in reply.headers]
        await self.stream.send(self.conn.send(ResponseHead(1, reply.status, headers)))
        try:
            async for data in reply.body:
                # One send per chunk: an SSE event leaves as soon as it is produced.
                await self.stream.send(self.conn.send(Body(1, data)))
        finally:
            await reply.body.aclose()  # type: ignore[attr-defined]
        await self.stream.send(self.conn.send(EndOfBody(1)))


# --------------------------------------------------------------------------- CLI


def main_command(args: argparse.Namespace) -> int:
    """`a3s-gateway demo-backend --port N [--host H] [--token-delay SECONDS]`."""
    from .gateway import run_async

    options = DemoOptions(token_delay=float(getattr(args, "token_delay", None) or DEFAULT_TOKEN_DELAY))
    backend = DemoBackend(options, host=getattr(args, "host", None) or "127.0.0.1", port=int(args.port))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(backend.serve)
            print(f"demo backend listening on {backend.url}", flush=True)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

    return run_async(main, getattr(args, "backend", None) or "asyncio")
