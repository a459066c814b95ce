"""The callback path (runtime/callback_path.py) and the general path share connections.

On asyncio and uvloop, the usual request (bodiless, to a route without middlewares, on a plain
HTTP/1.1 connection) is served by the loop's callbacks; anything else is handed to the
connection's coroutine, which gives the connection back afterwards. These tests mix both on one
keep-alive connection, pipelined and not, and check what each request got; the entrypoint's
`direct` count says which path served how many (always 0 on trio, which has no callback path).
The rest of the suite runs the HTTP/1.1 tests through the callback path on asyncio and uvloop
(a `Gateway` on an HCL file, or `tests/backends.py`'s `gateway(proxy_to(...))`, whose server
gets a direct route) and through the general path on trio, with the same assertions.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
import sniffio

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.upstream.client import UpstreamClient

from .backends import RawClient, backend, gateway, proxy_to
from .stubs import eventually, free_port, refusing_port

pytestmark = pytest.mark.anyio


def _config(port: int, upstream: str, dead: str) -> str:
    return f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
routers "plain" {{
  rule    = "PathPrefix(`/plain`)"
  service = "app"
}}
routers "tagged" {{
  rule        = "PathPrefix(`/tagged`)"
  service     = "app"
  middlewares = ["tag"]
}}
routers "sse" {{
  rule    = "Path(`/sse`)"
  service = "app"
}}
routers "gone" {{
  rule    = "PathPrefix(`/gone`)"
  service = "gone"
}}
middlewares "tag" {{
  type             = "headers"
  response_headers = {{ "x-tag" = "general" }}
}}
services "app" {{
  load_balancer {{ servers = [{{ url = "{upstream}" }}] }}
}}
services "gone" {{
  load_balancer {{ servers = [{{ url = "{dead}" }}] }}
}}
"""


def _direct(gateway: Gateway) -> int:
    return int(gateway.health()["entrypoints"]["web"]["direct"])


def _request(target: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nhost: gw.test\r\n{extra}\r\n".encode()


async def test_one_connection_mixes_both_paths_in_order(tmp_path: Path) -> None:
    port = free_port()
    callbacks = sniffio.current_async_library() == "asyncio"
    with refusing_port() as dead:
        async with backend() as be:
            path = tmp_path / "gw.hcl"
            path.write_text(_config(port, be.url, f"http://127.0.0.1:{dead}"))
            async with Gateway(str(path)) as gateway, RawClient.connect(port) as client:
                # One at a time: direct, general (a middleware), direct (HEAD, and a body), direct.
                sequence = [
                    ("/plain/json?n=1", "GET", b""),
                    ("/tagged/json?n=2", "GET", b""),
                    ("/plain/json?n=3", "HEAD", b""),
                    ("/plain/json?n=4", "POST", b"{}"),
                    ("/gone/x", "GET", b""),  # direct, answered 502 by the general writer
                    ("/nowhere", "GET", b""),  # no router: 404 from the general path
                    ("/plain/json?n=5", "GET", b""),
                ]
                statuses = []
                for target, method, body in sequence:
                    length = f"content-length: {len(body)}\r\n" if body else ""
                    await client.send(_request(target, method, length) + body)
                    reply = await client.read_response(method)
                    statuses.append(reply.status)
                    assert (reply.header("x-tag") == "general") == target.startswith("/tagged")
                    if method == "GET" and reply.status == 200:
                        assert f'"target": "{target}"'.encode() in reply.body
                assert statuses == [200, 200, 200, 200, 502, 404, 200]
                # Pipelined in one write: the answers come back in order, whichever path.
                await client.send(
                    _request("/plain/json?p=1")
                    + _request("/tagged/json?p=2")
                    + _request("/plain/json?p=3")
                    + _request("/plain/json?p=4", "POST", "content-length: 2\r\n")
                    + b"{}"
                    + _request("/plain/json?p=5")
                )
                for n in range(1, 6):
                    reply = await client.read_response()
                    assert reply.status == 200
                    assert f"p={n}".encode() in reply.body
                    assert (reply.header("x-tag") == "general") == (n == 2)
                # /plain GET, HEAD and POST (5 alone, 4 pipelined) and /gone took the callback path.
                await eventually(lambda: gateway.graph.active == 0)
                assert _direct(gateway) == (9 if callbacks else 0)
                assert not await _closed_soon(client)


async def _closed_soon(client: RawClient) -> bool:
    """Whether the server closed the connection (it must not: every answer kept it alive)."""
    with anyio.move_on_after(0.2):
        return await client.at_eof()
    return False


async def test_a_client_that_hangs_up_mid_stream_releases_everything(tmp_path: Path) -> None:
    port = free_port()
    with refusing_port() as dead:
        async with backend() as be:
            path = tmp_path / "gw.hcl"
            path.write_text(_config(port, be.url, f"http://127.0.0.1:{dead}"))
            async with Gateway(str(path)) as gateway:
                async with RawClient.connect(port) as client:
                    await client.send(_request("/sse?n=3"))
                    status, _ = await client.read_head()
                    assert status == 200
                    assert b"event 0" in await client.read_until(b"event 0")
                    assert gateway.graph.active == 1
                # Hung up with two events unsent: the generation, the backend's in-flight count
                # and the connection are let go; the next request is served.
                await eventually(lambda: gateway.graph.active == 0)
                service = gateway.graph.services["app"]
                await eventually(lambda: all(b.in_flight == 0 for b in service.backends))
                async with RawClient.connect(port) as client:
                    await client.send(_request("/plain/json"))
                    assert (await client.read_response()).status == 200


async def test_a_request_body_that_comes_in_pieces_goes_up_whole(tmp_path: Path) -> None:
    port = free_port()
    callbacks = sniffio.current_async_library() == "asyncio"
    with refusing_port() as dead:
        async with backend() as be:
            path = tmp_path / "gw.hcl"
            path.write_text(_config(port, be.url, f"http://127.0.0.1:{dead}"))
            async with Gateway(str(path)) as gateway, RawClient.connect(port) as client:
                body = b'{"model":"m","messages":[{"role":"user","content":"' + b"x" * 3000 + b'"}]}'
                head = _request("/plain/json", "POST", f"content-length: {len(body)}\r\n")
                await client.send(head + body[:10])
                await anyio.sleep(0.05)
                await client.send(body[10:2000])
                await anyio.sleep(0.05)
                await client.send(body[2000:] + _request("/plain/json?after"))
                reply = await client.read_response("POST")
                assert reply.status == 200 and json.loads(reply.body)["body"] == body.decode()
                after = await client.read_response()
                assert after.status == 200 and b"after" in after.body
                assert _direct(gateway) == (2 if callbacks else 0)
                assert be.seen[-2].method == "POST"


async def test_a_large_upload_handed_to_the_general_path_arrives_whole() -> None:
    # A chunked upload of many socket reads: its head goes to the connection's task, and the
    # body is the general path's to read, whatever the callbacks were handed meanwhile. (The
    # window where the loop calls them again before that task runs, which uvloop's consecutive
    # reads could open, is closed in CallbackCycle.sink_data; this run does not force it.)
    async with backend() as be:
        client = UpstreamClient()
        try:
            async with (
                gateway(proxy_to(be.url, client)) as server,
                RawClient.connect(server.addresses[0][1]) as raw,
            ):
                chunks = [b"%x\r\n%s\r\n" % (65536, bytes([65 + i % 26]) * 65536) for i in range(24)]
                head = b"POST /upload HTTP/1.1\r\nhost: gw.test\r\ntransfer-encoding: chunked\r\n\r\n"
                await raw.send(head + b"".join(chunks) + b"0\r\n\r\n")
                reply = await raw.read_response("POST")
                assert reply.status == 200
            assert sum(be.uploads) == 24 * 65536
        finally:
            await client.aclose()
