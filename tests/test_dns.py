"""DNS, the first real user of UDP entrypoints: dnsmasq behind the gateway, dnspython in front.

A, AAAA, SRV and TXT answers come back through a UDP entrypoint; a dnsmasq killed mid-test is
marked (passive health) and the queries go to the other one; DNS over TCP goes through a TCP
entrypoint on the same port to the same servers; examples/dns.hcl runs.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.message
import pytest
import sniffio

from .dns_peers import RECORDS, dnsmasq, free_port_both
from .tcp_peers import gateway_process, local_example, serving
from .udp_peers import free_udp_port

pytestmark = pytest.mark.anyio


def dns_config(port: int, servers: list[int], *, tcp_port: int | None = None, lb: str = "") -> str:
    addresses = ", ".join(f'{{ address = "127.0.0.1:{p}" }}' for p in servers)
    text = f"""
entrypoints "dns" {{
  address  = "127.0.0.1:{port}"
  protocol = "udp"
}}
udp_routers "dns" {{ service = "dns" }}
services "dns" {{
  load_balancer {{
    servers = [{addresses}]
    {lb}
  }}
}}
"""
    if tcp_port is not None:
        text += f"""
entrypoints "dns-tcp" {{
  address  = "127.0.0.1:{tcp_port}"
  protocol = "tcp"
}}
tcp_routers "dns" {{ service = "dns" }}
"""
    return text


async def query(port: int, name: str, rdtype: str, *, tcp: bool = False, timeout: float = 5) -> list[str]:
    message = dns.message.make_query(name, rdtype)
    # dnspython caches the first event loop library it sees: name the running one.
    backend = dns.asyncbackend.get_backend(sniffio.current_async_library())
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    answer = await send(message, "127.0.0.1", port=port, timeout=timeout, backend=backend)
    return [record.to_text() for rrset in answer.answer for record in rrset]


async def test_a_aaaa_srv_and_txt_answers_come_back_through_a_udp_entrypoint(tmp_path: Path) -> None:
    with dnsmasq("a") as server:
        port = free_udp_port()
        async with serving(tmp_path, dns_config(port, [server.port])) as gateway:
            await wait_answering(port)
            for (name, rdtype), expected in RECORDS.items():
                assert await query(port, name, rdtype) == [expected], (name, rdtype)
            assert await query(port, "who.test", "TXT") == ['"a"']
            stats = gateway.health()["entrypoints"]["dns"]
            # dnspython asks each query from a new source port: one session per query.
            assert stats["created"] >= len(RECORDS) + 1 and stats["datagrams_out"] >= len(RECORDS) + 1


async def test_a_dns_server_killed_mid_test_fails_over_to_the_other(tmp_path: Path) -> None:
    with dnsmasq("a") as a, dnsmasq("b") as b:
        port = free_udp_port()
        text = dns_config(port, [a.port, b.port], lb="passive_health { max_failures = 1 }")
        async with serving(tmp_path, text) as gateway:
            await wait_answering(port)
            seen = {(await query(port, "who.test", "TXT"))[0] for _ in range(4)}
            assert seen == {'"a"', '"b"'}  # round robin over both
            a.kill()
            # A query whose session picked the dead server is lost (ICMP port unreachable); the
            # resolver's retry goes to a new session, and the dead server is marked meanwhile.
            answers = [await query_with_retries(port, "who.test", "TXT") for _ in range(6)]
            assert answers == [['"b"']] * 6
            # The kernel rate-limits ICMP errors (net.ipv4.icmp_ratelimit), so the refusal that
            # marks the dead server may take a few more queries to surface.
            backends = {x.url: x for x in gateway.graph.tcp_services["dns"].backends}
            dead = backends[f"127.0.0.1:{a.port}"]
            for _ in range(30):
                if not dead.healthy:
                    break
                assert await query_with_retries(port, "who.test", "TXT") == ['"b"']
            assert not dead.healthy
            assert await query(port, "app.test", "A", timeout=2) == ["10.0.0.1"]  # first try now


async def test_dns_over_tcp_goes_through_a_tcp_entrypoint_on_the_same_port(tmp_path: Path) -> None:
    with dnsmasq("a") as server:
        port = free_port_both()  # free for UDP and for TCP
        text = dns_config(port, [server.port], tcp_port=port)
        async with serving(tmp_path, text) as gateway:
            await wait_answering(port)
            assert await query(port, "app.test", "A", tcp=True) == ["10.0.0.1"]
            assert await query(port, "txt.test", "TXT", tcp=True) == ['"hello from dnsmasq"']
            assert await query(port, "app.test", "A") == ["10.0.0.1"]  # and UDP, same port
            assert set(gateway.addresses()) == {"dns", "dns-tcp"}


async def test_the_dns_example_runs(tmp_path: Path) -> None:
    """examples/dns.hcl, run as `a3s-gateway run` runs it, on local ports."""
    with dnsmasq("one") as one, dnsmasq("two") as two:
        port = free_port_both()  # the example serves UDP and TCP on one port
        replacements = [
            ("0.0.0.0:5353", f"127.0.0.1:{port}"),
            ("10.0.3.10:53", f"127.0.0.1:{one.port}"),
            ("10.0.3.11:53", f"127.0.0.1:{two.port}"),
        ]
        async with gateway_process(tmp_path, "dns.hcl", local_example("dns.hcl", replacements)):
            await wait_answering(port, timeout=30)
            assert await query(port, "v6.test", "AAAA") == ["fd00::1"]
            assert await query(port, "_api._tcp.app.test", "SRV", tcp=True) == ["0 0 8080 app.test."]


async def wait_answering(port: int, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while True:
            try:
                await query(port, "app.test", "A", timeout=0.5)
                return
            except dns.exception.Timeout:
                continue


async def query_with_retries(port: int, name: str, rdtype: str) -> list[str]:
    """A stub resolver's behaviour: a new query (new source port) after a short timeout."""
    for _ in range(10):
        try:
            return await query(port, name, rdtype, timeout=0.5)
        except dns.exception.Timeout:
            continue
    raise AssertionError(f"no answer for {name} {rdtype}")
