"""TCP relay through one gateway worker on loopback, beside HAProxy in `mode tcp`, in one run.

    .venv/bin/python benchmarks/tcprelay.py [--seconds 5] [--rounds 3] [--idle 1000] [--port-base 9720]

Throughput: one client connection writes 64 KiB buffers as fast as it can, for `--seconds`,
through the proxy to a sink backend that reads 64 KiB at a time (the gateway relays with 64 KiB
reads, runtime/l4/relay.py). Reported per target: GiB/s of wall clock, and GiB per CPU-second of
the proxy (user + system): the issue's "through one gateway core" figure, which does not depend
on how busy the machine's other cores are. The client and the sink are Python processes reading
and writing 64 KiB at a time (no copy they can avoid); a direct run (no proxy) gives their ceiling.

Memory, measured first on a fresh proxy process (so it cannot reuse what the throughput runs
freed): `--idle` connections are opened through the proxy, each relayed to the backend (a byte
sent and echoed on each, so both legs exist), then left idle; the proxy's RSS growth divided by
their number is the memory per idle relayed connection.

Targets: direct, a3s-gateway (`run`, one worker, asyncio + uvloop), HAProxy (one thread,
`mode tcp`, its defaults otherwise: 16 KiB buffers). HAProxy comes from Debian
(`BENCH_INSTALL_ONLY=1 bash benchmarks/run.sh` installs it). The best round of each is reported,
as a markdown table on stdout (`make bench` puts it in docs/benchmarks.md); progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from l4bench import cpu, start_gateway, stop_all

CHUNK = 65536
# The backend: a sink that reads 64 KiB at a time (a connection whose first byte is "e" is
# echoed instead: the idle connections of the memory test).
SINK = """
import asyncio, socket
class Sink(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.t, self.buf, self.echo = transport, bytearray(65536), None
    def get_buffer(self, hint):
        return self.buf
    def buffer_updated(self, n):
        if self.echo is None:
            self.echo = self.buf[0:1] == b"e"
        if self.echo:
            self.t.write(bytes(self.buf[:n]))
    def eof_received(self):
        return False
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", {port}, backlog=4096)
    await server.serve_forever()
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""
GATEWAY_HCL = """
entrypoints "tcp" {{
  address         = "127.0.0.1:{port}"
  protocol        = "tcp"
  max_connections = 100000
  timeouts {{ idle = 600 }}
}}
tcp_routers "all" {{
  rule    = "HostSNI(`*`)"
  service = "sink"
}}
services "sink" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{backend}" }}] }}
}}
"""
HAPROXY_CFG = """
global
  nbthread 1
  maxconn 5000
defaults
  mode tcp
  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend relay
  bind 127.0.0.1:{port}
  default_backend sink
backend sink
  server sink 127.0.0.1:{backend}
"""


def rss(process: psutil.Process) -> int:
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def wait_tcp(port: int) -> None:
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"e")
                sock.settimeout(2)
                if sock.recv(1) == b"e":
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing relays on port {port}")


def throughput(port: int, seconds: float, process: psutil.Process | None) -> tuple[float, float]:
    """(GiB/s of wall clock, GiB per proxy CPU-second) for one connection writing 64 KiB buffers."""
    data = memoryview(bytes(CHUNK))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)  # the relay is up before the clock starts
        sent, before, start = 0, cpu(process), time.monotonic()
        deadline = start + seconds
        while True:
            for _ in range(64):
                sent += sock.send(data)
            if time.monotonic() >= deadline:
                break
        wall = time.monotonic() - start
        used = cpu(process) - before
    gib = sent / (1 << 30)
    return gib / wall, (gib / used if used else 0.0)


def idle_memory(port: int, count: int, process: psutil.Process) -> float:
    """Bytes of proxy RSS per idle relayed connection, `count` of them."""
    time.sleep(0.5)
    before = rss(process)
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"e")
            socks.append(sock)
        for sock in socks:  # each echoed: both legs of every connection are up
            sock.settimeout(10)
            assert sock.recv(1) == b"e"
        time.sleep(1.0)
        return (rss(process) - before) / count
    finally:
        for sock in socks:
            sock.close()


def measure(
    name: str, port: int, process: psutil.Process | None, args: argparse.Namespace
) -> dict[str, float]:
    wait_tcp(port)
    out: dict[str, float] = {}
    if process is not None:
        # First, on a fresh process: memory the throughput runs freed would otherwise be reused.
        out["idle_kib"] = idle_memory(port, args.idle, process) / 1024
    throughput(port, 1.0, process)  # warm up
    best = max((throughput(port, args.seconds, process) for _ in range(args.rounds)), key=lambda r: r[0])
    out.update(gibps=best[0], gib_per_cpu_s=best[1])
    per_cpu = f"{out['gib_per_cpu_s']:6.2f} GiB/CPU-s" if process else " " * 16
    idle = f"{out['idle_kib']:6.1f} KiB RSS per idle connection" if process else ""
    print(f"{name:<8} {out['gibps']:6.2f} GiB/s  {per_cpu}  {idle}", file=sys.stderr, flush=True)
    return out


def table(results: dict[str, dict[str, float]], args: argparse.Namespace) -> list[str]:
    """Markdown: each target's best round, and a3s's ratios to HAProxy (same run)."""
    rows = [
        f"| target | GiB/s (best of {args.rounds}) | GiB per proxy CPU-second | "
        f"RSS per idle relayed connection ({args.idle:,}) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        if name == "direct":
            rows.append(f"| direct (no proxy) | {r['gibps']:.2f} | | |")
        else:
            rows.append(f"| {name} | {r['gibps']:.2f} | {r['gib_per_cpu_s']:.2f} | {r['idle_kib']:.1f} KiB |")
    if "haproxy" in results:
        a3s, ha = results["a3s"], results["haproxy"]
        rows += [
            "",
            f"a3s / HAProxy: **{a3s['gibps'] / ha['gibps']:.2f}x** GiB/s, "
            f"**{a3s['gib_per_cpu_s'] / ha['gib_per_cpu_s']:.2f}x** GiB per CPU-second, "
            f"**{a3s['idle_kib'] / ha['idle_kib']:.2f}x** RSS per idle connection (lower is better).",
        ]
    rows += ["", f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end of the run."]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--port-base", type=int, default=9720, help="sink +1, gateway +2, HAProxy +3")
    args = parser.parse_args()
    backend, gateway_port, haproxy_port = args.port_base + 1, args.port_base + 2, args.port_base + 3
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally block: stop what we started
    work = Path(tempfile.mkdtemp(prefix="tcprelay-"))
    sink = subprocess.Popen([sys.executable, "-c", SINK.format(port=backend)])
    started: list[subprocess.Popen[bytes]] = [sink]
    results: dict[str, dict[str, float]] = {}
    try:
        results["direct"] = measure("direct", backend, None, args)
        gateway = start_gateway(work, GATEWAY_HCL.format(port=gateway_port, backend=backend), started)
        results["a3s"] = measure("a3s", gateway_port, gateway, args)
        haproxy = shutil.which("haproxy")
        if haproxy is None:
            print(
                "haproxy skipped: not installed (BENCH_INSTALL_ONLY=1 bash benchmarks/run.sh)",
                file=sys.stderr,
            )
        else:
            cfg = work / "haproxy.cfg"
            cfg.write_text(HAPROXY_CFG.format(port=haproxy_port, backend=backend))
            proxy = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stderr=subprocess.DEVNULL)
            started.append(proxy)
            results["haproxy"] = measure("haproxy", haproxy_port, psutil.Process(proxy.pid), args)
    finally:
        stop_all(started, work)
    print("\n".join(table(results, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
