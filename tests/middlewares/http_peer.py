"""A small real HTTP/1.1 peer for middleware tests (auth services, JWKS endpoints, echo backends).

Keep-alive, Content-Length bodies; every request is recorded as a dict with `method`, `target`,
`headers` (api.Headers) and `body`, and answered by `answer(request) -> (status, headers, body)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

from a3s_gateway.runtime.api import Headers

PeerRequest = dict[str, Any]
Reply = tuple[int, list[tuple[str, str]], bytes]


async def read_request(stream: anyio.abc.ByteStream, buffer: bytes) -> tuple[PeerRequest, bytes]:
    """The next request on `stream` (Content-Length body), and the bytes read past it."""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive()
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    line, *fields = head.decode("latin-1").split("\r\n")
    method, target, _ = line.split(" ", 2)
    pairs = (field.partition(":") for field in fields)
    headers = Headers.from_pairs((name.strip(), value.strip()) for name, _, value in pairs)
    length = int(headers.get("content-length") or 0)
    while len(buffer) < length:
        buffer += await stream.receive()
    body, buffer = buffer[:length], buffer[length:]
    return {"method": method, "target": target, "headers": headers, "body": body}, buffer


@asynccontextmanager
async def http_peer(
    answer: Callable[[PeerRequest], Awaitable[Reply]],
) -> AsyncIterator[tuple[int, list[PeerRequest]]]:
    """Serve on 127.0.0.1; yields (port, the requests seen so far)."""
    seen: list[PeerRequest] = []
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def connection(stream: anyio.abc.ByteStream) -> None:
        buffer = b""
        try:
            async with stream:
                while True:
                    request, buffer = await read_request(stream, buffer)
                    seen.append(request)
                    status, out, reply = await answer(request)
                    lines = [
                        f"HTTP/1.1 {status} X",
                        f"content-length: {len(reply)}",
                        *(f"{k}: {v}" for k, v in out),
                    ]
                    await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode() + reply)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, connection)
        yield port, seen
        tg.cancel_scope.cancel()
