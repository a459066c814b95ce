"""The dns provider in a running gateway, against Debian's dnsmasq started by the test
(tests/dns_zone.py): every address of a name is a server, an SRV record's targets too; a changed
answer is one reload; a server gone from the answer is drained, not cut; dnsmasq killed and
restarted mid-run costs no request; a name that vanishes or an answer too large is a diagnostic
and the last good servers keep serving.

The backends listen on other loopback addresses (127.0.0.2, 127.0.0.3, ...) on one port, as the
machines a name resolves to would.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from ..backends import backend
from ..dns_zone import Zone, dns_zone
from ..stubs import eventually, free_port
from .running import weighted

pytestmark = pytest.mark.anyio

CONFIG = """
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
middlewares "strip" {{
  type     = "strip-prefix"
  prefixes = ["/llm", "/gpu"]
}}
providers {{
  throttle = "0.1s"
  dns {{
    resolvers   = ["{resolver}"]
    min_ttl     = "0.2s"
    max_ttl     = "2s"
    timeout     = "1s"
    max_records = {max_records}
    services = {{
      llm = {{ servers = [{{ url = "http://llm.test:{backend_port}" }}] }}
      gpu = {{ servers = [{{ srv = "_http._tcp.gpu.test" }}], strategy = "weighted" }}
    }}
  }}
}}
routers "llm" {{
  rule        = "PathPrefix(`/llm`)"
  service     = "llm@dns"
  middlewares = ["strip"]
}}
routers "gpu" {{
  rule        = "PathPrefix(`/gpu`)"
  service     = "gpu@dns"
  middlewares = ["strip"]
}}
"""


def write_config(tmp_path: Path, zone: Zone, backend_port: int, max_records: int = 1000) -> tuple[str, int]:
    port = free_port()
    path = tmp_path / "gateway.hcl"
    path.write_text(
        CONFIG.format(port=port, resolver=zone.address, backend_port=backend_port, max_records=max_records)
    )
    return str(path), port


async def test_addresses_srv_changes_and_draining(tmp_path: Path) -> None:
    port = free_port()
    with dns_zone(tmp_path, ttl=1) as zone:
        zone.set_hosts({"llm.test": ["127.0.0.2"], "gpu.test": ["127.0.0.4"]})
        zone.set_srv([f"_http._tcp.gpu.test,gpu.test,{port},0,3"])
        path, gw_port = write_config(tmp_path, zone, port)
        async with (
            backend(host="127.0.0.2", port=port) as a,
            backend(host="127.0.0.3", port=port) as b,
            backend(host="127.0.0.4", port=port) as gpu,
            Gateway(path) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(
                lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.2:{port}", 1)], timeout=20
            )
            assert weighted(gateway, "gpu@dns") == [(f"http://127.0.0.4:{port}", 3)]
            assert (await client.get("/llm/json")).status_code == 200 and len(a.seen) == 1
            assert (await client.get("/gpu/json")).status_code == 200 and len(gpu.seen) == 1

            # A stream in flight on a, then the name moves to b: a is drained, not cut.
            async with client.stream("GET", "/llm/sse?n=2") as stream:
                lines = stream.aiter_lines()
                assert (await anext(lines)).startswith("data:")
                zone.set_hosts({"llm.test": ["127.0.0.3"], "gpu.test": ["127.0.0.4"]})
                await eventually(
                    lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.3:{port}", 1)], timeout=20
                )
                assert (await client.get("/llm/json")).status_code == 200 and len(b.seen) == 1
                await a.step()
                rest = [line async for line in lines if line.startswith("data:")]
                assert len(rest) == 1  # the second event came through the drained backend

            # Both addresses: both are servers.
            zone.set_hosts({"llm.test": ["127.0.0.2", "127.0.0.3"], "gpu.test": ["127.0.0.4"]})
            await eventually(lambda: len(weighted(gateway, "llm@dns")) == 2, timeout=20)


async def test_dnsmasq_killed_and_restarted_mid_run_drops_no_request(tmp_path: Path) -> None:
    port = free_port()
    with dns_zone(tmp_path, ttl=1) as zone:
        zone.set_hosts({"llm.test": ["127.0.0.2"], "gpu.test": ["127.0.0.4"]})
        zone.set_srv([f"_http._tcp.gpu.test,gpu.test,{port},0,1"])
        path, gw_port = write_config(tmp_path, zone, port)
        async with (
            backend(host="127.0.0.2", port=port),
            backend(host="127.0.0.3", port=port) as b,
            Gateway(path) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(lambda: len(weighted(gateway, "llm@dns")) == 1, timeout=20)
            providers = gateway.providers
            assert providers is not None
            statuses: list[int] = []
            zone.kill()
            await eventually(lambda: providers.status["dns"].state == "lost", timeout=20)
            for _ in range(20):  # served all along from the last answer
                statuses.append((await client.get("/llm/json")).status_code)
            zone.set_hosts({"llm.test": ["127.0.0.3"], "gpu.test": ["127.0.0.4"]})
            await anyio.to_thread.run_sync(zone.start)
            await eventually(
                lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.3:{port}", 1)], timeout=30
            )
            statuses.append((await client.get("/llm/json")).status_code)
            assert statuses == [200] * 21 and len(b.seen) == 1
            assert providers.status["dns"].state == "ok"


async def test_a_vanished_name_and_a_huge_answer_are_diagnostics(tmp_path: Path) -> None:
    port = free_port()
    with dns_zone(tmp_path, ttl=1) as zone:
        zone.set_hosts({"llm.test": ["127.0.0.2"], "gpu.test": ["127.0.0.4"]})
        zone.set_srv([f"_http._tcp.gpu.test,gpu.test,{port},0,1"])
        path, gw_port = write_config(tmp_path, zone, port, max_records=1000)
        async with (
            backend(host="127.0.0.2", port=port) as a,
            Gateway(path) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(lambda: len(weighted(gateway, "llm@dns")) == 1, timeout=20)
            providers = gateway.providers
            assert providers is not None

            zone.set_hosts({"gpu.test": ["127.0.0.4"]})  # llm.test is gone: NXDOMAIN
            await eventually(lambda: providers.status["dns"].state == "rejected", timeout=20)
            error = providers.status["dns"].last_error or ""
            assert "services.llm.servers.0 (http://llm.test:" in error and "no such name" in error
            assert (await client.get("/llm/json")).status_code == 200 and len(a.seen) == 1

            # As many A records as a DNS message holds (over TCP: the UDP answer is truncated).
            zone.set_hosts(
                {
                    "llm.test": [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(4000)],
                    "gpu.test": ["127.0.0.4"],
                }
            )
            await eventually(lambda: "4000 records" in (providers.status["dns"].last_error or ""), timeout=30)
            assert "more than max_records (1000)" in (providers.status["dns"].last_error or "")
            assert weighted(gateway, "llm@dns") == [(f"http://127.0.0.2:{port}", 1)]
            assert (await client.get("/llm/json")).status_code == 200


ONE_NAME = """
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
providers {{
  throttle = "0.1s"
  dns {{
    resolvers = ["{resolver}"]
    min_ttl   = "0.2s"
    max_ttl   = "1h"
    timeout   = "1s"
    services = {{
      llm   = {{ servers = [{{ url = "http://llm.test:{backend_port}" }}] }}
      fixed = {{ servers = [{{ url = "http://127.0.0.4:{backend_port}" }}] }}
    }}
  }}
}}
routers "llm" {{
  rule    = "PathPrefix(`/`)"
  service = "llm@dns"
}}
"""


async def test_a_name_that_comes_back_is_served_again_within_min_ttl(tmp_path: Path) -> None:
    # The only name with a TTL is gone: its retry must not wait for max_ttl (an hour here), or
    # the whole fragment stays rejected that long after the name is back.
    port, gw_port = free_port(), free_port()
    with dns_zone(tmp_path, ttl=1) as zone:
        zone.set_hosts({"llm.test": ["127.0.0.2"]})
        path = tmp_path / "gateway.hcl"
        path.write_text(ONE_NAME.format(port=gw_port, resolver=zone.address, backend_port=port))
        async with backend(host="127.0.0.3", port=port) as b, Gateway(str(path)) as gateway:
            await eventually(lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.2:{port}", 1)])
            providers = gateway.providers
            assert providers is not None
            zone.set_hosts({})
            await eventually(lambda: providers.status["dns"].state == "rejected", timeout=20)
            zone.set_hosts({"llm.test": ["127.0.0.3"]})
            await eventually(lambda: providers.status["dns"].state == "ok", timeout=20)
            assert weighted(gateway, "llm@dns") == [(f"http://127.0.0.3:{port}", 1)]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client:
                assert (await client.get("/json")).status_code == 200 and len(b.seen) == 1


class HostileResolver:
    """A DNS server on real UDP and TCP sockets (one port) that answers `llm.test` with one A
    record until `huge` is set; then its UDP answer is truncated (TC) and its TCP answer's header
    claims 10,000 A records, followed by as many as a message holds (65,535 bytes: 4,090 or so).
    No resolver can serve such a message; dnsmasq never sends one, a broken or hostile server can."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.huge = False
        self._udp, self._tcp = _udp_and_tcp_on_one_port()
        self.port = self._udp.getsockname()[1]
        self._closed = False
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._serve_udp, self._serve_tcp)]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._closed = True
        self._udp.close()
        self._tcp.close()

    def _answer(self, query: bytes, tcp: bool) -> bytes:
        ident, flags = struct.unpack("!HH", query[:4])
        question = _question(query)
        if not self.huge:
            record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 1, 4) + socket.inet_aton(self.address)
            header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100), 1, 1, 0, 0)
            return header + question + record
        if not tcp:  # truncated: the client asks again over TCP
            return struct.pack("!HHHHHH", ident, 0x8380 | (flags & 0x0100), 1, 0, 0, 0) + question
        header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100), 1, 10_000, 0, 0)
        room = (65_535 - len(header) - len(question)) // 16
        records = b"".join(
            b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 1, 4) + struct.pack("!I", 0x7F010001 + i)
            for i in range(room)
        )
        return header + question + records

    def _serve_udp(self) -> None:
        while not self._closed:
            try:
                query, peer = self._udp.recvfrom(4096)
                self._udp.sendto(self._answer(query, tcp=False), peer)
            except OSError:
                return

    def _serve_tcp(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._tcp.accept()
            except OSError:
                return
            with conn:
                try:
                    size = struct.unpack("!H", _read_exactly(conn, 2))[0]
                    answer = self._answer(_read_exactly(conn, size), tcp=True)
                    conn.sendall(struct.pack("!H", len(answer)) + answer)
                except (OSError, struct.error):
                    continue


def _udp_and_tcp_on_one_port() -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on the same loopback port (a resolver listens on both):
    the UDP port is ephemeral, and the same TCP port may be taken, so try again on another."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        return udp, tcp
    raise OSError("no port free for both UDP and TCP")


def _question(query: bytes) -> bytes:
    end = 12
    while query[end]:
        end += query[end] + 1
    return query[12 : end + 5]  # the name, its root label, type and class


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


async def test_an_answer_claiming_10000_records_is_a_diagnostic(tmp_path: Path) -> None:
    # The "DNS answer with 10,000 records": no DNS message can carry them (64 KiB), so
    # the answer that claims them is malformed. It becomes the provider's error; the last good
    # servers keep serving, and the gateway neither crashes nor drops a request.
    port, gw_port = free_port(), free_port()
    resolver = HostileResolver("127.0.0.2")
    try:
        path = tmp_path / "gateway.hcl"
        path.write_text(
            ONE_NAME.format(port=gw_port, resolver=f"127.0.0.1:{resolver.port}", backend_port=port)
        )
        async with (
            backend(host="127.0.0.2", port=port) as a,
            Gateway(str(path)) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(
                lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.2:{port}", 1)], timeout=20
            )
            providers = gateway.providers
            assert providers is not None
            resolver.huge = True
            await eventually(lambda: "llm.test" in (providers.status["dns"].last_error or ""), timeout=30)
            # dnspython refuses the message ("DNS message is malformed"): no server answered,
            # so the source is lost and retried with backoff, its last servers kept.
            assert providers.status["dns"].state == "lost"
            assert "malformed" in (providers.status["dns"].last_error or "")
            for _ in range(5):
                assert (await client.get("/json")).status_code == 200
            assert weighted(gateway, "llm@dns") == [(f"http://127.0.0.2:{port}", 1)]
            assert len(a.seen) == 5
            resolver.huge = False  # a good answer again: the provider recovers on its own
            await eventually(lambda: providers.status["dns"].state == "ok", timeout=30)
    finally:
        resolver.close()
