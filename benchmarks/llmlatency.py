"""How long a streamed LLM event spends in the gateway: per-event latency, plain and converted.

    .venv/bin/python benchmarks/llmlatency.py [--rounds 3] [--streams 100] [--interval 0.02]
                                              [--together] [--aligned] [--realtime] [--port-base 9800]

Issue 15's budget: a 100-token stream's events leave within 1 ms of arriving (p99, 100 concurrent
streams). A stamping backend (CPU 0) streams replies of 100 events, an event every `--interval`
seconds on each, each event's text being its send time (CLOCK_REALTIME, the clock of the kernel's
receive timestamps). The client (this process, CPU 0) keeps `--streams` streams open, reads the
stamps back out of the events it receives, converted or not, and records receive time minus send
time, the receive time being the kernel's (SO_TIMESTAMPNS): when the event reached the client's
socket, so that the client's own wait for its CPU (shared with the backend) is not counted.
The gateway (CPU 1) serves the routes of `benchmarks/llmcost.py`: plain OpenAI
and Anthropic relaying, and each direction of `llm-convert`. The gateway's share of a percentile
is the route's percentile minus the same percentile measured directly against the backend (what
is left of the backend's and the loopback's costs cancels). Routes are interleaved within each
round; the median and the range over rounds are reported.

- **Starts**: 100 concurrent streams are a steady state: streams end and new ones start all the
  time, about one per interval here (100 streams of 2 s). The client runs `--streams` clients,
  client i starting i/`--streams` of a stream's duration after the first, each opening its next
  stream (a new connection, as before) when the last one ended, 3 streams each; the events sent
  while all clients are in a stream are measured (about 20,000). `--together` starts every
  stream at once instead, so that all of them also end within the last interval: the gateway
  then sets up 100 streams at once and tears 100 down within 20 ms, each costing some 0.7 ms
  of its CPU (accept, request, upstream connection, closing both), and the events of that last
  interval queue behind them (docs/benchmarks.md: most events over 1 ms fall there).
- **Phases**: real streams start at unrelated times, so their tokens do not arrive in step. The
  backend spreads the streams' phases over the interval (the golden-ratio sequence: even, whatever
  the number of streams). `--aligned` sends every stream's events at the same instants instead
  (multiples of the interval on the backend's clock): bursts of `--streams` events, which a
  single-threaded relay drains one after the other, so that p99 is the time to relay a whole
  burst (about streams x CPU per event), not one event's latency.
- **`--realtime`**: backend, gateway and client run SCHED_FIFO (`chrt -f`, needs the privilege),
  so that other jobs on a shared machine do not queue in front of them; what remains is the
  processes' own work. (RT throttling keeps 5 % of each CPU for everyone else.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from cpucost import start, stop, wait_tcp  # noqa: E402
from llmcost import ANTHROPIC_BODY, ROUTES, TOKENS, _backend, post_request  # noqa: E402

_STAMP = re.compile(rb"t(\d{6,});")
_GOLDEN = (5**0.5 - 1) / 2
_RT_PRIORITY = 10
# Linux: SO_TIMESTAMPNS (also the control message's type), a struct timespec in CLOCK_REALTIME.
_SO_TIMESTAMPNS = 35
_CMSG_SPACE = socket.CMSG_SPACE(16)
_STREAMS_PER_CLIENT = 3


# --------------------------------------------------------------------------- the stamping backend


def _frames(anthropic: bool) -> tuple[bytes, bytes, bytes, bytes]:
    """The reply's first event, a token event's text before and after its stamp, and the end."""
    if anthropic:
        start_message = {
            "type": "message_start",
            "message": {"id": "m", "model": "bench", "usage": {"input_tokens": 1}},
        }
        return (
            b"event: message_start\ndata: " + json.dumps(start_message).encode() + b"\n\n",
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"',
            b'"}}\n\n',
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":100}}\n\n'
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        )  # fmt: skip
    chunk = b'data: {"id":"c","object":"chat.completion.chunk","model":"bench","choices":[{"index":0,'
    return (
        chunk + b'"delta":{"role":"assistant","content":""}}]}\n\n',
        chunk + b'"delta":{"content":"',
        b'"},"finish_reason":null}]}\n\n',
        chunk + b'"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    )


class StampingBackend:
    """One streamed reply per connection: Anthropic events for /v1/messages, OpenAI chunks else.
    Events leave on a fixed schedule (`phase + k * interval` after the request), not after a
    sleep each, so that a late wake-up does not shift the rest of the stream."""

    def __init__(self, interval: float, aligned: bool) -> None:
        self.interval, self.aligned, self.connections = interval, aligned, 0

    def start(self, now: float) -> float:
        """When the stream's schedule starts: its own phase in the interval, or (aligned) the
        next multiple of the interval, the same instants for every stream."""
        self.connections += 1
        if self.aligned:
            return math.ceil(now / self.interval) * self.interval
        return now + (self.connections * _GOLDEN) % 1.0 * self.interval

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        await reader.readexactly(
            next(int(line[15:]) for line in lines if line.startswith(b"content-length:"))
        )
        first, before, after, end = _frames(b" /v1/messages " in lines[0])
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n" + first
        )
        loop = asyncio.get_running_loop()
        due = self.start(loop.time())
        for _ in range(TOKENS):
            due += self.interval
            await asyncio.sleep(due - loop.time())
            writer.write(before + f"t{time.time_ns()};".encode() + after)
        writer.write(end)
        await writer.drain()
        writer.close()


def serve_stamping(port: int, interval: float, aligned: bool) -> None:
    """The stamping backend (this script re-run with --serve-stamping)."""
    import uvloop

    backend = StampingBackend(interval, aligned)

    async def main() -> None:
        server = await asyncio.start_server(backend.connection, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


# --------------------------------------------------------------------------- the client


async def _timed_stream(port: int, request: bytes, events: list[tuple[int, int]]) -> None:
    """One stream; the (send, receive) times (ns) of each of its token events onto `events`.

    The receive time is the kernel's (SO_TIMESTAMPNS: when the bytes reached this socket), not
    when this process got round to reading them: the client shares its CPU with the backend,
    and its own wait for that CPU is no part of the gateway's latency. A read that takes several
    events gets the time of its last segment (later than the others': an overestimate)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, request)
    done: asyncio.Future[None] = loop.create_future()
    tail = b""

    def readable() -> None:
        nonlocal tail
        try:
            data, ancillary, _, _ = sock.recvmsg(65536, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            loop.remove_reader(sock)
            done.set_result(None)
            return
        received = _kernel_time(ancillary)
        data = tail + data
        cut = data.rfind(b";") + 1
        tail = data[cut:]
        events.extend([(int(match.group(1)), received) for match in _STAMP.finditer(data, 0, cut)])

    loop.add_reader(sock, readable)
    try:
        await done
    finally:
        loop.remove_reader(sock)
        sock.close()


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time, or now when it gave none (it switches timestamps on
    asynchronously, so the first reads of a run may come without): later than the arrival,
    never in the gateway's favour. (Raising here dropped the read's events from the count.)"""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds * 1_000_000_000 + nanoseconds
    return time.time_ns()


def latencies(
    port: int, path: str, body: dict[str, Any], count: int, together: bool, interval: float
) -> list[int]:
    """Receive minus send time (ns) of the token events of `count` concurrent streams, sorted.

    `together`: the `count` streams start at once (and so end within one interval). Otherwise a
    steady state: `count` clients, client i starting at i/count of a stream's duration, each
    opening its next stream when the last one ended, `_STREAMS_PER_CLIENT` streams each; only
    the events sent while all `count` clients were in a stream are kept (the ramps at both ends,
    with fewer streams open, are lighter and are left out)."""
    request = post_request(path, body, stream=True, close=True)
    events: list[tuple[int, int]] = []
    duration = TOKENS * interval

    async def client(offset: float) -> tuple[int, int]:
        await asyncio.sleep(offset)
        first = time.time_ns()
        for _ in range(_STREAMS_PER_CLIENT):
            await _timed_stream(port, request, events)
        return first, time.time_ns()

    async def run() -> tuple[int, int]:
        if together:
            await asyncio.gather(*[_timed_stream(port, request, events) for _ in range(count)])
            return 0, 2**63
        spans = await asyncio.gather(*[client(i * duration / count) for i in range(count)])
        return max(first for first, _ in spans), min(last for _, last in spans)

    start, end = asyncio.run(run())
    return sorted(receive - send for send, receive in events if start <= send <= end)


# --------------------------------------------------------------------------- the measurement


def realtime_available() -> bool:
    return subprocess.run(["chrt", "-f", str(_RT_PRIORITY), "true"], capture_output=True).returncode == 0


def measure(args: argparse.Namespace) -> dict[str, list[list[int]]]:
    """Every round's sorted delays per route (`direct` first), routes interleaved in each round."""
    wrap = f"chrt -f {_RT_PRIORITY} " if args.realtime else ""
    aligned = "--aligned" if args.aligned else ""
    work, backend_port, port, backend = _backend(
        "stamping", 2, args.interval, args, Path(__file__), wrap, aligned
    )
    gateway = start(
        f"{wrap}{ROOT}/.venv/bin/a3s-gateway run --config {work / 'gateway.hcl'}", "1", work / "gw.log"
    )
    routes = [("direct (no gateway)", backend_port, "/v1/messages", ANTHROPIC_BODY)]
    routes += [(name, port, path, body) for name, path, body, _ in ROUTES]
    rows: dict[str, list[list[int]]] = {name: [] for name, *_ in routes}
    try:
        wait_tcp(backend_port)
        wait_tcp(port)
        for rnd in range(args.rounds):
            for name, target, path, body in routes:
                latencies(target, path, body, 5, True, args.interval)  # warm-up
                rows[name].append(latencies(target, path, body, args.streams, args.together, args.interval))
                print(f"round {rnd + 1} {name}: p99 {_q(rows[name][-1], 0.99):.3f} ms", file=sys.stderr)
    finally:
        stop(gateway)
        stop(backend)
    return rows


def _q(delays: list[int], q: float) -> float:
    """The q-quantile of sorted delays, in ms."""
    return delays[min(len(delays) - 1, int(q * len(delays)))] / 1e6


def report(rows: dict[str, list[list[int]]], args: argparse.Namespace) -> str:
    direct = next(iter(rows))

    def stat(name: str, q: float) -> tuple[float, float, float]:
        values = [_q(r, q) for r in rows[name] if r]
        return statistics.median(values), min(values), max(values)

    phases = "in step (bursts)" if args.aligned else "phases spread over the interval"
    starts = (
        "all starting (and ending) at once"
        if args.together
        else f"a steady state ({_STREAMS_PER_CLIENT} streams back to back per client, starts spread)"
    )
    lines = [
        f"{args.streams} concurrent {TOKENS}-event streams, {starts}, an event every "
        f"{args.interval * 1000:.0f} ms on each, {phases}; {args.rounds} interleaved rounds, "
        "median (min-max) over rounds; " + ("SCHED_FIFO." if args.realtime else "normal scheduling."),
        "",
        "| route | events | p50 ms | p99 ms | added p50 ms | added p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in rows:
        p50, p99 = stat(name, 0.5), stat(name, 0.99)
        added = ["", ""]
        if name != direct:
            d50, d99 = stat(direct, 0.5), stat(direct, 0.99)
            added = [f"{p50[0] - d50[0]:+.3f}", f"{p99[0] - d99[0]:+.3f}"]
        lines.append(
            f"| {name} | {len(rows[name][-1])} | {p50[0]:.3f} ({p50[1]:.3f}-{p50[2]:.3f}) "
            f"| {p99[0]:.3f} ({p99[1]:.3f}-{p99[2]:.3f}) "
            f"| {added[0]} | {added[1]} |"
        )
    lines += ["", "Budget (issue 15): events leave within 1 ms of arriving (p99, 100 concurrent streams)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.02, help="seconds between a stream's events")
    ap.add_argument("--aligned", action="store_true", help="all streams' events at the same instants")
    ap.add_argument("--together", action="store_true", help="all streams start (and end) at once")
    ap.add_argument("--realtime", action="store_true", help="SCHED_FIFO for backend, gateway and client")
    ap.add_argument("--port-base", type=int, default=9800)
    ap.add_argument("--serve-stamping", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument(
        "--token-delay", type=float, default=0.02, help=argparse.SUPPRESS
    )  # the backend's interval
    args = ap.parse_args()
    if args.serve_stamping:
        serve_stamping(args.serve_stamping, args.token_delay, args.aligned)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.realtime and not realtime_available():
        sys.exit("--realtime: chrt -f is not permitted here")
    os.sched_setaffinity(0, {0})  # the client beside the backend, away from the gateway
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(_RT_PRIORITY))
    print(report(measure(args), args))


if __name__ == "__main__":
    main()
