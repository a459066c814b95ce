"""Reading a connection's first bytes without losing them.

`peek_hello` reads until the ClientHello parser (protocols/clienthello.py) can answer and returns
its answer with every byte read; those bytes are then written to the backend first
(passthrough) or replayed into the TLS terminator through `Replayed`, a byte stream that serves
them before reading the socket again. The caller bounds the time (`fail_after`).
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc

from ..protocols.clienthello import NEED_MORE, ClientHello, ClientHelloError, NotTls, parse_client_hello

__all__ = ["Replayed", "peek_hello"]


async def peek_hello(
    stream: anyio.abc.ByteStream, max_size: int, data: bytes = b""
) -> tuple[ClientHello | NotTls, bytes]:
    """The ClientHello (or NOT_TLS) and the bytes read after `data` (bytes already read, such as
    those behind a PROXY header); raises ClientHelloError, EndOfStream."""
    while True:
        if data:
            result = parse_client_hello(data, max_size)
            if result is not NEED_MORE:
                assert isinstance(result, ClientHello | NotTls)
                return result, data
        data += await stream.receive(16384)
        if len(data) > 2 * max_size:  # record headers around a hello of at most max_size
            raise ClientHelloError(f"more than {2 * max_size} bytes without a whole ClientHello")


class Replayed(anyio.abc.ByteStream):
    """`stream` with `first` put back in front of it."""

    def __init__(self, stream: anyio.abc.ByteStream, first: bytes) -> None:
        self._stream, self._first = stream, first

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._first:
            data, self._first = self._first[:max_bytes], self._first[max_bytes:]
            return data
        return await self._stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Any:
        return self._stream.extra_attributes
