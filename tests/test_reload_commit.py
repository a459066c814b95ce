"""A reload is a diff and one swap (docs/lifecycle.md): built aside, committed only once nothing
can fail any more, and the old generation's resources kept until its last stream ends.

* A reload that fails after the build (a new entrypoint on a port in use) changes nothing: the
  old generation's health checks probe the same paths of the same backends, its pool, its
  listener and the connections open on it, and its scaler are all as they were.
* An entrypoint that keeps its address keeps its socket and its connections: new settings apply
  to the connections accepted after the reload, open ones keep theirs.
* A mirror shadow keeps its generation in flight, so what it uses stays open until it ends.
* A stream stays open across reloads that change the entrypoint's timeouts, the service's proxy
  settings and the scaler's executor, long after drain_timeout (which bounds a shutdown only);
  so does a gRPC stream on a retired HTTP/2 upstream connection.
* A failed reload keeps the metrics registry, the access-log writer, the OTLP exporter and the
  cache store it had, and the TCP connections and UDP sessions open across it go on.
"""

from __future__ import annotations

import json
import queue
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import anyio
import grpc
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway, State

from .backends import Backend, RawClient, backend, get
from .otlp_collector import otlp_collector
from .stubs import eventually, free_port, free_ports, json_stub
from .tcp_peers import echo_server, read_exactly
from .test_grpc import _OPTIONS, SERVICE, _call, _handlers, run
from .test_scaling_e2e import BACKEND, front_of, process_block
from .udp_peers import free_udp_port, udp_echo

pytestmark = pytest.mark.anyio


def _request(target: str = "/json") -> bytes:
    return f"GET {target} HTTP/1.1\r\nhost: gw.test\r\n\r\n".encode()


def _probes(server: Backend, path: str) -> int:
    return sum(1 for seen in server.seen if seen.target == path)


def failing_pair(port: int, busy: int, a: str, b: str) -> tuple[str, str]:
    """A config serving backend `a`, and one that moves everything to `b` but cannot bind."""
    first = f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}
routers "scaled" {{
  rule    = "PathPrefix(`/scaled`)"
  service = "scaled"
}}
services "llm" {{
  load_balancer {{
    servers = [{{ url = "{a}" }}]
    health_check {{
      path     = "/health-a"
      interval = "20ms"
    }}
  }}
}}
services "scaled" {{
  load_balancer {{ servers = [{{ url = "{a}" }}] }}
  scaling {{
    min_replicas   = 1
    buffer_timeout = "10s"
    executor       = "static"
  }}
}}
"""
    second = (
        first.replace(a, b)
        .replace("/health-a", "/health-b")
        .replace('buffer_timeout = "10s"', 'buffer_timeout = "20s"')
        .replace(
            f'address = "127.0.0.1:{port}" }}',
            f'address = "127.0.0.1:{port}"\n  timeouts {{ idle = "5s" }} }}\n'
            f'entrypoints "more" {{ address = "127.0.0.1:{busy}" }}',
        )
    )
    return first, second


async def test_a_reload_that_fails_to_bind_changes_nothing(tmp_path: Path) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        async with backend() as a, backend() as b:
            first, second = failing_pair(port, busy, a.url, b.url)
            path.write_text(first)
            async with Gateway(str(path)) as gateway, RawClient.connect(port) as client:
                await client.send(_request())
                assert (await client.read_response()).status == 200
                before = gateway.graph
                health = gateway.store.get("service:llm", slot="service").health
                pool = gateway.store.get("proxy:llm")
                scaler = front_of(gateway, "scaled").scaler
                assert scaler is not None
                keys = gateway.store.keys()
                listener = gateway._entrypoints.listeners["web"]
                connects = pool.statistics().pools[0].connects

                path.write_text(second)
                with pytest.raises(OSError):
                    await gateway.reload()

                assert gateway.state() is State.RUNNING and gateway.graph is before
                assert gateway.store.keys() == keys
                # Health: same checker, same path, same backends judged.
                assert health.active.config.path == "/health-a"
                probes = _probes(a, "/health-a")
                await eventually(lambda: _probes(a, "/health-a") >= probes + 3)
                assert b.seen == []  # never probed, never sent anything
                # The listener, and the connection open on it, serve on.
                assert gateway._entrypoints.listeners == {"web": listener}
                assert listener.server.statistics().accepting
                await client.send(_request())
                reply = await client.read_response()
                assert reply.status == 200 and reply.header("x-backend") == "yes"
                # The pool is the same and still pooling (no new connection for that request).
                assert gateway.store.get("proxy:llm") is pool
                assert pool.statistics().pools[0].connects == connects
                # The scaler kept its limits.
                assert front_of(gateway, "scaled").scaler is scaler
                assert scaler.scaling.buffer_timeout == 10.0
                assert b.seen == []


def one_service(port: int, url: str, service: str = "llm", inside: str = "") -> str:
    """Entrypoint `web` on `port`, every path routed to `service`, whose one server is `url`;
    `inside` goes in the service block."""
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "{service}"
}}
services "{service}" {{
  load_balancer {{ servers = [{{ url = "{url}" }}] }}
{inside}}}
"""


async def test_an_entrypoint_that_keeps_its_address_keeps_its_socket_and_connections(tmp_path: Path) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    async with backend() as a:
        text = one_service(port, a.url)
        path.write_text(text)
        async with Gateway(str(path)) as gateway, RawClient.connect(port) as old:
            await old.send(_request())
            assert (await old.read_response()).status == 200
            listener = gateway._entrypoints.listeners["web"]

            # A short idle timeout from now on: for new connections only.
            path.write_text(text.replace(f'{port}" }}', f'{port}"\n  timeouts {{ idle = "0.2s" }} }}', 1))
            plan = await gateway.reload()
            assert "entrypoint:web" in plan.changed
            assert gateway._entrypoints.listeners["web"] is listener
            async with RawClient.connect(port) as new:
                await new.send(_request())
                assert (await new.read_response()).status == 200
                with anyio.fail_after(10):
                    assert await new.at_eof()  # cut by the new idle timeout
            # The connection accepted before the reload kept its own (60 s) idle timeout.
            await old.send(_request())
            assert (await old.read_response()).status == 200

            # Renamed on the same address: the socket, and the connection, change hands.
            path.write_text(text.replace('"web"', '"www"'))
            plan = await gateway.reload()
            assert plan.added == ("entrypoint:www",) and plan.removed == ("entrypoint:web",)
            assert gateway._entrypoints.listeners == {"www": listener}
            await old.send(_request())
            assert (await old.read_response()).status == 200


async def test_a_mirror_shadow_keeps_its_generation_in_flight(tmp_path: Path) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    release, arrived = threading.Event(), threading.Event()

    def slow_shadow(method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        arrived.set()
        release.wait(30)
        return 200, {"shadow": True}

    with (
        json_stub(lambda *_: (200, {"primary": True})) as primary,
        json_stub(slow_shadow) as shadow,
    ):
        mirror = '  mirror {\n    service    = "shadow"\n    percentage = 100\n  }\n'
        shadow_service = (
            f'services "shadow" {{\n  load_balancer {{ servers = [{{ url = "{shadow}" }}] }}\n}}\n'
        )
        path.write_text(one_service(port, primary, "main", mirror) + shadow_service)
        try:
            async with Gateway(str(path)) as gateway, httpx.AsyncClient(trust_env=False) as client:
                first = gateway.graph
                policy = first.services["main"].mirror
                assert policy is not None
                response = await client.get(f"http://127.0.0.1:{port}/x")
                assert response.json() == {"primary": True}
                await eventually(arrived.is_set)
                # The primary exchange is over; the shadow still counts.
                assert first.active == 1
                # A reload that drops the mirror and its shadow service retires the shadow's
                # pool, which must stay open until the shadow ends.
                path.write_text(one_service(port, primary, "main"))
                await gateway.reload()
                assert first.active == 1
                release.set()
                await eventually(lambda: first.active == 0 and policy.in_flight == 0)
                assert policy.stats.failed == 0 and policy.stats.abandoned == 0
        finally:
            release.set()


def streaming_config(port: int, *, name: str, idle: str, connect: str) -> str:
    command = f"{sys.executable} {BACKEND} --port {{port}} --name {name} --events 60 --event-gap 0.05"
    return f"""
shutdown_timeout_secs = 0.3

entrypoints "web" {{
  address = "127.0.0.1:{port}"
  timeouts {{ idle = "{idle}" }}
}}
routers "all" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}
services "llm" {{
  timeouts {{ connect = "{connect}" }}
  scaling {{
    min_replicas   = 1
    max_replicas   = 1
    buffer_timeout = "30s"
    stable_window  = "6s"
    executor       = "process"
    {process_block(command)}
  }}
}}
"""


@pytest.mark.slow
async def test_a_stream_outlives_reloads_of_its_entrypoint_proxy_and_executor(tmp_path: Path) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    path.write_text(streaming_config(port, name="v1", idle="60s", connect="5s"))
    reloads = [
        streaming_config(port, name="v1", idle="61s", connect="5s"),  # the entrypoint's timeouts
        streaming_config(port, name="v1", idle="61s", connect="6s"),  # the service's proxy settings
        streaming_config(port, name="v2", idle="61s", connect="6s"),  # the scaler's executor
    ]
    async with (
        Gateway(str(path)) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False) as client,
    ):
        assert gateway.settings.drain_timeout == 0.3
        async with client.stream("GET", "/sse") as response:
            assert response.status_code == 200
            events = []
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                events.append(line)
                # Each reload while the stream runs, then at least drain_timeout of streaming.
                if len(events) in (5, 15, 25):
                    path.write_text(reloads.pop(0))
                    plan = await gateway.reload()
                    assert plan.changed
        assert [json.loads(e[5:])["i"] for e in events] == list(range(60))
        # The new executor serves new requests.
        reply = await client.get("/hello")
        assert reply.json()["name"] == "v2"


@pytest.fixture(scope="module")
def grpc_backend() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=_OPTIONS)
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


async def test_a_grpc_stream_outlives_the_reload_that_retires_its_upstream_connection(
    tmp_path: Path, grpc_backend: int
) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    text = f"""
shutdown_timeout_secs = 0.2
entrypoints "grpc" {{ address = "127.0.0.1:{port}" }}
routers "echo" {{
  rule    = "PathPrefix(`/{SERVICE}/`)"
  service = "echo"
}}
services "echo" {{
  load_balancer {{ servers = [{{ url = "h2c://127.0.0.1:{grpc_backend}" }}] }}
  timeouts {{ connect = "5s" }}
}}
"""
    path.write_text(text)
    async with Gateway(str(path)) as gateway:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_OPTIONS)
        try:
            outbox: queue.Queue[bytes | None] = queue.Queue()
            call = _call(channel, "stream_stream", "Bidi")(iter(outbox.get, None), timeout=30)
            outbox.put(b"one")
            assert await run(next, call) == b"ONE"
            old_client = gateway.store.get("proxy:echo")
            # New proxy settings: a new upstream client; the old one (and its HTTP/2
            # connection, which carries the call) is retired.
            path.write_text(text.replace('connect = "5s"', 'connect = "6s"'))
            await gateway.reload()
            assert gateway.store.get("proxy:echo") is not old_client
            await anyio.sleep(0.5)  # past drain_timeout, which used to close the old connection
            outbox.put(b"two")
            assert await run(next, call) == b"TWO"
            outbox.put(None)
            assert await run(list, call) == []
            # The call has ended: a new one goes through the new client.
            assert await run(_call(channel, "unary_unary", "Unary"), b"hi", timeout=10) == b"echo:hi"
        finally:
            channel.close()


async def test_a_failed_reload_has_closed_the_sockets_it_bound_when_it_returns(tmp_path: Path) -> None:
    port, extra = free_ports(2)
    path = tmp_path / "gw.hcl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        first = f'entrypoints "web" {{ address = "127.0.0.1:{port}" }}\n'
        path.write_text(first)
        async with Gateway(str(path)) as gateway:
            # "extra" binds (entrypoints bind in name order), then "zbusy" fails.
            path.write_text(
                first + f'entrypoints "extra" {{ address = "127.0.0.1:{extra}" }}\n'
                f'entrypoints "zbusy" {{ address = "127.0.0.1:{busy}" }}\n'
            )
            with pytest.raises(OSError):
                await gateway.reload()
            with socket.socket() as again:
                again.bind(("127.0.0.1", extra))  # free again: not listening, not closing later


async def test_a_request_in_flight_across_a_reload_is_logged_to_the_access_log_it_started_on(
    tmp_path: Path,
) -> None:
    port, path = free_port(), tmp_path / "gw.hcl"
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    async with backend() as be:
        text = one_service(port, be.url) + f'access_log {{ path = "{before}" }}\n'
        path.write_text(text)
        async with Gateway(str(path)) as gateway, RawClient.connect(port) as client:
            await client.send(_request("/sse?n=2"))
            status, _ = await client.read_head()
            assert status == 200 and await client.read_chunk() == b"data: event 0\n\n"
            path.write_text(text.replace(str(before), str(after)))
            await gateway.reload()
            # Time for a log closed too early (at the reload) to write its last lines and stop.
            await anyio.sleep(0.3)
            await be.step()
            assert await client.read_chunk() == b"data: event 1\n\n"
            assert await client.read_chunk() is None
            await get(port, "/json")
    assert [json.loads(line)["path"] for line in before.read_text().splitlines()] == ["/sse?n=2"]
    assert [json.loads(line)["path"] for line in after.read_text().splitlines()] == ["/json"]


def observed_config(
    ports: dict[str, int], url: str, tcp_backend: int, udp_backend: int, log: Path, otlp: str
) -> str:
    """Every kind of long-lived state beside the graph's: a metrics registry, an access-log
    writer, an OTLP exporter, a cache store, a TCP and a UDP entrypoint with their services."""
    return f"""
metrics {{
  prometheus {{ buckets = [0.1, 1] }}
}}
access_log {{ path = "{log}" }}
tracing {{
  otlp {{ endpoint = "{otlp}" }}
}}
entrypoints "web" {{ address = "127.0.0.1:{ports["web"]}" }}
entrypoints "tcp" {{
  address  = "127.0.0.1:{ports["tcp"]}"
  protocol = "tcp"
}}
entrypoints "udp" {{
  address  = "127.0.0.1:{ports["udp"]}"
  protocol = "udp"
}}
middlewares "cache" {{
  type      = "cache"
  max_bytes = "4MB"
}}
routers "all" {{
  rule        = "PathPrefix(`/`)"
  service     = "api"
  middlewares = ["cache"]
}}
tcp_routers "echo" {{
  rule    = "HostSNI(`*`)"
  service = "echo"
}}
udp_routers "echo" {{ service = "udp-echo" }}
services "api" {{
  load_balancer {{ servers = [{{ url = "{url}" }}] }}
}}
services "echo" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{tcp_backend}" }}] }}
}}
services "udp-echo" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:{udp_backend}" }}] }}
}}
"""


async def test_a_failed_reload_changes_no_observer_and_no_l4_session(tmp_path: Path) -> None:
    """A reload that builds a new registry (other buckets), a new access-log writer (another
    path), a new OTLP exporter (another collector) and a new cache store, then cannot bind,
    leaves the running ones in use; the TCP connection and the UDP session open across it go on."""
    web, tcp = free_ports(2)
    ports = {"web": web, "tcp": tcp, "udp": free_udp_port()}
    old_log, new_log, path = tmp_path / "old.log", tmp_path / "new.log", tmp_path / "gw.hcl"
    with (
        socket.socket() as taken,
        json_stub(lambda *_: (200, {"ok": True})) as url,
        otlp_collector() as old_otlp,
        otlp_collector() as new_otlp,
    ):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        async with echo_server() as echo, udp_echo() as uecho:
            first = observed_config(ports, url, echo.port, uecho.port, old_log, old_otlp.url)
            path.write_text(first)
            async with (
                Gateway(str(path)) as gateway,
                await anyio.connect_tcp("127.0.0.1", tcp) as client,
                await anyio.create_connected_udp_socket("127.0.0.1", ports["udp"]) as datagrams,
            ):
                await client.send(b"one")
                assert await read_exactly(client, 3) == b"one"
                await datagrams.send(b"one")
                assert await datagrams.receive() == b"echo:one"
                observers = (gateway.metrics, gateway._access_log, gateway._tracing)
                assert None not in observers
                keys = gateway.store.keys()

                second = (
                    observed_config(ports, url, echo.port, uecho.port, new_log, new_otlp.url)
                    .replace("[0.1, 1]", "[0.2, 2]")
                    .replace('"4MB"', '"8MB"')
                    + f'entrypoints "more" {{ address = "127.0.0.1:{taken.getsockname()[1]}" }}\n'
                )
                path.write_text(second)
                with pytest.raises(OSError):
                    await gateway.reload()

                assert (gateway.metrics, gateway._access_log, gateway._tracing) == observers
                assert gateway.store.keys() == keys
                async with httpx.AsyncClient(trust_env=False) as http:
                    assert (await http.get(f"http://127.0.0.1:{web}/after")).status_code == 200
                await eventually(lambda: "/after" in old_log.read_text())
                assert not new_log.exists() or new_log.read_text() == ""
                await eventually(lambda: len(old_otlp.by_kind("SERVER")) >= 1)
                assert new_otlp.posts == 0
                # The connection and the session opened before go on, on the same backends' sockets.
                await client.send(b"two")
                assert await read_exactly(client, 3) == b"two"
                await datagrams.send(b"two")
                assert await datagrams.receive() == b"echo:two"
                assert echo.connections == 1 and len(uecho.sources) == 1
