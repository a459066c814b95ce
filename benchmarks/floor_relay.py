"""The floor of a Python reverse proxy: the least a relay on uvloop and llhttp can cost.

    .venv/bin/python benchmarks/floor_relay.py --mode http|tcp --listen 127.0.0.1:9600 \\
        --backend http://127.0.0.1:9501

Issue 17 asks for CPU per proxied request <= 70 µs and >= 0.25x nginx's small requests/s. This
is not a gateway; it measures what any HTTP/1.1 proxy written in Python pays before it has a
single feature, on the same machine and in the same run as a3s-gateway and nginx
(`benchmarks/cpucost.py`), so that a target can be told apart from the language's floor:

- `tcp`: bytes copied from each client connection to its own upstream connection and back,
  with asyncio protocols on uvloop (C), no parsing: the floor of any byte relay in Python.
- `http`: the same, plus what an HTTP proxy cannot skip: each request and response parsed by
  llhttp (httptools, the parser a3s-gateway's fast path uses), the request head rebuilt with
  the hop-by-hop fields removed and the response head rebuilt the same way, bodies passed on as
  they arrive (Content-Length or chunked, re-chunked). No routing, no middleware, no pool
  shared between clients (each client connection has its own upstream connection, the cheapest
  arrangement for a keep-alive benchmark), no timeouts, no error pages: a floor, not a proxy
  anyone should run. Callbacks only: no coroutine, no task per request.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import urlsplit

import httptools

HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
                 b"transfer-encoding"})  # fmt: skip


class Side(asyncio.Protocol):
    """One side of a relay (a client connection, or its upstream connection): what it receives
    is written to its peer, held until the peer's connection is made."""

    def __init__(self) -> None:
        self.peer: Side | None = None
        self.transport: Any = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.pending:
            transport.write(b"".join(self.pending))
            self.pending.clear()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def send(self, data: bytes) -> None:
        """Write `data` to the peer."""
        peer = self.peer
        assert peer is not None
        if peer.transport is None:
            peer.pending.append(data)
        else:
            peer.transport.write(data)


class Splice(Side):
    """A byte relay's side: no parsing."""

    def data_received(self, data: bytes) -> None:
        self.send(data)


class HttpSide(Side):
    """An HTTP relay's side: parses what it receives (requests from a client, responses from
    the upstream) and writes the rebuilt messages to its peer."""

    def __init__(self, request_side: bool) -> None:
        super().__init__()
        self.request_side = request_side
        parser = httptools.HttpRequestParser if request_side else httptools.HttpResponseParser
        self.parser: Any = parser(self)
        self.fields: list[bytes] = []
        self.url = b""
        self.chunked = False

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    # --- llhttp's callbacks
    def on_message_begin(self) -> None:
        self.fields = []
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append(name)
        self.fields.append(value)

    def on_headers_complete(self) -> None:
        parser, fields = self.parser, self.fields
        if self.request_side:
            line = b"%s %s HTTP/1.1\r\n" % (parser.get_method(), self.url)
        else:
            line = b"HTTP/1.1 %d OK\r\n" % parser.get_status_code()
        out = [line]
        chunked = False
        for i in range(0, len(fields), 2):
            name = fields[i]
            lowered = name.lower()
            if lowered in HOP:
                if lowered == b"transfer-encoding":
                    chunked = True
                continue
            out.append(b"%s: %s\r\n" % (name, fields[i + 1]))
        if chunked:
            out.append(b"transfer-encoding: chunked\r\n")
        out.append(b"\r\n")
        self.chunked = chunked
        self.send(b"".join(out))

    def on_body(self, body: bytes) -> None:
        self.send(b"%x\r\n%s\r\n" % (len(body), body) if self.chunked else body)

    def on_message_complete(self) -> None:
        if self.chunked:
            self.send(b"0\r\n\r\n")


async def serve(mode: str, listen: str, backend: str) -> None:
    loop = asyncio.get_running_loop()
    host, _, port = listen.rpartition(":")
    upstream = urlsplit(backend)
    up_host, up_port = upstream.hostname or "127.0.0.1", upstream.port or 80

    def accept() -> asyncio.Protocol:
        # Each client connection gets its own upstream connection, opened as it is accepted.
        client, server = (Splice(), Splice()) if mode == "tcp" else (HttpSide(True), HttpSide(False))
        client.peer, server.peer = server, client
        task = loop.create_task(loop.create_connection(lambda: server, up_host, up_port))
        connecting.add(task)  # (the loop keeps only a weak reference to a task)
        task.add_done_callback(lambda t: connected(t, client))
        return client

    def connected(task: asyncio.Task[Any], client: Any) -> None:
        connecting.discard(task)
        if (task.cancelled() or task.exception() is not None) and client.transport is not None:
            client.transport.close()  # no upstream: the client's connection is closed, not left hanging

    connecting: set[asyncio.Task[Any]] = set()

    srv = await loop.create_server(accept, host, int(port), backlog=4096, reuse_address=True)
    async with srv:
        await srv.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("http", "tcp"), default="http")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--backend", required=True)
    args = ap.parse_args()
    import uvloop

    uvloop.run(serve(args.mode, args.listen, args.backend))


if __name__ == "__main__":
    main()
