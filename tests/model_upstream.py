"""A fake OpenAI-compatible upstream for the model router's tests: real sockets, h11, scripted.

Each instance answers `POST .../chat/completions` (and anything else) according to `mode`:

  ok           a chat completion naming this upstream and the model it was asked for; with
               `"stream": true` in the request, the same as SSE chunks ending in `[DONE]`
  status       `status` with an OpenAI error body (and `retry_after`, when set, as Retry-After)
  stall        read the request, never answer (a timeout before the response head)
  stall_body   send a 200 SSE head, then nothing (a timeout before the first body byte)
  cut          stream one SSE chunk, then close the connection (a stream cut after its start)

Every request is recorded (`seen`: path, headers, exact body bytes).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import h11

from .backends import _next


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LlmUpstream:
    name: str
    mode: str = "ok"
    status: int = 500
    retry_after: str | None = None
    port: int = 0
    seen: list[Call] = field(default_factory=list)
    # Connections this upstream saw closed while it stalled (the gateway gave up on it).
    abandoned: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        await listener.serve(self._connection)

    async def _connection(self, stream: anyio.abc.ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            async with stream:
                while await self._one(conn, stream):
                    conn.start_next_cycle()

    async def _one(self, conn: h11.Connection, stream: anyio.abc.ByteStream) -> bool:
        request = await _next(conn, stream)
        if not isinstance(request, h11.Request):
            return False
        body = b""
        while isinstance(event := await _next(conn, stream), h11.Data):
            body += event.data
        headers = {k.decode(): v.decode() for k, v in request.headers}
        self.seen.append(Call(request.target.decode(), headers, body))
        send = _Sender(conn, stream)
        if self.mode == "status":
            extra = [("retry-after", self.retry_after)] if self.retry_after is not None else []
            error = {
                "error": {
                    "message": f"{self.name} says {self.status}",
                    "type": "x",
                    "param": None,
                    "code": None,
                }
            }
            await send.json(self.status, error, extra)
        elif self.mode in ("stall", "stall_body"):
            if self.mode == "stall_body":
                await send.head(
                    200, [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")]
                )
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()  # returns when the gateway gives up and closes
            self.abandoned += 1
            return False
        else:
            await self._complete(send, json.loads(body) if body else {})
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _complete(self, send: _Sender, request: dict[str, Any]) -> None:
        model = request.get("model")
        text = f"from {self.name}"
        if not request.get("stream") and self.mode != "cut":
            message = {"role": "assistant", "content": text}
            completion = {
                "id": f"chatcmpl-{self.name}",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
            await send.json(200, completion)
            return
        await send.head(200, [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")])
        for piece in ("from ", self.name):
            chunk = {
                "id": f"chatcmpl-{self.name}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            await send.data(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if self.mode == "cut":
                await send.stream.aclose()  # mid-stream: no terminating chunk
                return
        await send.data(b"data: [DONE]\n\n")
        await send.end()


@dataclass
class _Sender:
    conn: h11.Connection
    stream: anyio.abc.ByteStream

    async def head(self, status: int, headers: list[tuple[str, str]]) -> None:
        await self.stream.send(self.conn.send(h11.Response(status_code=status, headers=headers)) or b"")

    async def data(self, data: bytes) -> None:
        await self.stream.send(self.conn.send(h11.Data(data=data)) or b"")

    async def end(self) -> None:
        await self.stream.send(self.conn.send(h11.EndOfMessage()) or b"")

    async def json(self, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> None:
        data = json.dumps(payload).encode()
        head = [("content-type", "application/json"), ("content-length", str(len(data))), *(headers or [])]
        await self.head(status, head)
        await self.data(data)
        await self.end()


@asynccontextmanager
async def llm_upstreams(*names: str) -> AsyncIterator[dict[str, LlmUpstream]]:
    """Fake upstreams by name, serving until the block ends."""
    upstreams = {name: LlmUpstream(name) for name in names}
    async with anyio.create_task_group() as tg:
        for upstream in upstreams.values():
            await tg.start(upstream._serve)
        yield upstreams
        tg.cancel_scope.cancel()
