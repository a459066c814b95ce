"""CPU cost per proxied request: a measurement that survives a busy machine.

    .venv/bin/python benchmarks/cpucost.py [--seconds 8] [--rounds 3] [--path /] [--body FILE] \\
        NAME='COMMAND with {listen} and {backend}' ...

Throughput on a shared 2-core VM moves by tens of percent with other jobs' load, but the CPU
time a target spends per request moves much less. For each round and each target (in turn,
so drift spreads over all of them) this starts the target on CPU 1 (backend nginx and wrk on
CPU 0, the harness's topology), warms it up, runs `wrk -t2 -c64` and reports the target's
process-tree CPU time divided by the requests served: µs of CPU per request (median over
rounds), next to req/s. Used while optimising; the numbers for docs/benchmarks.md come from
the harness (benchmarks/run.sh).

With `--body FILE` every request is a POST of FILE's bytes as `application/json` (wrk's Lua
hook), e.g. an LLM chat request, to compare a model_router service with plain proxying.

With `--counts` each round also prints the target's minor page faults and context switches
(voluntary and involuntary, every thread) per 1,000 requests: CPU time that the instructions do
not explain (callgrind.py) may be the kernel's, faulting pages in or switching threads.

With `--sse` the unit is a relayed SSE event instead of a request: the harness's SSE backend
(on CPU 0) streams `--sse-events` events every `--sse-interval-ms` to each of 100 streams opened
by the harness's SSE client (on CPU 0) through the target, and the target's CPU time is divided
by the events the client received (the streams' setup included, as in real use). At 100 streams
x 5 ms the offered 20,000 events/s saturate one Python core, so the figure is the target's own
cost per event, not idle time.

Needs the harness copy made by benchmarks/run.sh (benchmarks/.work/bench) for the nginx
backend config and the SSE backend/client. Ports: backend 9501, SSE backend 9502, target 9600
(unless --port-base says otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "benchmarks" / ".work" / "bench"  # the harness copy made by benchmarks/run.sh


def wait_http(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on :{port}")


def start(cmd: str, cpus: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen(
            ["bash", "-c", f"exec taskset -c {cpus} {cmd}"],
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def stop(p: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(3)
            return
        except subprocess.TimeoutExpired:
            continue


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process tree."""
    user = system = 0.0
    try:
        proc = psutil.Process(pid)
        for q in [proc, *proc.children(recursive=True)]:
            t = q.cpu_times()
            user += t.user
            system += t.system
    except psutil.Error:
        pass
    return user, system


def event_counts(pid: int) -> tuple[int, int, int]:
    """(minor page faults, voluntary and involuntary context switches) of the process tree, its
    threads included (`--counts`). Counts, unlike times, do not grow with other jobs' load,
    except the involuntary switches (preemption)."""
    faults = voluntary = involuntary = 0
    try:
        proc = psutil.Process(pid)
        pids = [proc.pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.Error:
        return 0, 0, 0
    for one in pids:
        try:
            with open(f"/proc/{one}/stat") as fh:
                faults += int(fh.read().rpartition(")")[2].split()[7])  # minflt, the stat's 10th field
            for task in os.listdir(f"/proc/{one}/task"):
                with open(f"/proc/{one}/task/{task}/status") as fh:
                    for line in fh:
                        if line.startswith("voluntary_ctxt_switches"):
                            voluntary += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            involuntary += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return faults, voluntary, involuntary


def wrk(port: int, path: str, seconds: int, conns: int = 64, script: Path | None = None) -> tuple[float, int]:
    scripted = ["-s", str(script)] if script is not None else []
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            "wrk",
            "-t2",
            f"-c{conns}",
            f"-d{seconds}s",
            *scripted,
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    return (float(rps.group(1)) if rps else 0.0), (int(n.group(1)) if n else 0)


def wait_tcp(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on :{port}")


def sse_client(port: int, streams: int, events: int, interval_ms: int) -> int:
    """Run the harness's SSE client through the target; the number of events it received."""
    url = f"http://127.0.0.1:{port}/sse?n={events}&interval_ms={interval_ms}"
    timeout = events * interval_ms / 1000 + 30
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, str(HARNESS / "clients" / "sse_client.py"), "--url", url,
         "--streams", str(streams), "--expect-events", str(events), "--timeout", str(timeout)],
        capture_output=True, text=True, timeout=timeout + 30,
    ).stdout  # fmt: skip
    return int(json.loads(out.strip().splitlines()[-1])["events"])


def measure(name: str, cmd: str, args: argparse.Namespace, work: Path) -> tuple[float, float, float]:
    listen = args.port_base + 100
    env = {}
    if cmd.startswith("env:"):  # env:NAME=VALUE,NAME=VALUE cmd...
        spec, _, cmd = cmd[4:].partition(" ")
        env = dict(kv.split("=", 1) for kv in spec.split(","))
    rendered = cmd.format(
        listen=f"127.0.0.1:{listen}",
        port=listen,
        backend=f"http://127.0.0.1:{args.port_base + (2 if args.sse else 1)}",
        work=work,
        root=ROOT,
        python=sys.executable,
    )
    p = start(rendered, "1", work / f"{name}.log", env)
    if args.sse:
        return measure_sse(p, listen, args)
    try:
        wait_http(listen)
        wrk(listen, args.path, 2, 256, args.script)  # warm-up: grows pools
        u0, s0 = cpu_seconds(p.pid)
        c0 = event_counts(p.pid) if args.counts else (0, 0, 0)
        rps, n = wrk(listen, args.path, args.seconds, script=args.script)
        u1, s1 = cpu_seconds(p.pid)
        c1 = event_counts(p.pid) if args.counts else (0, 0, 0)
    finally:
        stop(p)
    if not n:
        return rps, float("nan"), float("nan")
    if args.counts:
        faults, voluntary, involuntary = (1000 * (b - a) / n for a, b in zip(c0, c1, strict=True))
        print(
            f"  {name}: per 1,000 requests {faults:.1f} minor faults, {voluntary:.1f} voluntary and "
            f"{involuntary:.1f} involuntary context switches",
            file=sys.stderr,
        )
    return rps, 1e6 * (u1 - u0 + s1 - s0) / n, 1e6 * (s1 - s0) / n


def measure_sse(
    p: subprocess.Popen[bytes], listen: int, args: argparse.Namespace
) -> tuple[float, float, float]:
    """(events/s, µs CPU per event, of which kernel) for one started target."""
    try:
        wait_tcp(listen)
        sse_client(listen, 10, 5, 10)  # warm-up: imports, pools
        u0, s0 = cpu_seconds(p.pid)
        started = time.monotonic()
        n = sse_client(listen, 100, args.sse_events, args.sse_interval_ms)
        elapsed = time.monotonic() - started
        u1, s1 = cpu_seconds(p.pid)
    finally:
        stop(p)
    if not n:
        return 0.0, float("nan"), float("nan")
    return n / elapsed, 1e6 * (u1 - u0 + s1 - s0) / n, 1e6 * (s1 - s0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="+", metavar="NAME=COMMAND")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--path", default="/")
    ap.add_argument("--port-base", type=int, default=9500)
    ap.add_argument("--body", type=Path, help="POST this file's bytes as application/json")
    ap.add_argument("--sse", action="store_true", help="CPU per relayed SSE event instead of per request")
    ap.add_argument("--sse-events", type=int, default=400)
    ap.add_argument("--sse-interval-ms", type=int, default=5)
    ap.add_argument(
        "--counts", action="store_true", help="also minor faults and context switches per 1,000 requests"
    )
    args = ap.parse_args()
    unit = "event" if args.sse else "request"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop what we started
    targets = dict(t.split("=", 1) for t in args.targets)
    work = Path(tempfile.mkdtemp(prefix="cpucost-"))
    (work / "64k.bin").write_bytes(b"x" * 65536)
    args.script = None
    if args.body is not None:
        args.script = work / "post.lua"
        body = json.dumps(args.body.read_text())  # a JSON string is a valid Lua string literal here
        args.script.write_text(
            f'wrk.method = "POST"\nwrk.body = {body}\nwrk.headers["Content-Type"] = "application/json"\n'
        )
    conf = (HARNESS / "configs" / "nginx-backend.conf").read_text()
    for key, value in {
        "workdir": work,
        "backend_port": args.port_base + 1,
        "backend_h2c_port": args.port_base + 3,
    }.items():
        conf = conf.replace("{" + key + "}", str(value))
    (work / "nginx.conf").write_text(conf)
    if args.sse:
        sse = HARNESS / "backends" / "sse_backend.py"
        backend = start(f"{sys.executable} {sse} --port {args.port_base + 2}", "0", work / "sse.log")
    else:
        backend = start(f"nginx -p {work} -c {work / 'nginx.conf'}", "0", work / "nginx.log")
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in targets}
    try:
        if args.sse:
            wait_tcp(args.port_base + 2)
        else:
            wait_http(args.port_base + 1)
        for rnd in range(args.rounds):
            for name, cmd in targets.items():
                results[name].append(measure(name, cmd, args, work))
                rps, us, sys_us = results[name][-1]
                print(
                    f"round {rnd + 1} {name}: {rps:,.0f} {unit}s/s, {us:.1f} µs CPU/{unit} ({sys_us:.1f} in the kernel)",
                    file=sys.stderr,
                )
    finally:
        stop(backend)
    # Interference from other jobs only ever adds CPU time, so the minimum is the robust figure.
    print(
        f"| target | {unit}s/s (median of {args.rounds}) | µs CPU per {unit} (median) | min | of which kernel | per round |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name, rows in results.items():
        rps = statistics.median(r for r, _, _ in rows)
        us = statistics.median(u for _, u, _ in rows)
        ks = statistics.median(k for _, _, k in rows)
        low = min(u for _, u, _ in rows)
        print(
            f"| {name} | {rps:,.0f} | {us:.1f} | {low:.1f} | {ks:.1f} | {' / '.join(f'{u:.0f}' for _, u, _ in rows)} |"
        )


if __name__ == "__main__":
    main()
