"""WebSocket proxying end to end: the `websockets` library as client and as backend.

The peers run in a child process (tests/ws_peers.py: asyncio-only, and kept off the test
process's GIL), while the gateway runs on the test's anyio backend: asyncio, uvloop and trio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from a3s_gateway.runtime.gateway import Gateway

from .stubs import free_port
from .ws_peer_process import Peers

pytestmark = pytest.mark.anyio


def _config(tmp_path: Path, port: int, backend: int, entrypoint: str = "", router: str = "") -> str:
    path = tmp_path / "ws.hcl"
    path.write_text(
        f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
  {entrypoint}
}}
routers "ws" {{
  rule    = "PathPrefix(`/`)"
  service = "ws"
  {router}
}}
services "ws" {{
  timeouts {{ connect = "30s" }}
  load_balancer {{
    servers = [{{ url = "http://127.0.0.1:{backend}" }}]
  }}
}}
middlewares "key" {{
  type   = "api-key"
  header = "X-API-Key"
  keys   = ["k1"]
}}
"""
    )
    return str(path)


@asynccontextmanager
async def gateway(tmp_path: Path, peers: Peers, entrypoint: str = "", router: str = "") -> AsyncIterator[str]:
    port = free_port()
    async with Gateway(_config(tmp_path, port, peers.port, entrypoint, router)):
        yield f"ws://127.0.0.1:{port}"


async def test_echo_text_binary_and_ping(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers) as url:
        text, binary, ponged, extensions = await peers.run("echo", url=url + "/echo")
    assert (text, bytes(binary), ponged) == ("héllo", b"\x00\x01\xff", True)
    # Extensions are not negotiated through the gateway: frames are relayed uncompressed.
    assert extensions is None
    assert (await peers.run("state"))["extensions"][-1] is None


async def test_one_mebibyte_messages(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers) as url:
        assert await peers.run("big", url=url + "/echo")


async def test_server_initiated_close_reaches_the_client(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers) as url:
        assert await peers.run("server_close", url=url + "/close") == [4001, "server says bye"]


async def test_client_close_code_reaches_the_backend(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers) as url:
        before = len((await peers.run("state"))["closed_codes"])
        await peers.run("client_close", url=url + "/echo")
        assert await peers.backend_closes(before) == 4002


async def test_client_abort_drops_the_backend_connection(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers) as url:
        before = len((await peers.run("state"))["closed_codes"])
        await peers.run("abort", url=url + "/silent")
        assert await peers.backend_closes(before) == 1006


async def test_message_size_limit_closes_with_1009(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers, 'limits { websocket_message = "64KiB" }') as url:
        code, _ = await peers.run("too_big", url=url + "/echo")
    assert code == 1009


async def test_idle_connections_are_closed(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers, 'timeouts { websocket_idle = "300ms" }') as url:
        code, reason = await peers.run("idle", url=url + "/echo")
    assert (code, reason) == (1001, "idle timeout")


async def test_upgrade_runs_the_middleware_chain(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers, router='middlewares = ["key"]') as url:
        assert await peers.run("keyed", url=url + "/echo", key=None) == ["status", 401]
        assert await peers.run("keyed", url=url + "/echo", key="k1") == ["ok", "through"]


async def test_a_thousand_concurrent_connections(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers) as url:
        assert await peers.run("many", url=url + "/echo", n=1000) == 1000


async def test_websocket_over_http2_extended_connect(tmp_path: Path, peers: Peers) -> None:
    """RFC 8441: an h2 client opens a WebSocket on a stream; the backend gets an HTTP/1.1 upgrade."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    from a3s_gateway.runtime.events import WebSocketClose, WebSocketMessage
    from a3s_gateway.runtime.protocols.websocket import WebSocketConnection

    async with gateway(tmp_path, peers) as url:
        port = int(url.rsplit(":", 1)[1])
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(conn.data_to_send())
            events: list[Any] = []

            async def until(pred: Any) -> None:
                with anyio.fail_after(10):
                    while not pred():
                        events.extend(conn.receive_data(await stream.receive()))
                        await stream.send(conn.data_to_send())

            await until(lambda: conn.remote_settings.enable_connect_protocol == 1)
            sid = conn.get_next_available_stream_id()
            conn.send_headers(
                sid,
                [
                    (b":method", b"CONNECT"),
                    (b":protocol", b"websocket"),
                    (b":scheme", b"http"),
                    (b":path", b"/echo"),
                    (b":authority", b"gw.test"),
                    (b"sec-websocket-version", b"13"),
                ],
            )
            await stream.send(conn.data_to_send())
            await until(lambda: any(isinstance(e, h2.events.ResponseReceived) for e in events))
            head = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
            assert dict(head.headers)[b":status"] == b"200"

            ws = WebSocketConnection(client=True, stream_id=sid)
            conn.send_data(sid, ws.send(WebSocketMessage(sid, "over h2")))
            await stream.send(conn.data_to_send())
            got: list[Any] = []

            def frames() -> bool:
                for e in events:
                    if isinstance(e, h2.events.DataReceived):
                        got.extend(ws.receive_data(e.data))
                        conn.acknowledge_received_data(e.flow_controlled_length, sid)
                events[:] = [e for e in events if not isinstance(e, h2.events.DataReceived)]
                return any(isinstance(g, WebSocketClose) for g in got) or any(
                    isinstance(g, WebSocketMessage) for g in got
                )

            await until(frames)
            assert got[0] == WebSocketMessage(sid, "over h2")
            conn.send_data(sid, ws.send(WebSocketClose(sid, 1000, "bye")))
            await stream.send(conn.data_to_send())
            got.clear()
            await until(frames)
            assert got[-1] == WebSocketClose(sid, 1000, "bye")
