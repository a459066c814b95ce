"""Bytecodes per proxied request, per function and per layer: where the interpreter's work goes.

    .venv/bin/python benchmarks/bytecodes.py [--port-base 9500] [--requests 400] [--top 40] [--extra FILE]

callgrind.py counts a request's machine instructions but cannot tell which Python function ran
them (the interpreter's loop executes them all); callcount.py counts calls, and a call of
`_write_head` weighs the same as a call of `len`. This counts the bytecodes each Python
function executes per request, which is deterministic like both and says which of our
functions do the work. The gateway (benchmarks/gateway.hcl, `GET /` to the harness's nginx
backend, as in callcount.py) runs with a trace function that is switched on by a signal after
a warm-up and off again after `--requests` keep-alive requests (8 connections); the counts are
divided by the requests. Tracing makes the gateway slow, not different: the figures do not
move with the machine's load. About 90 instructions per bytecode on average (callgrind.py's
count divided by this one), C work included.

`--extra FILE` appends the HCL in FILE to the configuration (the access log or the metrics on,
say), as callcount.py's `--extra` does.

Needs nginx and the harness copy made by benchmarks/run.sh (benchmarks/.work/bench).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import callcount

# Runs the gateway; SIGRTMIN+3 starts counting bytecodes per code object, SIGRTMIN+4 writes
# them ("count<TAB>file:line:qualname" per line) to $BYTECODES_OUT. (The gateway handles
# SIGUSR1/2, SIGHUP and SIGTERM itself.)
RUNNER = """
import collections, os, signal, sys
counts = collections.Counter()
def local(frame, event, arg):
    if event == "opcode":
        counts[frame.f_code] += 1
    return local
def tracer(frame, event, arg):
    frame.f_trace_opcodes = True
    frame.f_trace_lines = False
    return local
def start(signum, frame):
    counts.clear()
    sys.settrace(tracer)
def stop(signum, frame):
    sys.settrace(None)
    with open(os.environ["BYTECODES_OUT"], "w") as out:
        for code, n in counts.most_common():
            where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}:{code.co_qualname}"
            out.write(f"{n}\\t{where}\\n")
signal.signal(signal.SIGRTMIN + 3, start)
signal.signal(signal.SIGRTMIN + 4, stop)
from a3s_gateway.runtime.cli import main
sys.exit(main())
"""

_ADAPTER = "HTTP/1.1 adapter, both sides (http1_fast, _fast_state, _fast_heads, _fast_fields, http1)"
_ROUTING = "routing and dispatch (gateway, graph, router, index, request target)"
_SERVICE = "service (balancer, health, latency, in flight; api.py)"
_LOOP = "client connection loop (connection, ingress)"
_UPSTREAM = "upstream client and pool (client, pool, deadlines)"
LAYERS = {
    "http1_fast.py": _ADAPTER,
    "_fast_state.py": _ADAPTER,
    "_fast_heads.py": _ADAPTER,
    "_fast_fields.py": _ADAPTER,
    "http1.py": _ADAPTER,
    "connection.py": _LOOP,
    "ingress.py": _LOOP,
    "asyncio_stream.py": "socket streams (asyncio_stream)",
    "<string>": "dataclass constructors (events, Request, Response)",
    "router.py": _ROUTING,
    "index.py": _ROUTING,
    "request_target.py": _ROUTING,
    "graph.py": _ROUTING,
    "gateway.py": _ROUTING,
    "http_matchers.py": _ROUTING,
    "_inputs.py": _ROUTING,
    "service.py": _SERVICE,
    "service_health.py": _SERVICE,
    "round_robin.py": _SERVICE,
    "api.py": _SERVICE,
    "clock.py": _SERVICE,
    "proxy.py": "header hygiene (proxy)",
    "client.py": _UPSTREAM,
    "pool.py": _UPSTREAM,
    "deadlines.py": _UPSTREAM,
    "body_end.py": "end-of-body callbacks (body_end)",
}


def count(work: Path, config: Path, requests: int) -> list[tuple[float, str]]:
    """(bytecodes per request, function) for every function that ran while `requests` were served."""
    out = work / "bytecodes.tsv"
    runner = work / "run_traced.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "BYTECODES_OUT": str(out)}
    run = [sys.executable, str(runner), "run", "--config", str(config), "--log-level", "warning"]
    gw = subprocess.Popen(run, env=env)
    try:
        callcount.wait_tcp(callcount.LISTEN)
        request = callcount.request_bytes(None)
        callcount.send(160, request)  # warm-up: first-use work (pools, caches) is not counted
        gw.send_signal(signal.SIGRTMIN + 3)
        time.sleep(0.5)
        callcount.send(requests, request)
        time.sleep(0.5)
        gw.send_signal(signal.SIGRTMIN + 4)
        for _ in range(100):
            if out.exists() and out.stat().st_size:
                break
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        gw.terminate()
        gw.wait(60)
    rows = []
    for line in out.read_text().splitlines():
        n, where = line.split("\t")
        rows.append((int(n) / requests, where))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--port-base", type=int, default=9500)
    ap.add_argument("--extra", type=Path, help="HCL appended to the configuration")
    args = ap.parse_args()
    callcount.BACKEND, callcount.LISTEN = args.port_base + 1, args.port_base + 100
    work = Path(tempfile.mkdtemp(prefix="bytecodes-"))
    config = work / "gateway.hcl"
    gateway = callcount.gateway_hcl(callcount.ROOT / "benchmarks" / "gateway.hcl")
    config.write_text(gateway + (args.extra.read_text() if args.extra is not None else ""))
    with callcount.nginx_backend(work):
        rows = count(work, config, args.requests)
    layers: collections.Counter[str] = collections.Counter()
    for n, where in rows:
        layers[LAYERS.get(where.split(":")[0], "other (event loop, anyio, stdlib)")] += n
    print(f"bytecodes per proxied request: {sum(layers.values()):,.0f}\n")
    print("| layer | bytecodes per request |\n|---|---:|")
    for layer, n in layers.most_common():
        print(f"| {layer} | {n:,.0f} |")
    print("\n| function | bytecodes per request |\n|---|---:|")
    for n, where in rows[: args.top]:
        print(f"| `{where}` | {n:,.1f} |")


if __name__ == "__main__":
    main()
