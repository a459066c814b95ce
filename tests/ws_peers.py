"""WebSocket peers for the WebSocket tests (tests/test_websocket_proxy.py, the queue's tunnels in
tests/middlewares/test_queue_tunnels.py), in a process of their own.

The `websockets` library is asyncio-only, and running it on a thread of the test process makes
it fight the gateway for the GIL (1,000 connections then take several times as long), so the
backend and the client scripts live in this child process. Protocol on stdin/stdout, one JSON
object per line: the child first prints {"port": N} (the backend), then answers each
{"script": name, "url": ..., **args} with {"result": ...} or {"error": "..."}.

Backend behaviour by path: /echo echoes; /close closes with 4001 after the first message;
/drop drops its TCP connection after the first message (no close frame); /silent waits. Every backend connection records its close code and the extensions it was
offered (`{"script": "state"}` returns them).

Named sessions outlive a script: `start` opens one in the background and returns at once (a
gateway may hold its handshake in a queue), `status` tells how it stands ("connecting",
"open", ["refused", status], "closed" or ["failed", error]), `say` sends a message on it and
returns the echo (or ["closed", code] when the session ends instead), and `close` (a clean close) or `kill` (the TCP connection just goes) ends it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

MiB = 1 << 20
closed_codes: list[int | None] = []
extensions: list[str | None] = []


async def backend(ws: ServerConnection) -> None:
    request = ws.request
    path = request.path if request is not None else "/"
    extensions.append(request.headers.get("sec-websocket-extensions") if request is not None else None)
    try:
        if path.startswith("/close"):
            await ws.recv()
            await ws.close(4001, "server says bye")
        elif path.startswith("/drop"):
            await ws.recv()
            ws.transport.abort()
        elif path.startswith("/silent"):
            await ws.wait_closed()
        else:
            async for message in ws:
                await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        closed_codes.append(ws.close_code)


def _received(ws: Any) -> list[Any] | None:
    close = ws.protocol.close_rcvd
    return None if close is None else [close.code, close.reason]


async def echo(url: str) -> list[Any]:
    async with connect(url, max_size=None) as ws:
        await ws.send("héllo")
        text = await ws.recv()
        await ws.send(b"\x00\x01\xff")
        binary = await ws.recv()
        pong = await ws.ping(b"are you there")
        latency = await asyncio.wait_for(pong, 5)
        return [text, list(binary), latency >= 0, ws.response.headers.get("sec-websocket-extensions")]


async def big(url: str) -> bool:
    async with connect(url, max_size=None) as ws:
        for payload in (b"\xab" * MiB, "z" * MiB):
            await ws.send(payload)
            if await ws.recv() != payload:
                return False
        return True


async def server_close(url: str) -> list[Any] | None:
    async with connect(url) as ws:
        await ws.send("go")
        try:
            await ws.recv()
        except websockets.ConnectionClosed:
            return _received(ws)
        return None


async def client_close(url: str) -> None:
    async with connect(url) as ws:
        await ws.send("x")
        await ws.recv()
        await ws.close(4002, "client done")


async def abort(url: str) -> None:
    ws = await connect(url)
    ws.transport.abort()  # no close frame: the TCP connection just goes


async def too_big(url: str) -> list[Any] | None:
    async with connect(url, max_size=None) as ws:
        await ws.send(b"x" * 100_000)
        try:
            await ws.recv()
        except websockets.ConnectionClosed:
            return _received(ws)
        return None


async def idle(url: str) -> list[Any] | None:
    async with connect(url, ping_interval=None) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed:
            return _received(ws)
        return None


async def keyed(url: str, key: str | None) -> list[Any]:
    headers = {"x-api-key": key} if key else {}
    try:
        async with connect(url, additional_headers=headers) as ws:
            await ws.send("through")
            return ["ok", await ws.recv()]
    except websockets.InvalidStatus as exc:
        return ["status", exc.response.status_code]


async def many(url: str, n: int) -> int:
    async def one(i: int) -> bool:
        async with connect(url, ping_interval=None, open_timeout=30) as ws:
            await ws.send(f"n{i}")
            return await ws.recv() == f"n{i}"

    return sum(await asyncio.gather(*(one(i) for i in range(n))))


async def state() -> dict[str, Any]:
    return {"closed_codes": closed_codes, "extensions": extensions}


class Session:
    """A client WebSocket opened in the background, so that the scripts go on while it waits."""

    def __init__(self, url: str) -> None:
        self.status: Any = "connecting"
        self.ws: Any = None
        self.task = asyncio.ensure_future(self._open(url))

    async def _open(self, url: str) -> None:
        try:
            self.ws = await connect(url, ping_interval=None, open_timeout=None, max_size=None)
        except websockets.InvalidStatus as exc:
            self.status = ["refused", exc.response.status_code]
            return
        except Exception as exc:
            self.status = ["failed", f"{type(exc).__name__}: {exc}"]
            return
        self.status = "open"


sessions: dict[str, Session] = {}


async def start(name: str, url: str) -> None:
    sessions[name] = Session(url)


async def status(name: str) -> Any:
    return sessions[name].status


async def say(name: str, text: str) -> Any:
    ws = sessions[name].ws
    try:
        await ws.send(text)
        return await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed:
        sessions[name].status = "closed"
        return ["closed", ws.close_code]


async def close(name: str) -> None:
    one = sessions[name]
    await one.ws.close()
    one.status = "closed"


async def kill(name: str) -> None:
    one = sessions[name]
    one.ws.transport.abort()
    one.status = "closed"


ONE_SHOT = (echo, big, server_close, client_close, abort, too_big, idle, keyed, many, state)
SCRIPTS = {f.__name__: f for f in (*ONE_SHOT, start, status, say, close, kill)}


async def main() -> None:
    # A deep backlog: 1,000 simultaneous connects must not overflow the accept queue.
    server = await serve(backend, "127.0.0.1", 0, max_size=None, ping_interval=None, backlog=4096)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        name = command.pop("script")
        try:
            reply = {"result": await SCRIPTS[name](**command)}
        except Exception as exc:  # reported to the test, which fails with it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
