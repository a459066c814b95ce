"""A fake Docker Engine on a unix socket, answering in the recorded API shapes (tests/docker_shapes.py).

There is no Docker engine on these machines, so the docker provider is tested against this one.
It serves what the provider calls, as the engine does (API v1.43, paths with or without the
`/v1.43` prefix):

- `GET /_ping` -> `OK`; `GET /version` -> the engine's version document;
- `GET /containers/json` -> the running containers' summaries;
- `GET /containers/{id}/json` -> the inspect document (404 with {"message": ...} when gone);
- `GET /events?filters=...` -> a chunked stream of JSON event lines, as they happen.

`run`, `stop_container` and `set_health` change the containers and emit the engine's events
(`start`; `die`, `stop`; `health_status: healthy`); `drop_events()` cuts the open event streams;
`stop()` and `start()` take the engine down and up again on the same socket path.
"""

from __future__ import annotations

import json
import os
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .docker_shapes import event, summary
from .fake_server import FakeState

__all__ = ["FakeDockerEngine", "fake_docker_engine"]

VERSION = {
    "Platform": {"Name": "Docker Engine - Community"}, "Version": "24.0.7", "ApiVersion": "1.43",
    "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64", "KernelVersion": "6.1.0",
}  # fmt: skip


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeDockerEngine(FakeState):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.containers: dict[str, dict[str, Any]] = {}  # id -> inspect document
        self.events: list[dict[str, Any]] = []
        self._server: _Server | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def run(self, info: dict[str, Any]) -> None:
        with self.lock:
            self.containers[info["Id"]] = info
            self.events.append(event("start", info))
            self.lock.notify_all()

    def stop_container(self, info: dict[str, Any]) -> None:
        with self.lock:
            stored = self.containers.pop(info["Id"])
            self.events += [event("die", stored), event("stop", stored)]
            self.lock.notify_all()

    def set_health(self, info: dict[str, Any], status: str) -> None:
        with self.lock:
            stored = self.containers[info["Id"]]
            stored["State"]["Health"] = {"Status": status, "FailingStreak": 0, "Log": []}
            self.events.append(event(f"health_status: {status}", stored))
            self.lock.notify_all()

    def emit(self, action: str, info: dict[str, Any]) -> None:
        """An event that changes nothing stored (`exec_start: ...` of a health check run)."""
        with self.lock:
            self.events.append(event(action, self.containers[info["Id"]]))
            self.lock.notify_all()

    def drop_events(self) -> None:
        self.cut_streams()

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            engine = fake

        if self.path.exists():
            os.unlink(self.path)
        self._server = _Server(str(self.path), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.drop_events()
        if self.path.exists():
            os.unlink(self.path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: FakeDockerEngine

    def log_message(self, format: str, *args: object) -> None:
        pass

    def address_string(self) -> str:  # a unix socket has no peer address
        return "unix"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/v1."):
            path = "/" + path.split("/", 2)[2]
        engine = self.engine
        engine.seen(f"GET {path}")
        if path == "/_ping":
            return self._send(200, b"OK", "text/plain; charset=utf-8")
        if path == "/version":
            return self._json(200, VERSION)
        if path == "/containers/json":
            with engine.lock:
                items = [summary(c) for c in engine.containers.values() if c["State"]["Running"]]
            return self._json(200, items)
        if path.startswith("/containers/") and path.endswith("/json"):
            with engine.lock:
                info = engine.containers.get(path.split("/")[2])
            if info is None:
                return self._json(404, {"message": f"No such container: {path.split('/')[2]}"})
            return self._json(200, info)
        if path == "/events":
            return self._events()
        return self._json(404, {"message": "page not found"})

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("api-version", "1.43")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode() + b"\n", "application/json")

    def _events(self) -> None:
        engine = self.engine
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("api-version", "1.43")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        with engine.lock:
            sent, generation = len(engine.events), engine.generation
        while True:
            with engine.lock:
                while len(engine.events) == sent and engine.generation == generation:
                    engine.lock.wait(0.1)
                if engine.generation != generation:
                    self.close_connection = True
                    return
                pending, sent = engine.events[sent:], len(engine.events)
            for item in pending:
                data = json.dumps(item).encode() + b"\n"
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                except OSError:
                    return


@contextmanager
def fake_docker_engine(directory: Path) -> Iterator[FakeDockerEngine]:
    engine = FakeDockerEngine(directory / "docker.sock")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
