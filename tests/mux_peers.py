"""A WebSocket backend for tests/test_websocket_mux.py, in a process of its own (so that it can be
killed mid-run, and since `websockets` is asyncio-only).

    python mux_peers.py --name a --port 8001

Prints "ready" once listening. By path: /silent never reads (its TCP window closes once its
buffers are full: a slow backend); anything else answers each message with "<name>:<message>"
(bytes are echoed as they are); a text message "bye" gets a 4001 close, "last" a last message
and then a 4002 close.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import websockets
from websockets.asyncio.server import ServerConnection, serve


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    async def handle(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        try:
            if path.startswith("/silent"):
                await asyncio.Event().wait()
            async for message in ws:
                if message == "bye":
                    await ws.close(4001, "bye from " + args.name)
                elif message == "last":
                    await ws.send(f"{args.name}:last words")
                    await ws.close(4002, "done")
                elif isinstance(message, str):
                    await ws.send(f"{args.name}:{message}")
                else:
                    await ws.send(message)
        except websockets.ConnectionClosed:
            pass

    async with serve(handle, "127.0.0.1", args.port, max_size=None, max_queue=4):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
