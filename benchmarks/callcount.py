"""Python calls per proxied request: a deterministic companion to cpucost.py.

    .venv/bin/python benchmarks/callcount.py [--config TEMPLATE] [--body FILE] NAME=PYTHON ...

Each PYTHON is the interpreter of a tree to measure (for a before/after comparison, the venv of
a second worktree at the older commit). On a shared VM even CPU time per request moves by 10 %
or more between rounds (steal time), which hides a 3 % change. The number of function calls the
profiler counts per request does not move with the machine's load, so it tells whether a change
added work on the request path. For each tree the gateway runs under cProfile twice, serving
N1 and then N2 keep-alive requests (8 connections, `GET /` to the harness's nginx backend), and
the figure is (calls(N2) - calls(N1)) / (N2 - N1): start-up and shutdown cancel out (after a
first, discarded start: a fresh venv's first start does one-off work).

`--extra NAME=FILE` appends the HCL in FILE to NAME's configuration (the same tree measured
with the access log or metrics on, say: `base=.venv/bin/python metrics=.venv/bin/python
--extra metrics=metrics.hcl`).

`--run-args NAME=ARGS` adds ARGS to NAME's `run` command (one tree measured two ways:
`h11=.venv/bin/python fast=.venv/bin/python --run-args h11="--http1 h11" --run-args fast="--http1 fast"`).

`--config` names the gateway config template (default benchmarks/gateway.hcl; e.g.
benchmarks/model-router.hcl), `--body` makes every request a POST of that file as JSON (e.g.
benchmarks/chat-request.json): the calls routing by model adds over plain proxying.

Needs nginx and the harness copy made by benchmarks/run.sh (benchmarks/.work/bench). Ports:
backend 9501, gateway 9600 (`--port-base 9500`; another base moves both).
"""

from __future__ import annotations

import argparse
import contextlib
import pstats
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "benchmarks" / ".work" / "bench"
BACKEND, LISTEN, CONNECTIONS = 9501, 9600, 8  # moved by --port-base
RUNNER = "import sys\nfrom a3s_gateway.runtime.cli import main\nsys.exit(main())\n"


def wait_tcp(port: int, tries: int = 300) -> None:
    """Wait for a listener, `tries` times 0.1 s at most."""
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on :{port}")


def request_bytes(body: bytes | None) -> bytes:
    if body is None:
        return b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    head = b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def keep_alive_client(port: int, requests: int, request: bytes) -> None:
    """`requests` sequential requests on one connection, each response read whole."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for _ in range(requests):
            s.sendall(request)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += _received(s)
            head, _, body = buf.partition(b"\r\n\r\n")
            fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
            length = int({k.lower(): v for k, v in fields.items()}[b"content-length"])
            while len(body) < length:
                body += _received(s)


def _received(s: socket.socket) -> bytes:
    """The next bytes; a connection the gateway closed fails the run (it used to spin forever)."""
    data = s.recv(65536)
    if not data:
        raise ConnectionError("the gateway closed a keep-alive connection mid-run")
    return data


def send(requests: int, request: bytes) -> None:
    """`requests` requests to the gateway, over CONNECTIONS keep-alive connections at once."""
    each = requests // CONNECTIONS
    failed: list[BaseException] = []

    def client() -> None:
        try:
            keep_alive_client(LISTEN, each, request)
        except Exception as exc:
            failed.append(exc)

    clients = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    if failed:  # a figure from fewer requests than counted would be wrong, not noisy
        raise SystemExit(f"a client failed: {failed[0]}")


def gateway_hcl(template: Path) -> str:
    """The gateway's config: `template` (benchmarks/gateway.hcl's form) listening on LISTEN and
    proxying to the nginx backend on BACKEND."""
    text = template.read_text().replace("{listen_host}:{listen_port}", f"127.0.0.1:{LISTEN}")
    return text.replace("{backend_url}", f"http://127.0.0.1:{BACKEND}")


@contextlib.contextmanager
def nginx_backend(work: Path) -> Iterator[None]:
    """The harness's nginx backend on BACKEND (its files in `work`), for the block's duration."""
    conf = (HARNESS / "configs" / "nginx-backend.conf").read_text()
    for key, value in {"workdir": work, "backend_port": BACKEND, "backend_h2c_port": BACKEND + 2}.items():
        conf = conf.replace("{" + key + "}", str(value))
    (work / "nginx.conf").write_text(conf)
    nginx = subprocess.Popen(["nginx", "-p", str(work), "-c", str(work / "nginx.conf")])
    try:
        wait_tcp(BACKEND)
        yield
    finally:
        nginx.terminate()
        nginx.wait(10)


def profiled_calls(
    python: str, work: Path, requests: int, config: Path, request: bytes, run_args: list[str]
) -> int:
    """Calls counted by cProfile over a gateway's whole life while it serves `requests`."""
    out = work / f"profile-{time.monotonic_ns()}"
    command = [python, "-m", "cProfile", "-o", str(out), str(work / "run_gateway.py"), "run", *run_args]
    gw = subprocess.Popen([*command, "--config", str(config), "--log-level", "warning"])
    try:
        wait_tcp(LISTEN)
        send(requests, request)
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(60)
    return int(pstats.Stats(str(out)).total_calls)  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="+", metavar="NAME=PYTHON")
    ap.add_argument("--n1", type=int, default=800)
    ap.add_argument("--n2", type=int, default=4000)
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=FILE")
    ap.add_argument("--run-args", action="append", default=[], metavar="NAME=ARGS")
    ap.add_argument("--port-base", type=int, default=9500)
    ap.add_argument("--config", type=Path, default=ROOT / "benchmarks" / "gateway.hcl")
    ap.add_argument("--body", type=Path, help="POST this file's bytes as application/json")
    args = ap.parse_args()
    extra = dict(e.split("=", 1) for e in args.extra)
    run_args = {name: value.split() for name, value in (e.split("=", 1) for e in args.run_args)}
    global BACKEND, LISTEN
    BACKEND, LISTEN = args.port_base + 1, args.port_base + 100
    request = request_bytes(args.body.read_bytes() if args.body is not None else None)
    work = Path(tempfile.mkdtemp(prefix="callcount-"))
    (work / "run_gateway.py").write_text(RUNNER)
    gateway = gateway_hcl(args.config)
    with nginx_backend(work):
        print("| tree | Python calls per proxied request |\n|---|---:|")
        for name, python in (t.split("=", 1) for t in args.targets):
            config = work / f"gateway-{name}.hcl"
            config.write_text(gateway + (Path(extra[name]).read_text() if name in extra else ""))
            flags = run_args.get(name, [])
            # warm-up: a first start does one-off work
            profiled_calls(python, work, CONNECTIONS, config, request, flags)
            low = profiled_calls(python, work, args.n1, config, request, flags)
            high = profiled_calls(python, work, args.n2, config, request, flags)
            print(f"| {name} | {(high - low) / (args.n2 - args.n1):.1f} |")


if __name__ == "__main__":
    main()
