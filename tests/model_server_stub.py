"""A backend process that answers like a model server (vLLM, llama.cpp, TGI, or a generic JSON
health document) and moves through states on command.

    python model_server_stub.py --flavor vllm --port 8000 --name a [--state loading] [--model m]

It prints "ready" once listening. `POST /_state` with the body `loading`, `ready`, `busy` or
`error` moves it; any other path is traffic and answers `{"backend": name}`. The readiness
endpoints answer as each server does (the bodies are the servers' own; see
stdlib/health/agent.py): vLLM's `/health` and `/v1/models`, llama.cpp's `/health` (503 "Loading
model", 503 "no slot available" under `fail_on_no_slot`), TGI's `/health` and `/info`, and each
one's `/metrics` waiting-queue gauge (10 requests waiting when busy, else 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Answer = tuple[int, str, bytes]


def _json(status: int, doc: Any) -> Answer:
    return status, "application/json", json.dumps(doc).encode()


def _metrics(name: str, waiting: int, labels: str = "") -> Answer:
    text = f"# HELP {name} Waiting requests.\n# TYPE {name} gauge\n{name}{labels} {waiting}\n"
    return 200, "text/plain; version=0.0.4", text.encode()


class Server:
    def __init__(self, flavor: str, name: str, state: str, model: str) -> None:
        self.flavor, self.name, self.state, self.model = flavor, name, state, model

    @property
    def waiting(self) -> int:
        return 10 if self.state == "busy" else 0

    def answer(self, path: str, query: str) -> Answer | None:
        reader = getattr(self, "_" + self.flavor.replace(".", ""))
        answer: Answer | None = reader(path, query)
        return answer

    def _vllm(self, path: str, query: str) -> Answer | None:
        if path == "/health":
            return (500, "text/plain", b"") if self.state == "error" else (200, "text/plain", b"")
        if path == "/v1/models":
            data = [] if self.state == "loading" else [{"id": self.model, "object": "model"}]
            return _json(200, {"object": "list", "data": data})
        if path == "/metrics":
            return _metrics("vllm:num_requests_waiting", self.waiting, f'{{model_name="{self.model}"}}')
        return None

    def _llamacpp(self, path: str, query: str) -> Answer | None:
        if path == "/health":
            if self.state == "loading":
                return _json(
                    503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
                )
            if self.state == "busy" and "fail_on_no_slot=1" in query:
                return _json(503, {"status": "no slot available", "slots_idle": 0, "slots_processing": 4})
            if self.state == "error":
                return _json(
                    500, {"error": {"code": 500, "message": "Failed to load model", "type": "server_error"}}
                )
            return _json(200, {"status": "ok"})
        if path == "/metrics":
            return _metrics("llamacpp:requests_deferred", self.waiting)
        return None

    def _tgi(self, path: str, query: str) -> Answer | None:
        if path == "/health":
            if self.state == "error":
                return _json(503, {"error": "unhealthy", "error_type": "healthcheck"})
            return 200, "text/plain", b""
        if path == "/info":
            if self.state == "loading":
                return _json(503, {"error": "model is loading", "error_type": "loading"})
            return _json(200, {"model_id": self.model, "max_concurrent_requests": 128, "version": "2.4.0"})
        if path == "/metrics":
            return _metrics("tgi_queue_size", self.waiting)
        return None

    def _json(self, path: str, query: str) -> Answer | None:
        if path == "/health":
            status = {"loading": "loading", "ready": "ok", "busy": "ok", "error": "error"}[self.state]
            return _json(200, {"status": status, "queue": self.waiting})
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flavor", required=True, choices=["vllm", "llama.cpp", "tgi", "json"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state", default="ready", choices=["loading", "ready", "busy", "error"])
    parser.add_argument("--model", default="stub-model")
    args = parser.parse_args()
    server = Server(args.flavor, args.name, args.state, args.model)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *a: object) -> None:
            pass

        def _send(self, answer: Answer) -> None:
            status, content_type, body = answer
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            answer = server.answer(parts.path, parts.query)
            self._send(answer or _json(200, {"backend": server.name}))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/_state":
                server.state = body.decode().strip()
                self._send(_json(200, {"state": server.state}))
            else:
                self._send(_json(200, {"backend": server.name}))

    class Quiet(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a probe cut by its timeout, a client gone: nothing to report

    httpd = Quiet(("127.0.0.1", args.port), Handler)
    httpd.daemon_threads = True
    print("ready", flush=True)
    sys.stdout.close()
    httpd.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
