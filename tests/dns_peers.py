"""A real DNS server for the UDP (and TCP) entrypoint tests: Debian's dnsmasq, unprivileged on a
free port, answering from its command line only (no /etc/hosts, no upstream, no config file).

Every instance answers the same records, plus `who.test TXT <name>` so a test can tell which
backend answered. It serves UDP and TCP on the same port, as DNS servers do.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import pytest

from .udp_peers import free_udp_port

__all__ = ["RECORDS", "Dnsmasq", "dnsmasq", "free_port_both"]

# What every instance answers: name -> (type, text of the answer's first record).
RECORDS = {
    ("app.test", "A"): "10.0.0.1",
    ("v6.test", "AAAA"): "fd00::1",
    ("_api._tcp.app.test", "SRV"): "0 0 8080 app.test.",
    ("txt.test", "TXT"): '"hello from dnsmasq"',
}


@dataclass
class Dnsmasq:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def free_port_both() -> int:
    """A port free for UDP and for TCP on 127.0.0.1 (dnsmasq binds both)."""
    for _ in range(50):
        port = free_udp_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


@contextmanager
def dnsmasq(name: str) -> Iterator[Dnsmasq]:
    binary = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    if binary is None:
        pytest.skip("dnsmasq is not installed (scripts/install-test-deps.sh installs it)")
    port = free_port_both()
    command = [
        binary,
        "--no-daemon",
        "--conf-file=/dev/null",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--pid-file",  # none
        *(["--user=root"] if os.geteuid() == 0 else []),  # as root it would switch to nobody
        "--address=/app.test/10.0.0.1",
        "--host-record=v6.test,fd00::1",
        "--srv-host=_api._tcp.app.test,app.test,8080",
        "--txt-record=txt.test,hello from dnsmasq",
        f"--txt-record=who.test,{name}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_answering(port)  # before a gateway sends to it: a refusal would mark it down
        yield Dnsmasq(name, port, process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def _wait_answering(port: int) -> None:
    query = dns.message.make_query("app.test", "A")
    deadline = time.monotonic() + 10
    while True:
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            if time.monotonic() > deadline:
                raise
