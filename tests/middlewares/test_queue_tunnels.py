"""queue: an upgraded request (WebSocket) holds its slot until its tunnel ends, not until the 101.

A real gateway in front of the `websockets` echo backend (tests/ws_peers.py, in a child
process), with real WebSocket clients: `websockets` over HTTP/1.1 in that process, and an RFC
8441 extended CONNECT over HTTP/2 from this one (the h2 library, since `websockets` has no
HTTP/2). The gateway runs on the test's anyio backend (asyncio, uvloop, trio); the queue's
counts are read from its live state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import pytest

from a3s_gateway.runtime.events import WebSocketClose, WebSocketMessage
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.protocols.websocket import WebSocketConnection
from a3s_gateway.stdlib.common.concurrency_queue import QueueState

from ..stubs import eventually, free_port
from ..ws_peer_process import Peers

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def gateway(tmp_path: Path, peers: Peers, queue: str) -> AsyncIterator[tuple[Gateway, str]]:
    port = free_port()
    path = tmp_path / "gateway.hcl"
    path.write_text(f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
  limits {{ websocket_message = "64KiB" }}
}}
routers "ws" {{
  rule        = "PathPrefix(`/`)"
  service     = "ws"
  middlewares = ["queue"]
}}
services "ws" {{
  load_balancer {{ servers = [{{ url = "http://127.0.0.1:{peers.port}" }}] }}
}}
middlewares "queue" {{
  type = "queue"
{queue}
}}
""")
    async with Gateway(str(path)) as gw:
        yield gw, f"ws://127.0.0.1:{port}"


def line_of(gw: Gateway) -> tuple[int, int]:
    """(in flight, waiting) for the service."""
    state = gw.graph.middlewares["queue"].state
    assert isinstance(state, QueueState)
    line = state.statistics().get("ws", {"in_flight": 0, "waiting": {}})
    return line["in_flight"], sum(line["waiting"].values())


async def status_of(peers: Peers, name: str, want: Any) -> None:
    async def reached() -> bool:
        return await peers.run("status", name=name) == want

    with anyio.fail_after(10):
        while not await reached():
            await anyio.sleep(0.02)


async def open_ones(peers: Peers, names: Iterable[str]) -> list[str]:
    """Those of `names` that are open, once one is."""
    with anyio.fail_after(10):
        while True:
            opened = [n for n in names if await peers.run("status", name=n) == "open"]
            if opened:
                return opened
            await anyio.sleep(0.02)


async def end(peers: Peers, name: str, how: str) -> None:
    if how == "kill":
        await peers.run("kill", name=name)
    elif how == "say_big":
        assert await peers.run("say", name=name, text="x" * 100_000) == ["closed", 1009]
    else:
        closed = await peers.run("say", name=name, text="bye")
        assert closed[0] == "closed", closed


async def test_a_websocket_holds_its_slot_until_it_closes(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers, 'max_concurrent = 1\nmax_waiting = 5\ntimeout = "60s"') as (gw, url):
        await peers.run("start", name="first", url=url + "/echo")
        await status_of(peers, "first", "open")
        assert line_of(gw) == (1, 0)

        await peers.run("start", name="second", url=url + "/echo")
        await eventually(lambda: line_of(gw) == (1, 1))  # its handshake waits in the line
        assert await peers.run("say", name="first", text="still here") == "still here"
        assert await peers.run("status", name="second") == "connecting"

        await peers.run("close", name="first")  # the tunnel ends: its slot goes to the waiter
        await status_of(peers, "second", "open")
        assert line_of(gw) == (1, 0)
        assert await peers.run("say", name="second", text="my turn") == "my turn"
        await peers.run("close", name="second")
        await eventually(lambda: line_of(gw) == (0, 0))


async def test_without_a_line_a_second_websocket_is_refused_while_the_first_is_open(
    tmp_path: Path, peers: Peers
) -> None:
    async with gateway(tmp_path, peers, "max_concurrent = 1\nmax_waiting = 0") as (gw, url):
        await peers.run("start", name="only", url=url + "/echo")
        await status_of(peers, "only", "open")
        await peers.run("start", name="refused", url=url + "/echo")
        await status_of(peers, "refused", ["refused", 503])

        await peers.run("close", name="only")
        await eventually(lambda: line_of(gw) == (0, 0))
        await peers.run("start", name="after", url=url + "/echo")
        await status_of(peers, "after", "open")
        await peers.run("close", name="after")


async def test_tunnels_that_fail_give_their_slots_back(tmp_path: Path, peers: Peers) -> None:
    """Every way a tunnel can end but a clean close; afterwards the whole limit is there again,
    and no more than it."""
    async with gateway(tmp_path, peers, 'max_concurrent = 2\nmax_waiting = 10\ntimeout = "60s"') as (gw, url):
        for round in range(3):
            ends = {  # how each tunnel ends, once open
                f"killed{round}": ("/silent", "kill"),  # the client's TCP connection goes
                f"dropped{round}": ("/drop", "say"),  # the backend's TCP connection goes
                f"closed{round}": ("/close", "say"),  # the backend closes it
                f"too_big{round}": ("/echo", "say_big"),  # a message over the limit: 1009
            }
            for name, (path, _) in ends.items():
                await peers.run("start", name=name, url=url + path)
            # Two get their slot, two wait; each end admits a waiter.
            await eventually(lambda: line_of(gw) == (2, 2))
            while ends:
                for name in await open_ones(peers, ends):
                    await end(peers, name, ends.pop(name)[1])
            await eventually(lambda: line_of(gw) == (0, 0))

        # The full limit again: two tunnels at once, and a third waits for one of them.
        for name in ("a", "b", "c"):
            await peers.run("start", name=name, url=url + "/echo")
        await eventually(lambda: line_of(gw) == (2, 1))
        await status_of(peers, "a", "open")
        await status_of(peers, "b", "open")
        assert await peers.run("status", name="c") == "connecting"
        await peers.run("kill", name="a")
        await status_of(peers, "c", "open")
        for name in ("b", "c"):
            await peers.run("close", name=name)
        await eventually(lambda: line_of(gw) == (0, 0))


class H2Client:
    """One HTTP/2 connection to the gateway opening WebSockets as extended CONNECT streams."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.heads: dict[int, int] = {}  # stream id -> :status
        self.frames: dict[int, list[Any]] = {}  # stream id -> WebSocket events received
        self.reset: set[int] = set()
        self._ws: dict[int, WebSocketConnection] = {}

    async def run(self) -> None:
        self.conn.initiate_connection()
        await self.flush()
        while data := await self._receive():
            for event in self.conn.receive_data(data):
                self._on(event)
            await self.flush()

    async def _receive(self) -> bytes:
        try:
            return await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return b""

    def _on(self, event: Any) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.heads[event.stream_id] = int(dict(event.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived):
            self.frames[event.stream_id] += self._ws[event.stream_id].receive_data(event.data)
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.reset.add(event.stream_id)

    async def flush(self) -> None:
        await self.stream.send(self.conn.data_to_send())

    async def websocket(self, path: str) -> int:
        """Open a WebSocket on a new stream (RFC 8441 §4); its answer comes later."""
        await eventually(lambda: self.conn.remote_settings.enable_connect_protocol == 1)
        sid = self.conn.get_next_available_stream_id()
        self._ws[sid] = WebSocketConnection(client=True, stream_id=sid)
        self.frames[sid] = []
        self.conn.send_headers(sid, [
            (b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"),
            (b":path", path.encode()), (b":authority", b"gw.test"), (b"sec-websocket-version", b"13"),
        ])  # fmt: skip
        await self.flush()
        return sid

    async def say(self, sid: int, text: str) -> None:
        self.conn.send_data(sid, self._ws[sid].send(WebSocketMessage(sid, text)))
        await self.flush()
        await eventually(lambda: WebSocketMessage(sid, text) in self.frames[sid])

    async def close(self, sid: int) -> None:
        """The WebSocket close handshake, then the stream's end."""
        self.conn.send_data(sid, self._ws[sid].send(WebSocketClose(sid, 1000, "bye")))
        await self.flush()
        await eventually(lambda: any(isinstance(f, WebSocketClose) for f in self.frames[sid]))

    async def cancel(self, sid: int) -> None:
        self.conn.reset_stream(sid, error_code=8)  # CANCEL
        await self.flush()


async def test_an_http2_websocket_holds_its_slot_until_its_stream_ends(tmp_path: Path, peers: Peers) -> None:
    async with gateway(tmp_path, peers, 'max_concurrent = 1\nmax_waiting = 5\ntimeout = "60s"') as (gw, url):
        port = int(url.rsplit(":", 1)[1])
        async with await anyio.connect_tcp("127.0.0.1", port) as stream, anyio.create_task_group() as tg:
            client = H2Client(stream)
            tg.start_soon(client.run)
            first = await client.websocket("/echo")
            await eventually(lambda: client.heads.get(first) == 200)
            second = await client.websocket("/echo")
            await eventually(lambda: line_of(gw) == (1, 1))
            await client.say(first, "still here")
            assert second not in client.heads

            await client.close(first)  # the handshake completes and the stream ends
            await eventually(lambda: client.heads.get(second) == 200)
            assert line_of(gw) == (1, 0)
            await client.say(second, "my turn")

            third = await client.websocket("/echo")
            await eventually(lambda: line_of(gw) == (1, 1))
            await client.cancel(second)  # RST_STREAM on an open tunnel: it ends, its slot frees
            await eventually(lambda: client.heads.get(third) == 200)
            await client.say(third, "after a reset")
            tg.cancel_scope.cancel()
        # The connection went with a tunnel open on it: nothing stays in flight.
        await eventually(lambda: line_of(gw) == (0, 0))
