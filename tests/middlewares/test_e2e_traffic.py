"""End to end: rate-limit, rate-limit-redis, body-limit, retry, circuit-breaker, compress and
tcp-filter configured in HCL, compiled, served by a running Gateway and called with httpx.

The backend is a small h11 server started in the test: it records what it received (including a
request body cut short) and answers through a function of the test, which may stream its body,
so a test can hold the next chunk back until the client has decoded the previous one.
rate-limit-redis runs two `a3s-gateway run` processes against one real redis-server.
"""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import brotli
import h11
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from ..stubs import eventually, free_port, free_ports

pytestmark = pytest.mark.anyio

Body = bytes | AsyncIterator[bytes]
Reply = tuple[int, list[tuple[str, str]], Body]


@dataclass
class Seen:
    """One request as the backend received it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""
    complete: bool = False


@dataclass
class Backend:
    port: int
    seen: list[Seen] = field(default_factory=list)


Answer = Callable[[Seen], Awaitable[Reply]]


async def ok(seen: Seen) -> Reply:
    return 200, [("content-type", "text/plain"), ("content-length", "2")], b"ok"


@asynccontextmanager
async def backend(answer: Answer = ok) -> AsyncIterator[Backend]:
    """An HTTP/1.1 server (h11: keep-alive, chunked or sized bodies both ways) answering with `answer`."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    state = Backend(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def receive(conn: h11.Connection, stream: anyio.abc.ByteStream) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                conn.receive_data(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                conn.receive_data(b"")

    async def connection(stream: anyio.abc.ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while True:
                    event = await receive(conn, stream)
                    if not isinstance(event, h11.Request):
                        return
                    seen = Seen(event.method.decode(), event.target.decode(), {})
                    seen.headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                    state.seen.append(seen)
                    while isinstance(event := await receive(conn, stream), h11.Data):
                        seen.body += event.data
                    seen.complete = isinstance(event, h11.EndOfMessage)
                    status, headers, body = await answer(seen)
                    await stream.send(conn.send(h11.Response(status_code=status, headers=headers)))
                    chunks = [body] if isinstance(body, bytes) else body
                    async for chunk in _aiter(chunks):
                        if chunk:
                            await stream.send(conn.send(h11.Data(data=chunk)))
                    await stream.send(conn.send(h11.EndOfMessage()))
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, h11.ProtocolError):
            pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, connection)
        yield state
        tg.cancel_scope.cancel()


async def _aiter(chunks: list[bytes] | AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if isinstance(chunks, list):
        for chunk in chunks:
            yield chunk
    else:
        async for chunk in chunks:
            yield chunk


def config_text(port: int, backend_port: int, middlewares: str, names: str = '"mw"') -> str:
    return f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}

routers "all" {{
  rule        = "PathPrefix(`/`)"
  service     = "backend"
  middlewares = [{names}]
}}

services "backend" {{
  load_balancer {{
    servers = [{{ url = "http://127.0.0.1:{backend_port}" }}]
  }}
}}
{middlewares}
"""


@asynccontextmanager
async def gateway(
    tmp_path: Path, be: Backend, middlewares: str, names: str = '"mw"'
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """A Gateway in front of `be` with `middlewares` (HCL) on its one router; yields it and a client."""
    port = free_port()
    path = tmp_path / "gateway.hcl"
    path.write_text(config_text(port, be.port, middlewares, names))
    async with (
        Gateway(str(path)) as gw,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        yield gw, client


# --------------------------------------------------------------------------- rate-limit


async def test_rate_limit(tmp_path: Path) -> None:
    config = """
middlewares "mw" {
  type   = "rate-limit"
  rate   = 1
  burst  = 2
  period = "1h"
}
"""
    async with backend() as be, gateway(tmp_path, be, config) as (gw, client):
        first, second = await client.get("/a"), await client.get("/b")
        assert (first.status_code, second.status_code) == (200, 200)
        assert first.headers["ratelimit-limit"] == "2" and first.headers["ratelimit-remaining"] == "1"
        await gw.reload()  # an unchanged middleware keeps its buckets across a reload
        refused = await client.get("/c")
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "rate_limited"
        assert int(refused.headers["retry-after"]) > 0 and refused.headers["ratelimit-remaining"] == "0"
        assert [s.target for s in be.seen] == ["/a", "/b"]


# --------------------------------------------------------------------------- rate-limit-redis


def _gateway_command() -> list[str]:
    script = Path(sys.executable).with_name("a3s-gateway")
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from a3s_gateway.runtime.cli import main; main()"]
    )


async def _listening(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_rate_limit_redis_holds_across_two_gateway_processes(tmp_path: Path, redis_url: str) -> None:
    config = f"""
middlewares "mw" {{
  type       = "rate-limit-redis"
  rate       = 1
  burst      = 4
  period     = "1h"
  redis_url  = "{redis_url}"
  key_prefix = "e2e:{uuid.uuid4().hex}:"
}}
"""
    async with backend() as be:
        ports = free_ports(2)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for n, port in enumerate(ports):
                path = tmp_path / f"gateway-{n}.hcl"
                path.write_text(config_text(port, be.port, config))
                cmd = [*_gateway_command(), "run", "--config", str(path)]
                procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            with anyio.fail_after(30):
                for port, proc in zip(ports, procs, strict=True):
                    while not await _listening(port):
                        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                        await anyio.sleep(0.05)
            statuses: list[int] = []
            async with httpx.AsyncClient(timeout=10) as client:
                for i in range(10):
                    response = await client.get(f"http://127.0.0.1:{ports[i % 2]}/")
                    statuses.append(response.status_code)
            assert statuses.count(200) == 4 and statuses.count(429) == 6, statuses
            assert len(be.seen) == 4
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# --------------------------------------------------------------------------- body-limit


async def test_body_limit(tmp_path: Path) -> None:
    config = """
middlewares "mw" {
  type           = "body-limit"
  max_body_bytes = 1000
}
"""

    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"x" * 300

    async with backend() as be, gateway(tmp_path, be, config) as (_, client):
        refused = await client.post("/sized", content=b"x" * 1001)
        assert refused.status_code == 413 and refused.json()["error"]["type"] == "payload_too_large"
        assert be.seen == []  # refused from Content-Length before anything was read or sent
        accepted = await client.post("/small", content=chunks(3))
        assert accepted.status_code == 200 and be.seen[-1].body == b"x" * 900 and be.seen[-1].complete
        cut = await client.post("/streamed", content=chunks(5))
        assert cut.status_code == 413
        await eventually(lambda: len(be.seen) == 2 and be.seen[-1].target == "/streamed")
        assert not be.seen[-1].complete and len(be.seen[-1].body) <= 1000  # the backend saw an aborted upload


# --------------------------------------------------------------------------- retry


async def test_retry(tmp_path: Path) -> None:
    config = """
middlewares "mw" {
  type              = "retry"
  max_retries       = 3
  retry_interval_ms = 5
}
"""
    attempts: dict[str, int] = {}

    async def flaky(seen: Seen) -> Reply:
        attempts[seen.target] = attempts.get(seen.target, 0) + 1
        status = 503 if attempts[seen.target] < 3 else 200
        return status, [("content-length", str(len(seen.body)))], seen.body

    async with backend(flaky) as be, gateway(tmp_path, be, config) as (_, client):
        response = await client.post("/v1/chat/completions", json={"model": "m", "messages": []})
        assert response.status_code == 200 and response.json() == {"model": "m", "messages": []}
        assert [s.target for s in be.seen] == ["/v1/chat/completions"] * 3
        assert len({s.body for s in be.seen}) == 1  # the same body each time


# --------------------------------------------------------------------------- circuit-breaker


async def test_circuit_breaker(tmp_path: Path) -> None:
    config = """
middlewares "mw" {
  type              = "circuit-breaker"
  failure_threshold = 2
  cooldown_secs     = 60
  success_threshold = 1
}
"""

    async def failing(seen: Seen) -> Reply:
        return 500, [("content-length", "4")], b"boom"

    async with backend(failing) as be, gateway(tmp_path, be, config) as (_, client):
        statuses = [(await client.get("/")).status_code for _ in range(2)]
        refused = await client.get("/")
        assert statuses == [500, 500] and refused.status_code == 503
        assert refused.json()["error"]["type"] == "circuit_open"
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert len(be.seen) == 2


async def test_circuit_breaker_per_backend_steers_traffic_away(tmp_path: Path) -> None:
    """per_backend: the failing backend's circuit opens and the balancer stops choosing it."""

    async def failing(seen: Seen) -> Reply:
        return 500, [("content-length", "4")], b"boom"

    async with backend(failing) as bad, backend() as good:
        port = free_port()
        path = tmp_path / "gateway.hcl"
        path.write_text(
            config_text(port, bad.port, "", '"mw"').replace(
                f'servers = [{{ url = "http://127.0.0.1:{bad.port}" }}]',
                f'servers = [{{ url = "http://127.0.0.1:{bad.port}" }}, {{ url = "http://127.0.0.1:{good.port}" }}]',
            )
            + 'middlewares "mw" {\n  type = "circuit-breaker"\n  failure_threshold = 2\n'
            "  cooldown_secs = 60\n  per_backend = true\n}\n"
        )
        async with (
            Gateway(str(path)),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):
            statuses = [(await client.get("/")).status_code for _ in range(12)]
        # Round robin alternates until the bad backend has failed twice; then only the good one answers.
        assert len(bad.seen) == 2
        assert statuses.count(500) == 2 and statuses.count(200) == 10


# --------------------------------------------------------------------------- compress

TEXT = b'{"object": "list", "data": [' + b'{"id": "model", "owned_by": "a3s"},' * 100 + b"{}]}"


async def test_compress_negotiates_and_compresses(tmp_path: Path) -> None:
    async def json_reply(seen: Seen) -> Reply:
        return 200, [("content-type", "application/json"), ("content-length", str(len(TEXT)))], TEXT

    decoders = {"br": brotli.decompress, "gzip": gzip.decompress, "deflate": zlib.decompress}
    config = 'middlewares "mw" {\n  type = "compress"\n}\n'
    async with backend(json_reply) as be, gateway(tmp_path, be, config) as (_, client):
        for accept, coding in [
            ("gzip, deflate, br", "br"),
            ("gzip;q=1, br;q=0.5", "gzip"),
            ("deflate", "deflate"),
        ]:
            async with client.stream("GET", "/v1/models", headers={"accept-encoding": accept}) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            assert response.headers["content-encoding"] == coding and "content-length" not in response.headers
            assert response.headers["vary"] == "Accept-Encoding"
            assert decoders[coding](raw) == TEXT
        plain = await client.get("/v1/models", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == TEXT


async def test_compress_keeps_sse_unbuffered(tmp_path: Path) -> None:
    events = [b'data: {"choices": [{"delta": {"content": "tok%d"}}]}\n\n' % i for i in range(4)]
    decoded = [anyio.Event() for _ in events]

    async def sse(seen: Seen) -> Reply:
        async def stream() -> AsyncIterator[bytes]:
            for i, event in enumerate(events):
                yield event
                await decoded[i].wait()  # the next token exists only once the client read this one

        return 200, [("content-type", "text/event-stream"), ("cache-control", "no-cache")], stream()

    config = 'middlewares "mw" {\n  type = "compress"\n}\n'
    async with backend(sse) as be, gateway(tmp_path, be, config) as (_, client):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        text = b""
        with anyio.fail_after(10):  # anything buffering would deadlock here
            async with client.stream("GET", "/v1/chat", headers={"accept-encoding": "gzip"}) as response:
                assert response.headers["content-encoding"] == "gzip"
                async for chunk in response.aiter_raw():
                    text += decoder.decompress(chunk)
                    for i, event in enumerate(events):
                        if text.endswith(event) and not decoded[i].is_set():
                            decoded[i].set()
        assert text == b"".join(events)


# --------------------------------------------------------------------------- tcp-filter


def _tcp_filter_config(port: int, backend_port: int, allowed: str) -> str:
    return f"""
entrypoints "db" {{
  address  = "127.0.0.1:{port}"
  protocol = "tcp"
}}

routers "db" {{
  rule        = "HostSNI(`*`)"
  service     = "db"
  entrypoints = ["db"]
  middlewares = ["guard"]
}}

services "db" {{
  load_balancer {{
    servers = [{{ address = "127.0.0.1:{backend_port}" }}]
  }}
}}

middlewares "guard" {{
  type            = "tcp-filter"
  max_connections = 1
  allowed_ips     = [{allowed}]
}}
"""


async def test_tcp_filter_limits_connections_and_addresses(tmp_path: Path) -> None:
    """The A3S spelling (`routers` on a TCP entrypoint) with tcp-filter, served for real."""
    from ..tcp_peers import echo_server

    async with echo_server() as echo:
        path = tmp_path / "tcp.hcl"
        port = free_port()
        path.write_text(_tcp_filter_config(port, echo.port, '"127.0.0.0/8", "::1"'))
        async with Gateway(str(path)) as gateway:
            await _check_tcp_filter(port)
            # The first connection closed: its place is free again.
            await eventually(lambda: echo.open == 0)
            await _check_tcp_filter(port)
            # An address outside allowed_ips: closed before the backend is connected.
            path.write_text(_tcp_filter_config(port, echo.port, '"10.0.0.0/8"'))
            await gateway.reload()
            before = echo.connections
            async with await anyio.connect_tcp("127.0.0.1", port) as refused:
                with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await refused.send(b"not allowed")
                    await refused.receive()
            assert echo.connections == before
            stats = gateway.graph.tcp_filters["guard"].statistics()
            assert stats["refused_ip"] == 1 and stats["active"] == 0


async def _check_tcp_filter(port: int) -> None:
    async with await anyio.connect_tcp("127.0.0.1", port) as first:
        await first.send(b"ping")
        assert await first.receive() == b"ping"
        async with await anyio.connect_tcp("127.0.0.1", port) as second:  # over max_connections
            with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await second.send(b"over the limit")
                await second.receive()
