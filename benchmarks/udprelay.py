"""UDP datagrams through one gateway core with 1,000 sessions, beside nginx's stream module.

    .venv/bin/python benchmarks/udprelay.py [--seconds 5] [--sessions 1000] [--window 64]

A client with `--sessions` connected UDP sockets (one session each at the proxy) keeps `--window`
datagrams of 64 bytes in flight, round robin over its sockets, against a UDP echo backend,
through each target in turn: direct (no proxy), a3s-gateway (one worker), and nginx (one worker,
`stream { server { listen ... udp; proxy_pass ...; } }`, when its stream module is installed:
Debian's libnginx-mod-stream). socat and HAProxy are not used: HAProxy does not relay UDP, and
socat's UDP mode serves one peer per process.

Reported per target: answered datagrams per second (wall clock), and per CPU-second of the proxy
(user + system, its worker processes included), the figure the issue's "50k datagrams per
second through one core" reads. One answered datagram is four datagram operations at the proxy
(in and out each way). The client and the backend are Python processes too: on a machine with
few cores the wall-clock rate is bounded by them, the per-CPU-second one much less so.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from l4bench import cpu, start_gateway, stop_all

ROOT = Path(__file__).resolve().parent.parent
BACKEND, GATEWAY, NGINX = 9711, 9712, 9713
ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", {port}))
while True:
    data, peer = s.recvfrom(65536)
    s.sendto(data, peer)
"""
NGINX_CONF = """
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
stream {{
  server {{
    listen 127.0.0.1:{port} udp;
    proxy_pass 127.0.0.1:{backend};
    proxy_timeout 30s;
  }}
}}
"""
GATEWAY_HCL = """
entrypoints "udp" {{
  address          = "127.0.0.1:{port}"
  protocol         = "udp"
  udp_max_sessions = 100000
}}
udp_routers "echo" {{ service = "echo" }}
services "echo" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{backend}" }}] }}
}}
"""


def load(port: int, sessions: int, seconds: float, window: int) -> int:
    """Answered datagrams in `seconds`, `window` in flight over `sessions` sockets."""
    socks = []
    for _ in range(sessions):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        socks.append(sock)
    poller = select.epoll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    payload, nxt, answered = b"x" * 64, 0, 0

    def send(count: int) -> None:
        nonlocal nxt
        for _ in range(count):
            try:
                socks[nxt].send(payload)
            except BlockingIOError:
                pass
            nxt = (nxt + 1) % sessions

    try:
        send(min(window, sessions))  # every session opened before the clock starts
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            events = poller.poll(0.05)
            if not events:
                send(window)  # datagrams lost (a full buffer): top the window up
                continue
            got = 0
            for fd, _ in events:
                try:
                    while True:
                        by_fd[fd].recv(2048)
                        got += 1
                except BlockingIOError:
                    pass
            answered += got
            send(got)
    finally:
        poller.close()
        for sock in socks:
            sock.close()
    return answered


def wait_udp(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(0.2)
        for _ in range(150):
            try:
                sock.send(b"ping")
                sock.recv(64)
                return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"nothing answers on UDP port {port}")


def measure(name: str, port: int, process: psutil.Process | None, args: argparse.Namespace) -> None:
    wait_udp(port)
    load(port, args.sessions, 1.0, args.window)  # warm up: sessions opened, caches hot
    before = cpu(process) if process else 0.0
    start = time.monotonic()
    answered = load(port, args.sessions, args.seconds, args.window)
    wall = time.monotonic() - start
    used = cpu(process) - before if process else 0.0
    per_cpu = f"{answered / used:>10,.0f}/CPU-s" if used else " " * 16
    print(f"{name:<8} {answered / wall:>10,.0f}/s  {per_cpu}  (proxy CPU {used:.2f}s in {wall:.1f}s)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="udprelay-"))
    echo = subprocess.Popen([sys.executable, "-c", ECHO.format(port=BACKEND)])
    started: list[subprocess.Popen[bytes]] = [echo]
    try:
        measure("direct", BACKEND, None, args)
        gateway = start_gateway(work, GATEWAY_HCL.format(port=GATEWAY, backend=BACKEND), started)
        measure("a3s", GATEWAY, gateway, args)
        if shutil.which("nginx") and Path("/usr/lib/nginx/modules/ngx_stream_module.so").exists():
            conf = work / "nginx.conf"
            conf.write_text(NGINX_CONF.format(dir=work, port=NGINX, backend=BACKEND))
            nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)])
            started.append(nginx)
            measure("nginx", NGINX, psutil.Process(nginx.pid), args)
        else:
            print("nginx    skipped: no stream module (apt-get install libnginx-mod-stream)")
    finally:
        stop_all(started, work)
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
