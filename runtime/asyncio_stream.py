"""The asyncio-native socket stream: the fd stays registered with the loop for its whole life.

`netio.SocketStream` waits for readability with `anyio.wait_readable`, which on asyncio and
uvloop registers the socket with the loop and unregisters it again on every wait (two
`epoll_ctl` calls, a poll handle, a future and a closure per wait; strace in
benchmarks/analysis.md). A proxied request waits twice, so that is most of the syscalls a
bare asyncio relay does not make. This stream uses asyncio's own transport/protocol pair
instead: the loop reads into `data_received` as bytes arrive and `receive()` takes them from
the buffer, waiting on a future only when it is empty. trio keeps `netio.SocketStream`.

Only the launcher (gateway.py) picks this module, as it picks the event loop (STYLE.md rule 11);
everything above the stream sees an `anyio.abc.SocketStream` either way, so TLS wrapping,
deadlines and cancellation are unchanged.

Semantics kept identical to `netio.SocketStream`, which the data plane relies on:
- `send()` returns once the kernel has taken every byte. The write buffer limits are zero, so
  asyncio calls `pause_writing` whenever anything is left buffered and `send()` waits for
  `resume_writing`: a client that reads slowly blocks the writer (backpressure reaches the
  upstream read), the gateway holds no user-space write buffer per stream, and closing never
  drops bytes a `send()` reported as sent.
- Reads are bounded: above `_READ_HIGH` buffered bytes the transport stops reading until
  `receive()` drains it, so an unread pipelined upload holds at most one socket read.
- `close()` from another task wakes a task blocked in `receive()` or `send()` with
  `ClosedResourceError` (how the ticker's timeouts and hang-ups unblock a waiter).
- Fairness: after `_HOT_LIMIT` receives in a row served from the buffer without waiting, one
  yields.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

import anyio
import anyio.abc
from anyio.lowlevel import checkpoint

from .netio import poll_readable, prepare_socket

__all__ = ["AsyncioSocketStream", "Sink", "spawn_task", "watch_readable"]

_READ_HIGH = 65536
_HOT_LIMIT = 16


class Sink(Protocol):
    """Takes a stream's events in place of its buffer (the callback path's side of a socket)."""

    def sink_data(self, data: bytes) -> None: ...

    def sink_eof(self) -> None: ...

    def sink_lost(self, exc: BaseException | None) -> None: ...

    def sink_drained(self) -> None: ...


class _StreamProtocol(asyncio.Protocol):
    """Collects what the loop reads and wakes the one task waiting for it."""

    __slots__ = (
        "buffer",
        "drained",
        "eof",
        "error",
        "paused_reading",
        "paused_writing",
        "sink",
        "transport",
        "waiter",
    )

    def __init__(self) -> None:
        self.buffer = b""
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None  # a receive() waiting for bytes
        self.drained: asyncio.Future[None] | None = None  # a send() waiting for the kernel
        self.paused_reading = False
        self.paused_writing = False
        self.transport: asyncio.Transport | None = None
        # Who takes the bytes instead of the buffer, while the callback path serves the
        # connection (runtime/callback_path.py); None: receive() takes them.
        self.sink: Sink | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=0, low=0)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.sink_data(data)
            return
        # Nearly always one chunk at a time: the consumer takes it before the next arrives.
        buffer = self.buffer = self.buffer + data if self.buffer else data
        if len(buffer) > _READ_HIGH and not self.paused_reading and self.transport is not None:
            self.paused_reading = True
            self.transport.pause_reading()
        # wake() inlined: this runs for every read on every socket.
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        sink = self.sink
        if sink is not None:
            sink.sink_eof()
            return True
        self.eof = True
        self.wake()
        return True  # keep the write side open: a response may still be going out (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self.paused_writing = False
        sink = self.sink
        if sink is not None:
            self.sink = None
            sink.sink_lost(exc)
        self.wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        sink = self.sink
        if sink is not None:
            sink.sink_drained()
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AsyncioSocketStream(anyio.abc.SocketStream):
    """An `anyio.abc.SocketStream` over a connected non-blocking socket, on asyncio/uvloop."""

    __slots__ = ("_attaching", "_closed", "_hot", "_loop", "_protocol", "_sock", "_transport")

    # Set by _attach(), which every receive() and send() makes sure ran (a transport is there).
    _loop: asyncio.AbstractEventLoop

    def __init__(self, sock: socket.socket) -> None:
        self._sock = prepare_socket(sock)
        self._closed = False
        self._hot = 0
        self._protocol = _StreamProtocol()
        self._transport: asyncio.Transport | None = None  # None until the first use attaches it
        self._attaching: asyncio.Future[None] | None = None  # set while _attach() runs

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    @property
    def protocol(self) -> _StreamProtocol:
        """The loop's side of the socket (the callback path sets its `sink`)."""
        return self._protocol

    @property
    def transport(self) -> asyncio.Transport | None:
        """The loop's transport, once a first use attached it (None before)."""
        return self._transport

    async def attach(self) -> asyncio.Transport:
        """Hand the socket to the loop now, if no use did yet (the callback path's start)."""
        if self._transport is not None:
            return self._transport
        return await self._attach()

    def create_future(self) -> asyncio.Future[Any]:
        """A future of the stream's loop (the callback path's task waits on one)."""
        return self._loop.create_future()

    def input_pending(self) -> bool:
        """Whether bytes or the peer's EOF have arrived unread (a parked upstream gone stale)."""
        if self._transport is None:
            return poll_readable(self._sock)
        protocol = self._protocol
        return bool(protocol.buffer) or protocol.eof

    async def _attach(self) -> asyncio.Transport:
        """Hand the socket to the loop (at first use, inside the task that will use it).

        Two tasks may make the first use together (an HTTP/2 connection's reader and writer
        start at once): the second waits for the first's attachment instead of registering
        the same fd with the loop a second time, which the loop refuses.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        if self._attaching is not None:
            await asyncio.shield(self._attaching)
            if self._transport is None:  # the first attachment failed or the stream closed
                raise anyio.ClosedResourceError
            return self._transport
        protocol = self._protocol
        loop = self._loop = asyncio.get_running_loop()
        attaching = self._attaching = loop.create_future()
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock=self._sock)
            if self._closed:  # closed by another task while attaching
                transport.abort()
                raise anyio.ClosedResourceError
            self._transport = transport
        finally:
            attaching.set_result(None)
        return transport

    async def receive(self, max_bytes: int = 65536) -> bytes:
        # Every proxied request runs this twice (client and upstream side), nearly always
        # waiting: that path makes each check once.
        if self._transport is None:
            await self._attach()
        protocol = self._protocol
        data = protocol.buffer
        if data:
            hot = self._hot
            if hot >= _HOT_LIMIT:  # fairness: served from the buffer too often in a row
                self._hot = hot = 0
                await checkpoint()
                data = protocol.buffer  # what came meanwhile too (only receive() takes bytes)
            self._hot = hot + 1
        else:
            while True:
                if protocol.eof:  # close() sets it too
                    if self._closed:
                        raise anyio.ClosedResourceError
                    if protocol.error is not None:
                        raise anyio.BrokenResourceError from protocol.error
                    raise anyio.EndOfStream
                waiter = protocol.waiter = self._loop.create_future()
                try:
                    await waiter
                finally:
                    protocol.waiter = None
                data = protocol.buffer
                if data:
                    break
            self._hot = 1  # the loop ran others while this waited
        if self._closed:
            raise anyio.ClosedResourceError
        if len(data) > max_bytes:
            protocol.buffer = data[max_bytes:]
            data = data[:max_bytes]
        else:
            protocol.buffer = b""
        if protocol.paused_reading and len(protocol.buffer) <= _READ_HIGH:
            protocol.paused_reading = False
            assert self._transport is not None
            self._transport.resume_reading()
        return data

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        transport = self._transport
        if transport is None:
            transport = await self._attach()
        protocol = self._protocol
        if (protocol.eof and protocol.error is not None) or transport.is_closing():
            raise anyio.BrokenResourceError
        transport.write(item)  # sends at once when nothing is queued; queues the rest
        while protocol.paused_writing:
            drained = protocol.drained = self._loop.create_future()
            try:
                await drained
            finally:
                protocol.drained = None
            if self._closed:
                raise anyio.ClosedResourceError
        if protocol.error is not None or transport.is_closing():
            if self._closed:
                raise anyio.ClosedResourceError
            raise anyio.BrokenResourceError

    async def send_eof(self) -> None:
        transport = self._transport
        if transport is None:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        elif transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()

    def close(self) -> None:
        """Close now, waking any task blocked on this stream (synchronous, unlike aclose)."""
        if self._closed:
            return
        self._closed = True
        if self._transport is not None:
            # Nothing is buffered that a send() reported as sent (see the module docstring),
            # so aborting loses nothing and frees the socket at once.
            self._transport.abort()
        else:
            self._sock.close()
        protocol = self._protocol
        protocol.eof = True
        protocol.wake()
        protocol.resume_writing()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()


# Strong references to the tasks spawn_task started (the loop itself keeps only weak ones).
_RUNNING: set[asyncio.Task[Any]] = set()


def spawn_task(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `fn()` as a plain asyncio task, for a listener's connections.

    anyio's `start_soon` wraps every task in a handle with its own cancel scope, an Event and a
    wrapper coroutine: about 2 KiB per task, so per open connection (with 1,000 open SSE
    streams, 2 MiB). The listener already tracks its connections and cancels their own scopes,
    so it does not need the task group's bookkeeping; anyio cancel scopes work in plain tasks.
    """
    task = asyncio.get_running_loop().create_task(fn())
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


def watch_readable(sock: socket.socket, on_readable: Callable[[], None]) -> Callable[[], object]:
    """Call `on_readable()` whenever `sock` is readable, until the returned function is called.

    The UDP relay's readers (l4/udp_server.py): `anyio.wait_readable` registers and unregisters
    the fd on every wait, two `epoll_ctl` calls and a future per datagram when each wake finds
    one. Call the returned function before closing the socket.
    """
    loop = asyncio.get_running_loop()
    loop.add_reader(sock, on_readable)
    return lambda: loop.remove_reader(sock)
