"""TCP services and entrypoints beyond the relay: PROXY protocol both ways, TCP health checks,
failover, reload (open connections stay on their generation), and examples/tcp-sni.hcl run."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import anyio
import pytest

from a3s_gateway.compiler import CompileError
from a3s_gateway.runtime.protocols.proxy_protocol import ProxyHeader, encode_proxy_header, parse_proxy_header

from .backends import make_certs
from .stubs import eventually
from .tcp_peers import (
    closed_without_data,
    echo_server,
    free_port,
    gateway_process,
    local_example,
    read_exactly,
    serving,
    talk,
)

pytestmark = pytest.mark.anyio


def gateway_config(port: int, routers: str, services: str, entrypoint: str = "") -> str:
    return f"""
entrypoints "tcp" {{
  address  = "127.0.0.1:{port}"
  protocol = "tcp"
  {entrypoint}
}}
{routers}
{services}
"""


def service(name: str, ports: list[int], extra: str = "", lb: str = "") -> str:
    servers = ", ".join(f'{{ address = "127.0.0.1:{p}" }}' for p in ports)
    return f"""
services "{name}" {{
  load_balancer {{
    servers = [{servers}]
    {lb}
  }}
  {extra}
}}
"""


def router(name: str, rule: str, target: str) -> str:
    return f'tcp_routers "{name}" {{\n  rule = "{rule}"\n  service = "{target}"\n}}\n'


@pytest.mark.parametrize("version", [1, 2])
async def test_proxy_protocol_is_sent_to_the_backend(tmp_path: Path, version: int) -> None:
    async with echo_server() as echo:
        port = free_port()
        text = gateway_config(
            port,
            router("all", "HostSNI(`*`)", "db"),
            service("db", [echo.port], f"proxy_protocol {{ version = {version} }}"),
        )
        async with serving(tmp_path, text):
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                local_port = client.extra(anyio.abc.SocketAttribute.local_port)
                await client.send(b"payload")
                header = encode_proxy_header(version, ("127.0.0.1", local_port), ("127.0.0.1", port))
                assert await read_exactly(client, len(header) + 7) == header + b"payload"
            parsed = parse_proxy_header(echo.firsts[0])
            assert isinstance(parsed, ProxyHeader) and parsed.source == ("127.0.0.1", local_port)


async def test_a_trusted_proxy_header_names_the_client_for_rules_and_filters(tmp_path: Path) -> None:
    async with echo_server("lan") as lan, echo_server("rest") as rest:
        port = free_port()
        routers = router("lan", "ClientIP(`10.9.0.0/16`)", "lan") + router("rest", "HostSNI(`*`)", "rest")
        services = service("lan", [lan.port]) + service("rest", [rest.port])
        proxy = 'proxy_protocol { trusted_ips = ["127.0.0.1"] }\n  tcp_allowed_ips = ["10.0.0.0/8"]'
        async with serving(tmp_path, gateway_config(port, routers, services, proxy)):
            v1 = b"PROXY TCP4 10.9.8.7 127.0.0.1 5555 443\r\n"
            assert await talk(port, v1 + b"from the lan", expect=12) == b"from the lan"
            v2 = encode_proxy_header(2, ("10.1.1.1", 1), ("127.0.0.1", port))
            assert await talk(port, v2 + b"elsewhere", expect=9) == b"elsewhere"
            assert (lan.connections, rest.connections) == (1, 1)
            # tcp_allowed_ips applies to the client the header names.
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"PROXY TCP4 192.0.2.1 127.0.0.1 5555 443\r\nhi")
                assert await closed_without_data(client)
        # An untrusted peer that sends a header is refused.
        port = free_port()
        untrusted = 'proxy_protocol { trusted_ips = ["10.0.0.0/8"] }'
        async with serving(tmp_path, gateway_config(port, routers, services, untrusted)):
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(v1 + b"spoofed")
                assert await closed_without_data(client)
            assert await talk(port, b"no header") == b"no header"  # the peer is the client
            assert rest.connections == 2


async def test_tcp_health_checks_take_a_dead_backend_out_and_failover_takes_over(tmp_path: Path) -> None:
    async with echo_server("a") as a, echo_server("b", greeting=b"+PONG\r\n") as b, echo_server("c") as c:
        port = free_port()
        check = 'health_check {\n interval = "0.1s"\n timeout = "1s"\n send = "PING"\n expect = "+PONG"\n }'
        services = service("main", [a.port, b.port], 'failover { service = "spare" }', lb=check) + service(
            "spare", [c.port]
        )
        async with serving(
            tmp_path, gateway_config(port, router("all", "HostSNI(`*`)", "main"), services)
        ) as gw:
            main = gw.graph.tcp_services["main"]
            # `a` never answers +PONG: the probes take it out of rotation; `b` stays.
            await eventually(lambda: [x.healthy for x in main.backends] == [False, True])
            for _ in range(3):
                assert await talk(port, b"x", expect=8) == b"+PONG\r\nx"
            assert b.connections >= 3
            # `b` goes away too: connections fail over to the spare service.
            assert b.scope is not None
            b.scope.cancel()
            await eventually(lambda: not any(x.healthy for x in main.backends))
            assert await talk(port, b"spare") == b"spare"
            assert c.connections == 1


async def test_reload_keeps_open_connections_on_their_generation(tmp_path: Path) -> None:
    async with echo_server("one") as one, echo_server("two") as two:
        port = free_port()
        path = tmp_path / "gw.hcl"
        path.write_text(
            gateway_config(port, router("all", "HostSNI(`*`)", "one"), service("one", [one.port]))
        )
        from a3s_gateway.runtime.gateway import Gateway

        async with Gateway(str(path)) as gateway:
            async with await anyio.connect_tcp("127.0.0.1", port) as old:
                await old.send(b"before")
                assert await read_exactly(old, 6) == b"before"
                path.write_text(
                    gateway_config(port, router("all", "HostSNI(`*`)", "two"), service("two", [two.port]))
                )
                await gateway.reload()
                # A broken configuration changes nothing.
                path.write_text("entrypoints {")
                with pytest.raises(CompileError):
                    await gateway.reload()
                assert await talk(port, b"new") == b"new"
                assert two.connections == 1
                await old.send(b"after")  # still relayed to `one`, on the generation that accepted it
                assert await read_exactly(old, 5) == b"after"
                assert one.connections == 1
                assert gateway.graph.generation == 2 and len(gateway._previous) == 1
            await eventually(lambda: not gateway._previous)  # the old generation retired once idle


async def test_the_tcp_sni_example_runs(tmp_path: Path) -> None:
    """examples/tcp-sni.hcl, run as `a3s-gateway run` runs it, on local ports and backends."""
    certs = make_certs(tmp_path, ["a.models.internal"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs.leaves["a.models.internal"])
    async with echo_server("a", ssl_context=ctx) as a, echo_server("default") as default:
        port = free_port()
        replacements = [
            ("0.0.0.0:8443", f"127.0.0.1:{port}"),
            (
                '{ address = "10.0.1.10:8443" }, { address = "10.0.1.11:8443" }',
                f'{{ address = "127.0.0.1:{a.port}" }}',
            ),
            ("10.0.2.10:8443", f"127.0.0.1:{default.port}"),
        ]
        async with gateway_process(tmp_path, "tcp-sni.hcl", local_example("tcp-sni.hcl", replacements)):
            await eventually(lambda: _listening(port), timeout=20)
            assert await talk(port, b"plaintext") == b"plaintext"
            client = ssl.create_default_context(cafile=certs.ca_file)
            stream = await anyio.connect_tcp(
                "127.0.0.1", port, tls=True, ssl_context=client, tls_hostname="a.models.internal",
                tls_standard_compatible=False,
            )  # fmt: skip
            async with stream:
                await stream.send(b"encrypted")
                assert await read_exactly(stream, 9) == b"encrypted"
            assert (a.connections, default.connections) == (1, 1)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
