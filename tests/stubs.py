"""Small test helpers shared across test files: a free port, polling, and a JSON HTTP stub server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
from hyperframe.frame import Frame


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are picked, so two calls
    of free_port() in a row cannot hand out the same port twice."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


# route(method, path, lower-cased headers, body) -> (status, JSON payload)
Route = Callable[[str, str, dict[str, str], bytes], tuple[int, Any]]


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port that refuses connections for as long as the context lasts: bound, never listening,
    so no other test can take it (a port from free_port() may be taken by the time it is used)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


async def eventually(cond: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll `cond` until it holds; fail after `timeout` (a generous bound, never a measurement)."""
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(interval)


@contextmanager
def json_stub(route: Route) -> Iterator[str]:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering JSON from `route`; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = route(self.command, self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def h2_frames(data: bytes) -> list[Frame]:
    """The whole HTTP/2 frames in `data`, parsed (a trailing partial frame is left out)."""
    out, i = [], 0
    while i + 9 <= len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[i : i + 9]))
        frame.parse_body(memoryview(data[i + 9 : i + 9 + length]))
        out.append(frame)
        i += 9 + length
    return out
