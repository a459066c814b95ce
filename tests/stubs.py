"""Small test helpers shared across test files: a free port, polling, and a JSON HTTP stub server."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
from hyperframe.frame import Frame

# Ports for servers the tests start come from below the kernel's ephemeral range (32768-60999 by
# default), each pytest-xdist worker from its own slice, handed out in turn. A port that bind(0)
# returned lies in the ephemeral range: by the time a test listened on it, one of the thousands of
# client connections the other tests open could have taken it as its source port ("Address
# already in use", seen a few times a day under load).
_FIRST, _LAST = 12000, 31999


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = (_LAST - _FIRST + 1) // max(count, 1)
    return range(_FIRST + index * size, _FIRST + (index + 1) * size)


_PORTS = _slice()
_next = random.randrange(len(_PORTS))  # each run starts elsewhere: no port freshly in TIME_WAIT


def _bindable(port: int, kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(kind: int = socket.SOCK_STREAM) -> int:
    """The next port of this worker's slice that nothing is bound to (TCP, or UDP with
    kind=SOCK_DGRAM); never the same port twice until the slice wraps around."""
    global _next
    for _ in range(len(_PORTS)):
        port = _PORTS[_next % len(_PORTS)]
        _next += 1
        if _bindable(port, kind):
            return port
    raise RuntimeError("no free port left in this worker's slice")


def ports_in_a_row(count: int, hosts: tuple[str, ...] = ("127.0.0.1",)) -> int:
    """The first of `count` consecutive TCP ports of this worker's slice that nothing is bound
    to on any of `hosts` (a relayed range, the same ports on two loopback addresses)."""
    global _next
    for _ in range(len(_PORTS)):
        start = _next % len(_PORTS)
        _next = start + count
        if start + count > len(_PORTS):
            continue  # a row does not wrap around the slice's end
        first = _PORTS[start]
        if all(_bindable(first + i, host=host) for i in range(count) for host in hosts):
            return first
    raise RuntimeError(f"no {count} free ports in a row left in this worker's slice")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (see pick_port)."""
    return pick_port()


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (see pick_port: it never hands out a port twice in a row)."""
    return [pick_port() for _ in range(count)]


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


class Children:
    """Child processes by name, each printing "ready" once it listens; `close()` kills the rest."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs[name] = proc
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", f"{name} did not start"

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)
