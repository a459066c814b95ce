"""The live feed as the far side of a WebSocket: an in-process byte stream of frames.

The connection answered the upgrade with our 101 and runs its `WebSocketRelay` between the
client's socket and this stream, exactly as it does for a proxied WebSocket backend; so idle
timeouts, the close handshake, message limits and RFC 8441 (WebSocket over HTTP/2) work here
as they do there, and no task of its own is needed: the relay *pulls* frames from `receive()`
when it has written the previous ones to the client, which is what keeps a slow client from
making the gateway buffer (the feed's bounded queue drops old samples meanwhile).

    receive()  the next event as a text frame, a ping after `heartbeat` seconds of silence,
               the answers to the client's pings and close, and when the feed ends a close
               frame (1001 on shutdown, 1012 on reload), then EOF once the client answered it;
    send()     frames from the client: pings are answered, a close is answered and ends the
               feed, data messages are ignored.

Only the latest unanswered ping gets a pong (RFC 6455 §5.5.3 allows it): a client that pings
without reading must not grow a queue of pongs, since the relay keeps passing its frames on
while the write towards it waits.
"""

from __future__ import annotations

import json
import time

import anyio
import anyio.abc

from ..events import WebSocketClose, WebSocketMessage, WebSocketPing, WebSocketPong
from ..observe.hub import FeedEnded, FeedEvent, LiveFeed
from ..protocols.websocket import WebSocketConnection, WebSocketError

__all__ = ["FeedSocket"]

# RFC 6455 §7.4.1 and the IANA registry: 1001 going away, 1012 service restart.
CLOSE_CODES = {"shutdown": 1001, "reload": 1012}


def encode_message(event: FeedEvent) -> str:
    return json.dumps({"event": event.name, "data": event.data}, separators=(",", ":"), default=str)


class FeedSocket(anyio.abc.ByteStream):
    def __init__(
        self,
        feed: LiveFeed,
        heartbeat: float,
        hello: FeedEvent,
    ) -> None:
        self._feed = feed
        self._heartbeat = heartbeat
        self._ws = WebSocketConnection(client=False)
        self._out: list[bytes] = [self._ws.send(WebSocketMessage(1, encode_message(hello)))]
        self._pong: bytes | None = None  # the answer to the latest ping, sent after `_out`
        self._last = time.monotonic()
        self._closing = False  # our close frame is out (or the client's was answered)
        self._done = anyio.Event()  # the close handshake is complete, or the client is gone

    # ------------------------------------------------------------------ towards the client

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            if self._out or self._pong is not None:
                out = b"".join(self._out) + (self._pong or b"")
                self._out, self._pong = [], None
                self._last = time.monotonic()
                return out
            if self._closing:
                await self._done.wait()
                raise anyio.EndOfStream
            await self._next()

    async def _next(self) -> None:
        """Queue the next frame(s) to send, or return having queued none (woken by `send`)."""
        wait = max(0.0, self._last + self._heartbeat - time.monotonic())
        try:
            event = await self._feed.next(wait)
        except FeedEnded as ended:
            self._close(CLOSE_CODES.get(ended.reason, 1001), ended.reason)
            return
        if event is None:
            if time.monotonic() >= self._last + self._heartbeat:
                self._queue(self._ws.send(WebSocketPing(1, b"heartbeat")))
        else:  # an `end` event is followed, at the next call, by the close frame
            self._queue(self._ws.send(WebSocketMessage(1, encode_message(event))))

    def _queue(self, frame: bytes) -> None:
        """`frame` to send, after the pong of a ping that came before it."""
        if self._pong is not None:
            self._out.append(self._pong)
            self._pong = None
        self._out.append(frame)

    def _close(self, code: int, reason: str) -> None:
        self._queue(self._ws.send(WebSocketClose(1, code, reason)))
        self._closing = True
        self._feed.close()

    # ------------------------------------------------------------------ from the client

    async def send(self, item: bytes) -> None:
        try:
            events = self._ws.receive_data(item)
        except WebSocketError as exc:
            self._queue(exc.data)
            self._closing = True
            self._done.set()
            self._feed.close()
            self._feed.poke()
            return
        for ev in events:
            if type(ev) is WebSocketPing:
                self._pong = self._ws.send(WebSocketPong(1, ev.payload))  # replaces an unsent one
            elif type(ev) is WebSocketClose:
                if not self._closing:  # the client closes first: answer it
                    self._queue(self._ws.send(WebSocketClose(1, ev.code if ev.code != 1005 else 1000)))
                    self._closing = True
                self._done.set()
                self._feed.close()
        self._feed.poke()

    async def send_eof(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._feed.close()
        self._done.set()
