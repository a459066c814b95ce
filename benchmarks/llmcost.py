"""What protocol conversion costs: CPU per request and per streamed event, over plain proxying.

    .venv/bin/python benchmarks/llmcost.py [--rounds 3] [--seconds 5] [--streams 100] [--port-base 9700]
                                           [--calls] [--library-only]

Two measurements, both against the issue's budget (<= 0.3 ms of CPU per non-streamed request,
<= 15 µs per streamed event, over plain proxying):

1. **The library alone**, in this process: the conversion work of one exchange (parse the
   client's JSON, convert the request, serialise it; parse the upstream's answer, convert it,
   serialise it), and of one streamed event (SSE parse, convert, encode), timed over many
   repetitions. No sockets: the pure cost, free of scheduling noise.
2. **A running gateway**, end to end: the demo backend (`runtime/demo_backend.py`, 100-token
   replies) on CPU 0 with the load generator, the gateway alone on CPU 1, and four routes:
   `/v1/chat/completions` and `/v1/messages` proxied as they are (plain), and OpenAI clients
   served by the Anthropic endpoint / Anthropic clients by the OpenAI one through
   `llm-convert`. Non-streamed: `wrk -c32` POSTs, the gateway's CPU time / requests. Streamed:
   `--streams` concurrent 100-token streams, the gateway's CPU time / events delivered. The
   overhead of a direction is its converted route minus the plain route that relays the same
   upstream format (the same upstream bytes are read; only the conversion differs). Other jobs
   on the machine only add CPU time, so the minimum over rounds is reported.
3. **Python calls per request** (`--calls`): the gateway under cProfile (benchmarks/callcount.py's
   method), each route; and the calls the exchange adds in process. A count, not a time: it does
   not move with the machine's load, and it shows whether the running gateway does more work
   around a converted request than the exchange itself.

Event latency through the same routes is `benchmarks/llmlatency.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from cpucost import cpu_seconds, start, stop, wait_tcp  # noqa: E402

TOKENS = 100
OPENAI_BODY = {
    "model": "bench",
    "max_tokens": TOKENS,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a short paragraph about the sea."},
    ],
}
ANTHROPIC_BODY = {
    "model": "bench",
    "max_tokens": TOKENS,
    "system": "You are a helpful assistant.",
    "messages": [{"role": "user", "content": "Write a short paragraph about the sea."}],
}
# (route name, path, body, plain route it is compared with)
# (measured in this order: each converted route right after the plain route it is compared with)
ROUTES = [
    ("plain Anthropic", "/v1/messages", ANTHROPIC_BODY, None),
    ("OpenAI client -> Anthropic upstream", "/openai/v1/chat/completions", OPENAI_BODY, "plain Anthropic"),
    ("plain OpenAI", "/v1/chat/completions", OPENAI_BODY, None),
    ("Anthropic client -> OpenAI upstream", "/anthropic/v1/messages", ANTHROPIC_BODY, "plain OpenAI"),
]
CONFIG = """
log_level = "warning"
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "plain"     {{ rule = "PathPrefix(`/v1/`)"           service = "demo" }}
routers "openai"    {{ rule = "PathPrefix(`/openai/v1/`)"    service = "demo"  middlewares = ["to-anthropic"] }}
routers "anthropic" {{ rule = "PathPrefix(`/anthropic/v1/`)" service = "demo"  middlewares = ["to-openai"] }}
middlewares "to-anthropic" {{ type = "llm-convert"  client = "openai"     upstream = "anthropic" }}
middlewares "to-openai"    {{ type = "llm-convert"  client = "anthropic"  upstream = "openai" }}
services "demo" {{
  load_balancer {{
    servers              = [{{ url = "http://127.0.0.1:{backend}" }}]
    max_idle_connections = 1024
  }}
}}
"""


# --------------------------------------------------------------------------- the library alone


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """µs per call of `fn` (best of three timed batches)."""
    n, best = 1, float("inf")
    while True:  # size a batch to ~0.1 s
        t0 = time.process_time()
        for _ in range(n):
            fn()
        if time.process_time() - t0 > 0.1:
            break
        n *= 2
    for _ in range(max(3, int(seconds / 0.1))):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return best * 1e6


def library_costs() -> list[tuple[str, float]]:
    from a3s_gateway.runtime.demo_backend import DemoApi, DemoOptions
    from a3s_gateway.stdlib.llm import SseParser, anthropic_to_openai, openai_to_anthropic

    api = DemoApi(DemoOptions(token_delay=0, reply_tokens=TOKENS))
    anthropic_reply = asyncio.run(_first(api._messages(dict(ANTHROPIC_BODY)).body))
    openai_reply = asyncio.run(_first(api._chat(dict(OPENAI_BODY)).body))
    openai_in, anthropic_in = json.dumps(OPENAI_BODY).encode(), json.dumps(ANTHROPIC_BODY).encode()

    def o2a() -> None:
        json.dumps(openai_to_anthropic.convert_request(json.loads(openai_in)))
        json.dumps(openai_to_anthropic.convert_response(json.loads(anthropic_reply)))

    def a2o() -> None:
        json.dumps(anthropic_to_openai.convert_request(json.loads(anthropic_in)))
        json.dumps(anthropic_to_openai.convert_response(json.loads(openai_reply)))

    from tests.llm_fakes import Turn, anthropic_events, openai_chunks

    turn = Turn(text="The sea " * (TOKENS // 2), usage=(20, TOKENS))
    a_events, o_events = anthropic_events(turn, "bench"), openai_chunks(turn, "bench", True)

    def stream(events: list[bytes], make: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            parser, converter = SseParser(), make()
            for event in events:
                for parsed in parser.feed(event):
                    converter.feed(parsed)

        return run

    exchange, exchange_calls = exchange_cost(anthropic_reply)
    metered_json = per_call(metering(openai_reply, "application/json", stream=False))
    metered_o = per_call(metering(b"".join(o_events), "text/event-stream", stream=True)) / len(o_events)
    metered_a = per_call(metering(b"".join(a_events), "text/event-stream", anthropic=True))
    o2a_stream = per_call(stream(a_events, lambda: openai_to_anthropic.StreamConverter(OPENAI_BODY)))
    a2o_stream = per_call(stream(o_events, lambda: anthropic_to_openai.StreamConverter(ANTHROPIC_BODY)))
    return [
        (
            "the whole llm-convert exchange (middleware), upstream in memory, over a pass-through (µs)",
            exchange,
        ),
        ("the same exchange: Python calls added (cProfile, not µs)", exchange_calls),
        ("non-streamed exchange, OpenAI client -> Anthropic upstream (µs)", per_call(o2a)),
        ("non-streamed exchange, Anthropic client -> OpenAI upstream (µs)", per_call(a2o)),
        ("streamed event, Anthropic events -> OpenAI chunks (µs)", o2a_stream / len(a_events)),
        ("streamed event, OpenAI chunks -> Anthropic events (µs)", a2o_stream / len(o_events)),
        (
            "usage read from a non-streamed reply (meter_response: llm-keys, or a model_router alone) (µs)",
            metered_json,
        ),
        ("usage read per streamed OpenAI chunk, the usage chunk stripped (µs)", metered_o),
        ("usage read per streamed Anthropic event (µs)", metered_a / len(a_events)),
    ]


def metering(
    reply: bytes, content_type: str, *, stream: bool = True, anthropic: bool = False
) -> Callable[[], None]:
    """One reply through `meter_response` (what llm-keys and a model_router alone add to read
    its usage), its events one chunk each; driven without an event loop (nothing in it waits)."""
    from a3s_gateway.runtime.api import Headers, LlmExchange, Request, Response
    from a3s_gateway.stdlib.common.llm_usage import meter_response, request_of

    path = "/v1/messages" if anthropic else "/v1/chat/completions"
    llm = request_of(path, {"model": "m", "stream": stream}, b"", bytes_per_token=None)
    chunks = [event + b"\n\n" for event in reply.split(b"\n\n") if event] if stream else [reply]

    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    def run() -> None:
        request = Request("POST", path, Headers())
        response = Response(200, Headers([(b"content-type", content_type.encode())]), body())
        meter_response(
            request, response, llm, time.monotonic, 0.0, _ignore, LlmExchange("s", "m", "none", 200)
        )
        step = response.body.__anext__
        while True:
            try:
                step().send(None)
            except StopIteration:
                continue
            except StopAsyncIteration:
                return

    return run


def _ignore(_exchange: object) -> None:
    pass


def exchange_cost(upstream_reply: bytes) -> tuple[float, float]:
    """µs of CPU and Python calls `llm-convert` adds to one non-streamed OpenAI exchange served by
    Anthropic: `exchange.serve` (read the body, convert, rewrite the request; read the answer,
    convert it) against a handler that answers from memory, minus the same handler called directly."""
    from a3s_gateway.runtime.api import Headers, Request, Response, iter_body
    from a3s_gateway.stdlib.llm.exchange import Conversion, Upstream, serve

    conversion = Conversion("openai", Upstream("anthropic", "key"))
    data = json.dumps(OPENAI_BODY).encode()
    reply_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(upstream_reply)).encode()),
    ]

    async def upstream(request: Request) -> Response:
        async for _ in request.body:
            pass
        return Response(200, Headers(reply_headers), iter_body(upstream_reply))

    async def run(convert: bool, n: int) -> float:
        started = time.process_time()
        for _ in range(n):
            headers = Headers(
                [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
            )
            request = Request(
                "POST", "/openai/v1/chat/completions", headers, iter_body(data), content_length=len(data)
            )
            response = await (serve(conversion, request, upstream) if convert else upstream(request))
            async for _ in response.body:
                pass
        return (time.process_time() - started) / n

    async def best() -> float:
        return min([await run(True, 2000) - await run(False, 2000) for _ in range(5)])

    def calls(convert: bool) -> float:
        """Python calls per exchange (cProfile; 200 exchanges subtracted from 2,000)."""
        counts = []
        for n in (200, 2000):
            profile = cProfile.Profile()
            profile.runcall(asyncio.run, run(convert, n))
            counts.append(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]
        return (counts[1] - counts[0]) / 1800

    return asyncio.run(best()) * 1e6, calls(True) - calls(False)


async def _first(body: Any) -> bytes:
    return bytes(await body.__anext__())


# --------------------------------------------------------------------------- a running gateway


def serve_demo(port: int, token_delay: float) -> None:
    """The demo backend, 100-token replies (this script re-run with --serve-demo)."""
    import anyio

    from a3s_gateway.runtime.demo_backend import DemoBackend, DemoOptions

    backend = DemoBackend(DemoOptions(token_delay=token_delay, reply_tokens=TOKENS), port=port)
    anyio.run(backend.serve, backend="asyncio", backend_options={"use_uvloop": True})


def wrk_post(port: int, path: str, body: dict[str, Any], seconds: int, work: Path) -> int:
    script = work / "post.lua"
    payload = json.dumps(body).replace("\\", "\\\\").replace("'", "\\'")
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{payload}'\n"
        "wrk.headers['Content-Type'] = 'application/json'\nwrk.headers['anthropic-version'] = '2023-06-01'\n"
    )
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    done = [int(line.split()[0]) for line in out.splitlines() if "requests in" in line]
    errors = [line for line in out.splitlines() if "Non-2xx" in line]
    if errors:
        raise RuntimeError(f"{path}: {errors[0]}")
    return done[0] if done else 0


async def _one_stream(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = bytearray()
    while chunk := await reader.read(65536):
        data += chunk
    writer.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode("latin-1"))
    return body.count(b"\n\n")  # one per SSE event (chunked framing only adds CRLFs)


def streams(port: int, path: str, body: dict[str, Any], count: int) -> int:
    request = post_request(path, body, stream=True, close=True)

    async def run() -> int:
        return sum(await asyncio.gather(*[_one_stream(port, request) for _ in range(count)]))

    return asyncio.run(run())


def _backend(
    kind: str,
    offset: int,
    delay: float,
    args: argparse.Namespace,
    script: Path = Path(__file__),
    wrap: str = "",
    extra: str = "",
) -> tuple[Path, int, int, Any]:
    """A work dir holding the gateway's config, the backend's and the gateway's ports, and the
    backend (`script` re-run with `--serve-<kind> PORT --token-delay DELAY EXTRA`, behind the
    `wrap` command) on CPU 0."""
    work = Path(tempfile.mkdtemp(prefix=f"llm-{kind}-"))
    backend_port, port = args.port_base + offset, args.port_base + 100 + offset
    (work / "gateway.hcl").write_text(CONFIG.format(port=port, backend=backend_port))
    command = f"{wrap}{sys.executable} {script} --serve-{kind} {backend_port} --token-delay {delay} {extra}"
    return work, backend_port, port, start(command, "0", work / f"{kind}.log")


def measure_gateway(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    work, backend_port, port, demo = _backend("demo", 1, args.token_delay, args)
    results: dict[str, dict[str, list[float]]] = {name: {"request": [], "event": []} for name, *_ in ROUTES}
    try:
        wait_tcp(backend_port)
        for rnd in range(args.rounds):
            gateway = start(
                f"{ROOT}/.venv/bin/a3s-gateway run --config {work / 'gateway.hcl'}", "1", work / "gw.log"
            )
            try:
                wait_tcp(port)
                for name, path, body, _ in ROUTES:
                    wrk_post(port, path, body, 1, work)  # warm-up
                    u0, s0 = cpu_seconds(gateway.pid)
                    n = wrk_post(port, path, body, args.seconds, work)
                    u1, s1 = cpu_seconds(gateway.pid)
                    results[name]["request"].append(1e6 * (u1 - u0 + s1 - s0) / max(n, 1))
                    streams(port, path, body, 5)  # warm-up
                    u0, s0 = cpu_seconds(gateway.pid)
                    events = streams(port, path, body, args.streams)
                    u1, s1 = cpu_seconds(gateway.pid)
                    results[name]["event"].append(1e6 * (u1 - u0 + s1 - s0) / max(events, 1))
                    print(
                        f"round {rnd + 1} {name}: {results[name]['request'][-1]:.0f} µs/request, "
                        f"{results[name]['event'][-1]:.1f} µs/event ({events} events)",
                        file=sys.stderr,
                    )
            finally:
                stop(gateway)
    finally:
        stop(demo)
    return results


def post_request(path: str, body: dict[str, Any], *, stream: bool = False, close: bool = False) -> bytes:
    """One POST of `body` as JSON to `path`, as both SDKs send it."""
    data = json.dumps({**body, "stream": True} if stream else body).encode()
    connection = "connection: close\r\n" if close else ""
    return (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        f"anthropic-version: 2023-06-01\r\n{connection}content-length: {len(data)}\r\n\r\n"
    ).encode() + data


def measure_calls(args: argparse.Namespace) -> dict[str, float]:
    """Python calls per non-streamed request of each route: the gateway under cProfile serving
    N1 and then N2 keep-alive requests (benchmarks/callcount.py's method: start-up and shutdown
    cancel out in the difference). Unlike CPU time, the count does not move with the machine's
    load, so it tells whether the gateway does more around the conversion than the conversion."""
    import callcount

    work, backend_port, port, demo = _backend("demo", 3, 0.0, args)
    callcount.LISTEN = port
    (work / "run_gateway.py").write_text(callcount.RUNNER)
    calls: dict[str, float] = {}
    try:
        wait_tcp(backend_port)
        for name, path, body, _ in ROUTES:
            n1, n2 = (
                callcount.profiled_calls(
                    sys.executable, work, n, work / "gateway.hcl", post_request(path, body), []
                )
                for n in (400, 2400)
            )
            calls[name] = (n2 - n1) / 2000
            print(f"{name}: {calls[name]:.1f} calls/request", file=sys.stderr)
    finally:
        stop(demo)
    return calls


def _stat(values: list[float], spec: str) -> str:
    """`median (min)` of per-round values."""
    return f"{statistics.median(values):{spec}} ({min(values):{spec}})"


def _gateway_table(gateway: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> list[str]:
    lines = [
        "",
        f"### Through a running gateway ({args.rounds} interleaved rounds, median (min); "
        f"{args.streams} concurrent {TOKENS}-token streams)",
        "",
        "The added cost is paired: per round, the converted route minus its plain route measured just before.",
        "",
        "| route | µs CPU per request | added over plain | µs CPU per streamed event | added over plain |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, _, _, plain in ROUTES:
        cells = [_stat(gateway[name]["request"], ".0f"), "", _stat(gateway[name]["event"], ".1f"), ""]
        if plain is not None:
            for i, kind in ((1, "request"), (3, "event")):
                added = [c - p for c, p in zip(gateway[name][kind], gateway[plain][kind], strict=True)]
                cells[i] = _stat(added, "+.0f" if kind == "request" else "+.1f")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def report(
    library: list[tuple[str, float]],
    gateway: dict[str, dict[str, list[float]]],
    calls: dict[str, float],
    args: argparse.Namespace,
) -> str:
    lines = [
        "### The conversion library alone (in process, best of batches)",
        "",
        "| work | µs CPU |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {us:.1f} |" for name, us in library]
    if gateway:
        lines += _gateway_table(gateway, args)
    if calls:
        lines += [
            "",
            "### Python calls per non-streamed request through the gateway (cProfile; independent of load)",
            "",
            "| route | calls per request | added over plain |",
            "|---|---:|---:|",
        ]
        for name, _, _, plain in ROUTES:
            added = "" if plain is None else f"{calls[name] - calls[plain]:+.0f}"
            lines.append(f"| {name} | {calls[name]:.0f} | {added} |")
    lines += ["", "Budget (issue 15): <= 300 µs added per non-streamed request, <= 15 µs per streamed event."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--token-delay", type=float, default=0.01)
    ap.add_argument("--port-base", type=int, default=9700)
    ap.add_argument("--library-only", action="store_true")
    ap.add_argument("--calls", action="store_true", help="also count Python calls per request (cProfile)")
    ap.add_argument("--serve-demo", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_demo:
        serve_demo(args.serve_demo, args.token_delay)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(ROOT))
    library = library_costs()
    gateway = {} if args.library_only else measure_gateway(args)
    calls = measure_calls(args) if args.calls else {}
    print(report(library, gateway, calls, args))


if __name__ == "__main__":
    main()
