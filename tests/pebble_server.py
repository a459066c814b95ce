"""Debian's pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv, run on loopback.

`Pebble.start(tmp_path, http_port=..., tls_port=...)` starts pebble-challtestsrv as the DNS
server pebble resolves through (every A query answered 127.0.0.1, so pebble validates against
the gateway on loopback; TXT records are set through its management API) and pebble itself,
with its HTTPS listener's certificate made here (Debian ships none) and `ca_file` the CA that
signed it (the gateway's `ca_bundle`). `root()` is the root pebble issues under, fetched from its
management endpoint, which a client verifies the gateway's chain against.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from .backends import make_certs
from .stubs import free_port

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"


@dataclass
class Pebble:
    folder: Path
    port: int
    management: int
    dns_port: int
    challtest_management: int
    ca_file: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    config_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> str:
        return f"https://localhost:{self.port}/dir"

    @classmethod
    def start(
        cls,
        folder: Path,
        *,
        http_port: int = 5002,
        tls_port: int = 5001,
        validity: int | None = None,
        env: dict[str, str] | None = None,
        run: bool = True,
    ) -> Pebble:
        folder.mkdir(parents=True, exist_ok=True)
        # Pebble's HTTPS listener certificate (Debian ships none), for "localhost".
        certs = make_certs(folder, ["localhost"])
        cert, key = certs.leaves["localhost"]
        pebble = cls(
            folder, free_port(), free_port(), free_port(), free_port(), certs.ca_file, env=dict(env or {})
        )
        config: dict[str, Any] = {
            "listenAddress": f"127.0.0.1:{pebble.port}",
            "managementListenAddress": f"127.0.0.1:{pebble.management}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if validity is not None:
            config["certificateValidityPeriod"] = validity
        pebble.config_file = folder / "pebble-config.json"
        pebble.config_file.write_text(json.dumps({"pebble": config}))
        pebble._start_challtestsrv()
        if run:
            pebble.run_pebble()
        return pebble

    def _start_challtestsrv(self) -> None:
        log = open(self.folder / "challtestsrv.log", "wb")  # noqa: SIM115 - closed with the process
        args = [
            CHALLTESTSRV,
            "-dns01",
            f"127.0.0.1:{self.dns_port}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            f"127.0.0.1:{self.challtest_management}",
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]
        self.processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        self._wait(lambda: socket.create_connection(("127.0.0.1", self.challtest_management), 1).close())

    def run_pebble(self) -> None:
        """Start pebble (again, after `stop_pebble`: a new CA, its state gone)."""
        assert self.config_file is not None
        log = open(self.folder / "pebble.log", "ab")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", **self.env}
        args = [PEBBLE, "-config", str(self.config_file), "-dnsserver", f"127.0.0.1:{self.dns_port}"]
        self.processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env))
        self._wait(lambda: self._get(self.directory))

    def stop_pebble(self) -> None:
        for process in [p for p in self.processes if p.args[0] == PEBBLE]:
            process.terminate()
            process.wait(10)
            self.processes.remove(process)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(10)
        self.processes.clear()

    def root(self) -> str:
        """The root certificate pebble issues under (PEM), from its management endpoint."""
        return self._get(f"https://localhost:{self.management}/roots/0").decode()

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return bytes(response.read())

    def challtest(self, path: str, payload: dict[str, Any]) -> None:
        """POST to pebble-challtestsrv's management API (e.g. /set-txt)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.challtest_management}{path}", data=json.dumps(payload).encode()
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    @staticmethod
    def _wait(ready: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ready()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __enter__(self) -> Pebble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def resolver_block(
    pebble: Pebble, storage: Path, challenge: str, name: str = "pebble", extra: str = ""
) -> str:
    """A `certificate_resolvers` block ordering from `pebble`, with `challenge` (an HCL block)."""
    return f"""
certificate_resolvers "{name}" {{
  acme {{
    email         = "ops@example.com"
    directory     = "{pebble.directory}"
    ca_bundle     = "{pebble.ca_file}"
    storage       = "{storage}"
    retry_initial = "500ms"
    retry_max     = "2s"
    {extra}
    {challenge}
  }}
}}
"""


def http01_config(
    pebble: Pebble, web: int, websecure: int, storage: Path, hosts: str = "Host(`app.test`)"
) -> str:
    """A gateway on `web` (HTTP-01, pebble's httpPort) and `websecure` (tls { }) whose router for
    `hosts` gets its certificate from `pebble` through the resolver "pebble"."""
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}
entrypoints "websecure" {{
  address = "127.0.0.1:{websecure}"
  tls {{ }}
}}
{resolver_block(pebble, storage, 'http_challenge { entrypoint = "web" }')}
routers "app" {{
  rule        = "{hosts}"
  service     = "ping@internal"
  entrypoints = ["websecure"]
  tls {{ cert_resolver = "pebble" }}
}}
"""


def challtestsrv_challenge(pebble: Pebble, before: str = "") -> str:
    """A DNS-01 challenge block through `pebble`'s challtestsrv (`before`: keys put ahead of it)."""
    return f"""{before}
    dns_challenge {{
      provider            = "challtestsrv"
      management_url      = "http://127.0.0.1:{pebble.challtest_management}"
      resolvers           = ["127.0.0.1:{pebble.dns_port}"]
      propagation_timeout = "20s"
      polling_interval    = "100ms"
    }}"""


def handshake(port: int, name: str, root: str, alpn: list[str] | None = None) -> ssl.SSLSocket:
    """A verified TLS connection to the gateway for `name`, trusting only pebble's `root`."""
    context = ssl.create_default_context(cadata=root)
    if alpn:
        context.set_alpn_protocols(alpn)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return context.wrap_socket(sock, server_hostname=name)
    except BaseException:
        sock.close()
        raise


def served_leaf(port: int, name: str) -> x509.Certificate:
    """The certificate the gateway serves for `name`, unverified (call it in a thread)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with sock, context.wrap_socket(sock, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def served_serial(port: int, name: str) -> str:
    """The serial (hex) of the certificate the gateway serves for `name`, unverified."""
    return format(served_leaf(port, name).serial_number, "x")


def verifies(port: int, name: str, root: str) -> bool:
    """Whether a handshake for `name` verifies against pebble's `root` (call it in a thread)."""
    try:
        handshake(port, name, root).close()
    except (ssl.SSLError, OSError):
        return False
    return True


async def wait_verified(port: int, name: str, root: str, timeout: float = 60.0) -> None:
    """Poll until the gateway serves `name` a certificate chaining to `root`."""
    import anyio

    with anyio.fail_after(timeout):
        while not await anyio.to_thread.run_sync(verifies, port, name, root):
            await anyio.sleep(0.2)


async def serial_of(port: int, name: str) -> str:
    import anyio

    return await anyio.to_thread.run_sync(served_serial, port, name)


def get(port: int, name: str, root: str, path: str = "/ping") -> bytes:
    """GET `path` over a verified connection (in a thread); the response's first bytes."""
    with handshake(port, name, root) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        return tls.recv(65536)


def _names_served(port: int, name: str) -> list[str]:
    san = served_leaf(port, name).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [str(n) for n in san.value.get_values_for_type(x509.DNSName)]


async def served_names(port: int, name: str) -> list[str]:
    """The DNS names of the certificate served for `name` (unverified)."""
    import anyio

    return await anyio.to_thread.run_sync(_names_served, port, name)
