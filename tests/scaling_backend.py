"""A tiny model-server stand-in for the scaling tests: slow to become ready, optionally flaky.

    python tests/scaling_backend.py --port 8001 --delay 2 [--early-bind] [--error-every 20]
                                    [--ignore-sigterm] [--latency 0.01] [--name v2] [--backlog 1]

* `--delay`: seconds of "model loading". Without `--early-bind` nothing listens until then
  (connection refused); with it, the port is open and /health answers 503 while loading.
* `GET /health`: 200 once loaded.
* `GET /sse`: a text/event-stream of `--events` events `{"i", "n", "name"}`, `--event-gap` apart.
* anything else: 200 with JSON {"name", "port", "pid", "path", "method", "body_bytes", "n"};
  with `--error-every N` every N-th request answers 500 instead.
* `--ignore-sigterm`: keep running on SIGTERM (to test the SIGKILL after stop_grace).
* `--backlog`: the listen backlog (512). A small one fills up while the process is stopped
  (SIGSTOP), and then a connect to it hangs: a replica that dies while a request connects.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--early-bind", action="store_true")
    parser.add_argument("--error-every", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--events", type=int, default=3)
    parser.add_argument("--event-gap", type=float, default=0.05)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--name", default="backend")
    parser.add_argument("--backlog", type=int, default=512)
    args = parser.parse_args()
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    started = time.monotonic()
    counter = {"n": 0}
    lock = threading.Lock()

    def loaded() -> bool:
        return time.monotonic() - started >= args.delay

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response, sent at once (no Nagle + delayed-ACK stalls on keep-alive).
        wbufsize = 1 << 16

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *a: object) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            if not loaded():
                self._send(503, b'{"loading":true}')
                return
            if self.path == "/health":
                self._send(200, b'{"ok":true}')
                return
            with lock:
                counter["n"] += 1
                n = counter["n"]
            if self.path.startswith("/sse"):
                self._sse(n)
                return
            if args.latency:
                time.sleep(args.latency)
            status = 500 if args.error_every and n % args.error_every == 0 else 200
            payload = {
                "name": args.name, "port": args.port, "pid": os.getpid(), "path": self.path,
                "method": self.command, "body_bytes": len(body), "n": n,
            }  # fmt: skip
            self._send(status, json.dumps(payload).encode())

        def _sse(self, n: int) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i in range(args.events):
                data = f"data: {json.dumps({'i': i, 'n': n, 'name': args.name})}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                time.sleep(args.event_gap)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    if not args.early_bind and args.delay:
        time.sleep(args.delay)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = args.backlog  # read by listen() in the constructor

    server = Server((args.host, args.port), Handler)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
