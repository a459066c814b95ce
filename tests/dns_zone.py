"""A DNS zone the test can change: Debian's dnsmasq answering from a hosts file and SRV records.

`set_hosts` rewrites the hosts file and sends SIGHUP (dnsmasq re-reads it); SRV records come from
the command line, so `set_srv` restarts dnsmasq on the same port (which is also how a test kills
and restarts the DNS server mid-run: `kill()` then `start()`). Answers carry a TTL of `ttl`
seconds (dnsmasq's --local-ttl); dnsmasq answers for `.test` itself (NXDOMAIN, no data), as an
authoritative server does, instead of refusing what it has no record for.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import pytest

from .dns_peers import free_port_both

__all__ = ["Zone", "dns_zone"]


class Zone:
    def __init__(self, directory: Path, ttl: int) -> None:
        binary = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
        if binary is None:
            pytest.skip("dnsmasq is not installed (scripts/install-test-deps.sh installs it)")
        self.binary = binary
        self.hosts = directory / "hosts"
        self.hosts.write_text("")
        self.ttl = ttl
        self.srv: list[str] = []  # dnsmasq --srv-host values: "name,target,port,priority,weight"
        self.port = free_port_both()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_hosts(self, records: dict[str, list[str]]) -> None:
        """name -> addresses; dnsmasq re-reads the file on SIGHUP."""
        lines = [f"{address} {name}" for name, addresses in records.items() for address in addresses]
        self.hosts.write_text("\n".join(lines) + "\n")
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)
            for name, addresses in records.items():  # dnsmasq re-reads the file in its own time
                self._wait_answering(name, addresses[0])

    def _wait_answering(self, name: str, address: str) -> None:
        deadline = time.monotonic() + 20
        query = dns.message.make_query(name, "AAAA" if ":" in address else "A")
        while time.monotonic() < deadline:
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
            except (dns.exception.Timeout, OSError):
                continue
            # A truncated answer (TC) is a large one being served: the file has been read.
            if reply.flags & dns.flags.TC or any(address in rrset.to_text() for rrset in reply.answer):
                return
            time.sleep(0.02)
        raise TimeoutError(f"dnsmasq does not answer {address} for {name}")

    def set_srv(self, records: list[str]) -> None:
        self.srv = records
        if self.process is not None:
            self.kill()
            self.start()

    def start(self) -> None:
        command = [
            self.binary, "--no-daemon", "--conf-file=/dev/null", f"--port={self.port}",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--pid-file", f"--local-ttl={self.ttl}", f"--addn-hosts={self.hosts}", "--local=/test/",
            *(["--user=root"] if os.geteuid() == 0 else []),
            *(f"--srv-host={record}" for record in self.srv),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        query = dns.message.make_query("ready.invalid", "A")
        while True:
            try:
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
                return
            except (dns.exception.Timeout, OSError):
                if time.monotonic() > deadline:
                    raise

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@contextmanager
def dns_zone(directory: Path, ttl: int = 1) -> Iterator[Zone]:
    zone = Zone(directory, ttl)
    zone.start()
    try:
        yield zone
    finally:
        zone.kill()
