"""websocket_mux (stdlib/services/websocket_mux.py): channels over one client WebSocket.

The envelope codec is pure and tested on its own. The rest runs a real gateway in front of three
WebSocket backend processes (tests/mux_peers.py) and an HTTP backend; the client is the
`websockets` library's sync client, in a worker thread so it runs whatever loop the gateway is on.
The headline test opens 100 channels to three backends on one socket and kills one backend
mid-run: its channels get close envelopes with an error, the others go on.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import bcrypt
import pytest
from websockets.sync.client import ClientConnection, connect

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.services._mux_envelope import Envelope, EnvelopeError, decode, encode

from .stubs import Children, eventually, free_port, json_stub

PEER = Path(__file__).with_name("mux_peers.py")
HASH = {user: bcrypt.hashpw(user.encode(), bcrypt.gensalt(4)).decode() for user in ("alice", "root")}

# --------------------------------------------------------------------------- the envelope


def test_text_envelopes_round_trip() -> None:
    for envelope in (
        Envelope("chat-1", "open"),
        Envelope("chat-1", "data", "héllo"),
        Envelope("x", "data", {"a": [1, 2]}),
        Envelope("x", "close", {"error": "overflow", "reason": "full"}),
    ):
        assert decode(encode(envelope)) == envelope


def test_binary_envelopes_round_trip() -> None:
    envelope = Envelope("bin-é", "data", b"\x00\xff")
    wire = encode(envelope)
    assert wire == b"\x02\x06bin-\xc3\xa9\x00\xff"
    assert decode(wire) == envelope
    assert decode(b"\x01\x01a") == Envelope("a", "open", b"")


@pytest.mark.parametrize(
    ("message", "channel"),
    [
        ("not json", None),
        ("[1]", None),
        ('{"type":"data"}', None),
        ('{"channel":"","type":"data"}', None),
        ('{"channel":"c","type":"shout"}', "c"),
        (b"\x09\x01a", None),
        (b"\x02\x05ab", None),
        (b"\x02\x02\xff\xfe", None),
    ],
)
def test_bad_envelopes_name_their_channel_when_they_can(message: str | bytes, channel: str | None) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode(message)
    assert caught.value.channel == channel


# --------------------------------------------------------------------------- a real gateway


class Peers(Children):
    """WebSocket backend processes by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[str, int] = {}

    def start(self, name: str) -> None:
        port = self.ports[name] = free_port()
        self.spawn(name, [sys.executable, str(PEER), "--name", name, "--port", str(port)])


@pytest.fixture
def peers() -> Iterator[Peers]:
    made = Peers()
    try:
        yield made
    finally:
        made.close()


def _echo(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    if path == "/fail":
        return 500, {"error": "the tool crashed"}
    return 200, {
        "channel": headers.get("x-a3s-channel"),
        "type": headers.get("content-type"),
        "got": body.decode(),
    }


def config(web: int, peers: Peers, http_url: str) -> str:
    services = "\n".join(
        f'services "{n}" {{\n  load_balancer {{ servers = [{{ url = "http://127.0.0.1:{p}" }}] }}\n}}'
        for n, p in peers.ports.items()
    )
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}
middlewares "auth" {{
  type  = "basic-auth"
  users = ["alice:{HASH["alice"]}", "root:{HASH["root"]}"]
}}
routers "mux" {{
  rule        = "Path(`/mux`)"
  service     = "agents"
  middlewares = ["auth"]
}}
{services}
services "echo" {{
  load_balancer {{ servers = [{{ url = "{http_url}" }}] }}
}}
services "agents" {{
  websocket_mux {{
    buffer = 4
    channel "admin" {{
      service     = "a"
      allow_users = ["root"]
    }}
    channel "slow" {{
      service = "a"
      path    = "/silent"
    }}
    channel "http" {{
      service = "echo"
      mode    = "http"
      path    = "/echo"
    }}
    channel "fail" {{
      service = "echo"
      mode    = "http"
      path    = "/fail"
    }}
    channel "a-*" {{ service = "a" }}
    channel "b-*" {{ service = "b" }}
    channel "c-*" {{ service = "c" }}
  }}
}}
"""


@asynccontextmanager
async def running(tmp_path: Path, peers: Peers) -> AsyncIterator[tuple[str, Any]]:
    for name in ("a", "b", "c"):
        peers.start(name)
    web = free_port()
    with json_stub(_echo) as http_url:
        path = tmp_path / "gw.hcl"
        path.write_text(config(web, peers, http_url))
        async with Gateway(str(path)) as gateway:
            mux = gateway.graph.service_kinds["agents"]
            yield f"ws://127.0.0.1:{web}/mux", mux
            # Every session and channel ended with its client's socket.
            await eventually(lambda: mux.statistics() == {"sockets": 0, "channels": 0})


class Client:
    """The sync `websockets` client, speaking envelopes."""

    def __init__(self, url: str, user: str = "alice") -> None:
        token = base64.b64encode(f"{user}:{user}".encode()).decode()
        headers = {"authorization": f"Basic {token}"}
        # What `with connect(...)` does; close() ends it.
        self.ws: ClientConnection = connect(
            url, additional_headers=headers, max_size=None, open_timeout=10
        ).__enter__()

    def send(self, channel: str, kind: str, payload: Any = None) -> None:
        self.ws.send(encode(Envelope(channel, kind, payload)))

    def recv(self) -> Envelope:
        return decode(self.ws.recv(timeout=30))

    def until(self, count: int, keep: Callable[[Envelope], bool] = lambda e: True) -> list[Envelope]:
        """The next `count` envelopes that `keep` accepts (others are dropped)."""
        out: list[Envelope] = []
        while len(out) < count:
            envelope = self.recv()
            if keep(envelope):
                out.append(envelope)
        return out

    def close(self) -> None:
        self.ws.close()


def _in_thread(work: Callable[[], Any]) -> Any:
    return anyio.to_thread.run_sync(work)


@pytest.mark.anyio
async def test_a_hundred_channels_on_three_backends_one_killed(
    anyio_backend: object, tmp_path: Path, peers: Peers
) -> None:
    async with running(tmp_path, peers) as (url, mux):
        names = [f"{'abc'[i % 3]}-{i}" for i in range(100)]

        def phase_one() -> tuple[Client, dict[str, Any]]:
            client = Client(url)
            for name in names:
                client.send(name, "open")
            opened = client.until(100)
            for name in names:
                client.send(name, "data", f"ping {name}")
            replies = client.until(100)
            return client, {"opened": opened, "replies": replies}

        client, seen = await _in_thread(phase_one)
        assert sorted(e.channel for e in seen["opened"]) == sorted(names)
        assert {e.type for e in seen["opened"]} == {"open"}, seen["opened"][:2]
        assert {e.channel: e.payload for e in seen["replies"]} == {n: f"{n[0]}:ping {n}" for n in names}

        assert mux.statistics() == {"sockets": 1, "channels": 100}
        peers.kill("c")
        doomed = {n for n in names if n.startswith("c-")}

        def phase_two() -> dict[str, Any]:
            closes = client.until(len(doomed))
            alive = [n for n in names if n not in doomed]
            for name in alive:
                client.send(name, "data", {"again": name})  # a JSON value goes as its JSON text
            replies = client.until(len(alive))
            client.send(sorted(doomed)[0], "data", "anyone?")
            after = client.recv()
            client.close()
            return {"closes": closes, "replies": replies, "after": after}

        seen = await _in_thread(phase_two)
        await eventually(lambda: mux.statistics()["channels"] == 0)  # the client's close ended them all
        assert {e.channel for e in seen["closes"]} == doomed
        assert {e.type for e in seen["closes"]} == {"close"}
        assert {e.payload["error"] for e in seen["closes"]} == {"backend_failed"}
        alive = [n for n in names if n not in doomed]
        assert {e.channel: e.payload for e in seen["replies"]} == {
            n: f'{n[0]}:{{"again":"{n}"}}' for n in alive
        }
        assert seen["after"] == Envelope(sorted(doomed)[0], "close", seen["after"].payload)
        assert seen["after"].payload["error"] == "not_open"


@pytest.mark.anyio
async def test_channel_errors_close_only_their_channel(
    anyio_backend: object, tmp_path: Path, peers: Peers
) -> None:
    async with running(tmp_path, peers) as (url, _):

        def script() -> dict[str, Any]:
            client = Client(url)
            out: dict[str, Any] = {}
            client.send("a-1", "open")
            out["open"] = client.recv()
            for name in ("admin", "nowhere"):  # not for alice; matches no block
                client.send(name, "open")
                out[name] = client.recv()
            client.send("a-1", "open")  # twice
            out["twice"] = client.recv()
            client.ws.send("{not json")
            out["garbage"] = client.recv()
            client.send("b-1", "open")
            client.recv()
            client.send("b-1", "data", "bye")  # the backend closes with 4001
            out["backend_close"] = client.recv()
            client.send("b-3", "open")
            client.recv()
            client.send("b-3", "data", "last")  # a last message, then the backend closes
            out["last_words"] = client.until(2)
            client.send("b-2", "open")
            client.recv()
            client.ws.send(b"\x02\x03b-2\x00\x01\x02")  # binary in, binary back
            out["binary"] = client.recv()
            client.send("b-2", "close")
            out["closed"] = client.recv()
            client.send("http", "open")
            out["http_open"] = client.recv()
            client.send("http", "data", {"q": 1})
            out["http"] = client.recv()
            client.send("fail", "open")
            client.recv()
            client.send("fail", "data", "x")
            out["fail"] = client.recv()
            client.send("http", "data", "still open?")  # a text payload goes as text/plain
            out["http_again"] = client.recv()
            client.close()
            return out

        out = await _in_thread(script)
    assert out["open"] == Envelope("a-1", "open", None)
    assert out["admin"].payload["error"] == "forbidden"
    assert out["nowhere"].payload["error"] == "unknown_channel"
    assert (out["twice"].channel, out["twice"].payload["error"]) == ("a-1", "already_open")
    assert out["garbage"] == Envelope(None, "close", out["garbage"].payload)
    assert out["garbage"].payload["error"] == "bad_envelope"
    assert out["backend_close"] == Envelope("b-1", "close", {"code": 4001, "reason": "bye from b"})
    assert out["last_words"] == [
        Envelope("b-3", "data", "b:last words"),
        Envelope("b-3", "close", {"code": 4002, "reason": "done"}),
    ]
    assert out["binary"] == Envelope("b-2", "data", b"\x00\x01\x02")
    assert out["closed"] == Envelope("b-2", "close", {"reason": "closed by the client"})
    assert out["http_open"] == Envelope("http", "open", None)
    assert out["http"].type == "data"
    assert json.loads(out["http"].payload) == {
        "channel": "http",
        "type": "application/json",
        "got": '{"q":1}',
    }
    assert out["fail"] == Envelope(
        "fail", "close", {"error": "backend_failed", "reason": "the backend answered 500"}
    )
    assert json.loads(out["http_again"].payload)["type"] == "text/plain; charset=utf-8"


@pytest.mark.anyio
async def test_root_may_open_the_admin_channel(anyio_backend: object, tmp_path: Path, peers: Peers) -> None:
    async with running(tmp_path, peers) as (url, _):

        def script() -> list[Envelope]:
            client = Client(url, user="root")
            client.send("admin", "open")
            client.send("admin", "data", "hi")
            got = client.until(2)
            client.close()
            return got

        assert await _in_thread(script) == [
            Envelope("admin", "open", None),
            Envelope("admin", "data", "a:hi"),
        ]


@pytest.mark.anyio
async def test_a_slow_channel_overflows_alone(anyio_backend: object, tmp_path: Path, peers: Peers) -> None:
    """A backend that never reads: its channel's buffer fills and the channel closes with
    `overflow`, while another channel on the same socket keeps answering."""
    async with running(tmp_path, peers) as (url, _):

        def script() -> tuple[list[Envelope], Envelope]:
            client = Client(url)
            client.send("slow", "open")
            client.send("a-1", "open")
            client.until(2)
            chunk = b"\xab" * (256 * 1024)
            closes: list[Envelope] = []
            for _ in range(400):  # 100 MiB: far past the socket buffers and the 4-message inbox
                client.ws.send(encode(Envelope("slow", "data", chunk)))
                if closes:
                    break
                try:
                    closes.append(decode(client.ws.recv(timeout=0)))
                except TimeoutError:
                    pass
            if not closes:
                closes.append(client.recv())
            client.send("a-1", "data", "still here?")
            reply = client.until(1, lambda e: e.channel == "a-1")[0]
            client.close()
            return closes, reply

        closes, reply = await _in_thread(script)
    assert closes[0].channel == "slow" and closes[0].payload["error"] == "overflow"
    assert reply == Envelope("a-1", "data", "a:still here?")
