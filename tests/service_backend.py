"""A small backend process for the services acceptance test (tests/test_services_e2e.py).

    python tests/service_backend.py --port 9001 --name b1

Every answer names the backend that gave it, so a test can tell where traffic went:
  GET /health        200 "ok"
  GET /anything      200 {"backend": name, "path": path, "n": requests served so far}
  GET /slow?ms=N     the same, after N milliseconds
  POST /anything     the same, plus "received": the body's length
  GET /stream?n=N&ms=M   N chunks ("<name> <i>\\n"), M milliseconds apart, chunked encoding
With `--fail`, every answer but /health is a 500 (for passive health).

Only the standard library: the test runs several of these as real processes and kills them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

COUNTER = itertools.count(1)
NAME = "backend"
FAIL = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/health":
            self._send(200, b"ok", "text/plain")
        elif parts.path == "/stream":
            self._stream(int(query.get("n", "3")), int(query.get("ms", "10")))
        else:
            if parts.path == "/slow":
                time.sleep(int(query.get("ms", "100")) / 1000)
            body = json.dumps({"backend": NAME, "path": parts.path, "n": next(COUNTER)}).encode()
            self._send(500 if FAIL else 200, body, "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        received = len(self.rfile.read(length))
        body = json.dumps(
            {"backend": NAME, "path": self.path, "n": next(COUNTER), "received": received}
        ).encode()
        self._send(500 if FAIL else 200, body, "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, n: int, gap_ms: int) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i in range(n):
            data = f"{NAME} {i}\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            time.sleep(gap_ms / 1000)
        self.wfile.write(b"0\r\n\r\n")


def main() -> None:
    global NAME, FAIL
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="backend")
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args()
    NAME, FAIL = args.name, args.fail
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
