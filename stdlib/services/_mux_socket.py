"""The client's multiplexed WebSocket as the far side of the gateway's relay: an in-process stream.

The connection answered the upgrade with the mux's 101 and runs its `WebSocketRelay` between the
client's socket and this stream, as it does for a proxied backend (and as the admin live feed
does), so idle timeouts, the close handshake and message limits are the relay's. The relay:

    send(bytes)     hands over the client's frames: whole messages go to `on_message`, pings are
                    answered, a close is answered and ends the session. It never waits on a
                    channel, so one slow channel cannot hold up the client's other messages;
    receive()       pulls the next frames to write to the client: control messages first (open
                    acknowledgements, closes, pongs), then one message from each channel that has
                    one, in turn, so a busy channel cannot starve the others.

Each channel writes to its own `Outbox`, bounded: a channel whose outbox is full waits (and stops
reading its backend, whose TCP window then closes), while the other channels' messages still go
out. Memory per socket is bounded by channels × buffer × message size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio
import anyio.abc
from wsproto.events import Ping

from ._mux_frames import Closed, FrameError, Frames

__all__ = ["MuxSocket", "Outbox"]


class Outbox:
    """One channel's messages towards the client, at most `limit` waiting."""

    __slots__ = ("_room", "_socket", "frames", "limit", "queued")

    def __init__(self, socket: MuxSocket, limit: int) -> None:
        self._socket = socket
        self.limit = limit
        self.frames: deque[bytes] = deque()
        self.queued = False  # in the socket's turn order
        self._room: anyio.Event | None = None

    async def put(self, message: str | bytes) -> None:
        """Queue a message, waiting while the outbox is full."""
        while len(self.frames) >= self.limit:
            self._room = anyio.Event()
            await self._room.wait()
        self.frames.append(self._socket.frame(message))
        self._socket.has_output(self)

    def put_last(self, message: str | bytes) -> None:
        """Queue the channel's last message (its close) behind its data, full or not."""
        self.frames.append(self._socket.frame(message))
        self._socket.has_output(self)

    def taken(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None


class MuxSocket(anyio.abc.ByteStream):
    def __init__(
        self, on_message: Callable[[str | bytes], None], on_end: Callable[[], None], limit: int
    ) -> None:
        self._on_message = on_message
        self._on_end = on_end
        self._frames = Frames(client=False, limit=limit)
        self._control: list[bytes] = []
        self._turns: deque[Outbox] = deque()
        self._wake = anyio.Event()
        self._ending = False  # our close is queued (or the client is gone): no more messages
        self._done = anyio.Event()

    # ------------------------------------------------------------------ towards the client

    def frame(self, message: str | bytes) -> bytes:
        return self._frames.message(message)

    def control(self, message: str | bytes) -> None:
        """A message that goes out before the channels' data (acknowledgements, closes)."""
        if not self._ending:
            self._control.append(self._frames.message(message))
            self._wake.set()

    def has_output(self, outbox: Outbox) -> None:
        if not outbox.queued:
            outbox.queued = True
            self._turns.append(outbox)
        self._wake.set()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            out = self._take(max_bytes)
            if out:
                return out
            if self._ending:
                await self._done.wait()
                raise anyio.EndOfStream
            self._wake = anyio.Event()
            await self._wake.wait()

    def _take(self, max_bytes: int) -> bytes:
        parts, self._control = self._control, []
        size = sum(map(len, parts))
        for _ in range(len(self._turns)):  # one round: one message per channel
            if size >= max_bytes or self._ending:
                break
            outbox = self._turns.popleft()
            if not outbox.frames:  # its channel was closed and its data dropped
                outbox.queued = False
                continue
            frame = outbox.frames.popleft()
            parts.append(frame)
            size += len(frame)
            if outbox.frames:
                self._turns.append(outbox)
            else:
                outbox.queued = False
            outbox.taken()
        return b"".join(parts)

    # ------------------------------------------------------------------ from the client

    async def send(self, item: bytes) -> None:
        try:
            incoming = self._frames.feed(item)
        except FrameError as exc:
            self._end(exc.data)
            return
        for event in incoming:
            if isinstance(event, Ping):
                self._control.append(self._frames.pong(event))
                self._wake.set()
            elif isinstance(event, Closed):
                self._end(event.answer)
                return
            elif not self._ending:  # past our close, the client's last messages are dropped
                self._on_message(event)

    def _end(self, last: bytes, *, answered: bool = True) -> None:
        """The session is over: `last` (a close frame) is the final thing written; once the
        handshake is `answered`, the stream ends after it."""
        if answered:
            self._done.set()
        if not self._ending:
            self._control.append(last)
            self._ending = True
            self._wake.set()
            self._on_end()

    def close(self, code: int, reason: str) -> None:
        """End the session from our side; the stream ends when the client answers."""
        self._end(self._frames.close(code, reason), answered=False)

    async def send_eof(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """The relay is done with us (the client went away, or the handshake completed)."""
        if not self._ending:
            self._ending = True
            self._on_end()
        self._done.set()
        self._wake.set()
