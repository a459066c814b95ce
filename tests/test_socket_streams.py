"""The two socket streams the data plane runs on keep the same contract, over real sockets.

`gateway.native_io()` picks `asyncio_stream.AsyncioSocketStream` on asyncio/uvloop and
`netio.SocketStream` on trio; everything above them (connections, the upstream client, TLS)
relies on the same behaviour from both: a send returns once the kernel has every byte (so a
peer that stops reading blocks the sender: backpressure), a close from another task wakes a
blocked receive, EOF is `EndOfStream`, and a parked connection tells when input arrived.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import anyio
import anyio.abc
import pytest

from a3s_gateway.runtime.gateway import native_io
from a3s_gateway.runtime.netio import SocketStream

from .stubs import eventually

pytestmark = pytest.mark.anyio

Factory = Callable[[socket.socket], anyio.abc.SocketStream]


def _pair() -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair on loopback (the streams set TCP_NODELAY, which needs TCP)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    return client, peer


def _factory() -> Factory:
    factory, _ = native_io()
    return factory


async def test_the_launcher_picks_the_loop_native_stream(anyio_backend: object) -> None:
    ours, theirs = _pair()
    stream = _factory()(ours)
    try:
        expected = "SocketStream" if anyio_backend[0] == "trio" else "AsyncioSocketStream"  # type: ignore[index]
        assert type(stream).__name__ == expected
        assert isinstance(stream, anyio.abc.SocketStream)
    finally:
        await stream.aclose()
        theirs.close()


async def test_bytes_both_ways_and_eof(anyio_backend: object) -> None:
    ours, theirs = _pair()
    stream = _factory()(ours)
    async with stream:
        await stream.send(b"ping")
        assert theirs.recv(16) == b"ping"
        theirs.sendall(b"x" * 100)
        received = b""
        while len(received) < 100:
            received += await stream.receive(30)
        assert received == b"x" * 100  # max_bytes splits, nothing lost
        theirs.close()
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_send_blocks_until_the_kernel_has_every_byte(anyio_backend: object) -> None:
    ours, theirs = _pair()
    stream = _factory()(ours)
    payload = b"y" * (16 * 1024 * 1024)  # far more than both socket buffers hold
    done = anyio.Event()

    async def sender() -> None:
        await stream.send(payload)
        done.set()

    async with stream, anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await anyio.sleep(0.2)
        assert not done.is_set()  # the peer reads nothing: the sender waits (backpressure)
        theirs.setblocking(False)
        got = 0
        while got < len(payload):
            try:
                got += len(theirs.recv(1 << 20))
            except BlockingIOError:
                await anyio.sleep(0.001)
        await eventually(done.is_set)
    theirs.close()


async def test_close_from_another_task_wakes_a_blocked_receive(anyio_backend: object) -> None:
    ours, theirs = _pair()
    stream = _factory()(ours)
    outcome: list[type[BaseException]] = []

    async def reader() -> None:
        try:
            await stream.receive()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            outcome.append(type(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.sleep(0.05)
        await anyio.aclose_forcefully(stream)
    assert outcome == [anyio.ClosedResourceError]
    theirs.close()


async def test_a_first_receive_and_send_may_start_together(anyio_backend: object) -> None:
    """An HTTP/2 connection's reader and writer make the stream's first use at the same time
    (an `h2c = "prior-knowledge"` entrypoint): both work, and the socket is handed to the loop
    once. Handed over twice, one registration outlived the close, and the next socket given
    the same fd number failed ("File descriptor ... is used by transport", or EEXIST)."""
    server = socket.create_server(("127.0.0.1", 0))  # for the last step, opened before the fd frees
    ours, theirs = _pair()
    stream = _factory()(ours)
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await stream.receive())

    theirs.setblocking(False)

    def peer_got_settings() -> bool:
        try:
            return theirs.recv(16, socket.MSG_PEEK) == b"settings"
        except BlockingIOError:
            return False

    with anyio.fail_after(10):
        async with stream, anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(stream.send, b"settings")
            await eventually(peer_got_settings)
            theirs.send(b"preface")
    assert received == [b"preface"]
    # The fd just freed is the lowest free one: the next socket gets it, and the loop takes it.
    with anyio.fail_after(10):
        async with await anyio.connect_tcp(*server.getsockname()[:2]) as again:
            accepted, _ = server.accept()
            await again.send(b"ok")
            assert accepted.recv(16) == b"ok"
            accepted.close()
    server.close()
    theirs.close()


async def test_a_parked_stream_tells_when_input_arrived(anyio_backend: object) -> None:
    ours, theirs = _pair()
    stream = _factory()(ours)
    async with stream:
        await stream.send(b"request")  # in use, then parked
        theirs.recv(16)
        assert not stream.input_pending()  # type: ignore[attr-defined]
        theirs.close()  # the server's keep-alive timer closed it meanwhile
        await eventually(stream.input_pending)  # type: ignore[attr-defined]


async def test_reading_stays_bounded_when_nobody_receives(anyio_backend: object) -> None:
    if anyio_backend[0] == "trio":  # type: ignore[index]
        pytest.skip("the readiness-wait stream holds no buffer of its own")
    ours, theirs = _pair()
    stream = _factory()(ours)
    async with stream:
        await stream.send(b"start")  # hands the socket to the loop
        theirs.setblocking(False)
        sent = blocked = 0
        while blocked < 25 and sent < 8 * 1024 * 1024:  # offer until the kernel says stop
            try:
                sent += theirs.send(b"z" * 65536)
                blocked = 0
            except BlockingIOError:
                blocked += 1
                await anyio.sleep(0.002)
        buffered = len(stream._protocol.buffer)  # type: ignore[attr-defined]
        assert buffered <= 64 * 1024 + 256 * 1024  # the pause threshold plus one loop read
        assert sent < 8 * 1024 * 1024  # the sender was stopped by the kernel, not buffered by us
        received = 0
        while received < sent:
            received += len(await stream.receive())
        assert received == sent
    theirs.close()


def test_the_default_stream_is_the_readiness_wait_one() -> None:
    assert native_io()[0] is SocketStream  # outside any event loop
