"""CPU per request cycle of each HTTP/1.1 adapter alone, in process: h11 (protocols/http1.py)
against llhttp (protocols/http1_fast.py).

    .venv/bin/python benchmarks/http1cost.py [--rounds 5] [--cycles 20000]

A cycle is what one proxied request asks of each side. Client side (`server`): parse a
typical request head, write a response head with a Content-Length, its body and its end, start
the next cycle. Upstream side (`client`): write the forwarded request head, parse the
response head and body, return the connection to the pool. The rounds interleave the
adapters; the figure is process CPU time per cycle, median and min over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from a3s_gateway.runtime.events import EndOfBody, RequestHead, ResponseHead
from a3s_gateway.runtime.protocols.http1 import ClientConnection, ServerConnection
from a3s_gateway.runtime.protocols.http1_fast import FastClientConnection, FastServerConnection

REQUEST = (
    b"GET /v1/models?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk/4.2\r\n"
    b"Accept: */*\r\nX-Request-Id: 0b7e3f\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 05 Dec 2026 16:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n"
    b'{"ok": true }'
)
RESPONSE_HEAD = ResponseHead(
    1, 200, [(b"content-type", b"application/json"), (b"content-length", b"13"), (b"date", b"x")]
)
FORWARDED = RequestHead(
    1,
    b"GET",
    b"/v1/models?x=1",
    [
        (b"host", b"127.0.0.1:8001"),
        (b"user-agent", b"wrk/4.2"),
        (b"accept", b"*/*"),
        (b"x-forwarded-for", b"127.0.0.1"),
        (b"x-request-id", b"0b7e3f"),
    ],
)


def server_cycles(cls: type[ServerConnection] | type[FastServerConnection], n: int) -> None:
    server = cls()
    for _ in range(n):
        server.receive_data(REQUEST)
        server.send(RESPONSE_HEAD)
        server.send_body(b'{"ok": true }')
        server.send(EndOfBody(1))
        server.start_next_cycle()


def client_cycles(cls: type[ClientConnection] | type[FastClientConnection], n: int) -> None:
    client = cls()
    for _ in range(n):
        client.send(FORWARDED)
        client.send(EndOfBody(1))
        client.receive_data(RESPONSE)
        client.start_clean_cycle()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cycles", type=int, default=20000)
    args = ap.parse_args()
    runs: dict[str, Callable[[int], None]] = {
        "server h11": lambda n: server_cycles(ServerConnection, n),
        "server fast": lambda n: server_cycles(FastServerConnection, n),
        "client h11": lambda n: client_cycles(ClientConnection, n),
        "client fast": lambda n: client_cycles(FastClientConnection, n),
    }
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.process_time()
            run(args.cycles)
            results[name].append((time.process_time() - start) / args.cycles * 1e6)
    print("| side, adapter | µs CPU per cycle (median) | min | per round |\n|---|---:|---:|---|")
    for name, values in results.items():
        rounds = " / ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {rounds} |")


if __name__ == "__main__":
    main()
