"""The TLS ClientHello, read without consuming it: bytes in, the server name and ALPN out.

A TCP entrypoint routes on what the client's first flight says (`HostSNI`, `ALPN`) before it
knows where the bytes go, so it peeks: it keeps every byte it read and hands them on, untouched,
to the backend (passthrough) or to the TLS terminator. `parse_client_hello(data)` is called with
everything read so far and answers one of:

- `NEED_MORE`: a prefix of a ClientHello; read more (the caller bounds the time and the size);
- `NOT_TLS`: the first byte is not a TLS handshake record (a plaintext protocol such as
  PostgreSQL, SMTP or HTTP): only non-TLS routers apply, as in Traefik;
- a `ClientHello`: the server name (None without an SNI extension) and the ALPN list;
- or it raises `ClientHelloError`: an SSLv2 hello, a record or handshake that is not a
  ClientHello, a hello larger than `max_size`, or malformed lengths.

The ClientHello is one handshake message (RFC 8446 §4.1.2; RFC 5246 §7.4.1.2) that a client
may split across several TLS records (§5.1: fragmentation), and the records across TCP segments
however it likes; the parser reassembles the handshake message from the records' payloads, so
any split of the same bytes parses the same (property_tests/test_clienthello_properties.py).
Extensions: server_name (RFC 6066 §3, the first host_name entry) and
application_layer_protocol_negotiation (RFC 7301 §3.1). Only a prefix of the bytes is needed:
whatever follows the ClientHello (early data, a second flight) is not looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [  # and MAX_HELLO, the size limit
    "NEED_MORE",
    "NOT_TLS",
    "ClientHello",
    "ClientHelloError",
    "NeedMore",
    "NotTls",
    "parse_client_hello",
]

# RFC 8446 §5.1: a TLSPlaintext fragment is at most 2^14 bytes; §5.2 allows ciphertext 2^14 + 256.
_MAX_RECORD = 2**14 + 256
# A ClientHello larger than this is refused (Go's crypto/tls: maxHandshake = 65536). Real ones
# are 200 B to 2 KiB; post-quantum key shares bring them to about 1.8 KiB.
MAX_HELLO: Final = 65536
_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16


class ClientHelloError(ValueError):
    """The bytes are TLS-looking but cannot be a ClientHello we serve (the connection is closed)."""


@dataclass(frozen=True, slots=True)
class NeedMore:
    """A valid prefix: read more bytes."""


@dataclass(frozen=True, slots=True)
class NotTls:
    """The client does not start with a TLS handshake record."""


NEED_MORE: Final = NeedMore()
NOT_TLS: Final = NotTls()


@dataclass(frozen=True, slots=True)
class ClientHello:
    sni: str | None
    alpn: tuple[str, ...] = ()


def parse_client_hello(data: bytes, max_size: int = MAX_HELLO) -> ClientHello | NeedMore | NotTls:
    """What `data` (every byte the client sent so far) says; see the module docstring."""
    if not data:
        return NEED_MORE
    if data[0] != _HANDSHAKE:
        if data[0] & 0x80:
            # An SSLv2-compatible hello starts with a 2-byte length whose top bit is set (RFC
            # 6101 §E.2); no TLS version we speak accepts one.
            raise ClientHelloError("an SSLv2 ClientHello is not supported")
        return NOT_TLS
    message = _handshake_message(data, max_size)
    if message is None:
        return NEED_MORE
    return _parse_body(message)


def _handshake_message(data: bytes, max_size: int) -> bytes | None:
    """The ClientHello body reassembled from the handshake records of `data`, or None for more."""
    payload = bytearray()
    offset = 0
    wanted: int | None = None
    while True:
        if len(data) - offset < 5:
            return None
        kind, major, length = data[offset], data[offset + 1], int.from_bytes(data[offset + 3 : offset + 5])
        if kind != _HANDSHAKE:
            raise ClientHelloError(f"record type {kind} inside a ClientHello")
        if major != 3:
            raise ClientHelloError(f"record version {major}.{data[offset + 2]} is not TLS")
        if length == 0 or length > _MAX_RECORD:
            raise ClientHelloError(f"a handshake record of {length} bytes")
        fragment = data[offset + 5 : offset + 5 + length]
        payload += fragment
        if wanted is None and len(payload) >= 4:
            if payload[0] != _CLIENT_HELLO:
                raise ClientHelloError(f"handshake message type {payload[0]} is not a ClientHello")
            wanted = int.from_bytes(payload[1:4])
            if wanted > max_size:
                raise ClientHelloError(f"a ClientHello of {wanted} bytes (the limit is {max_size})")
        if wanted is not None and len(payload) >= 4 + wanted:
            return bytes(payload[4 : 4 + wanted])
        if len(fragment) < length:
            return None
        offset += 5 + length


class _Reader:
    """Length-prefixed fields of a handshake message; any overrun is a ClientHelloError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise ClientHelloError("a ClientHello field overruns the message")
        chunk, self.pos = self.data[self.pos : end], end
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size))

    def vector(self, size: int) -> bytes:
        return self.take(self.number(size))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _parse_body(body: bytes) -> ClientHello:
    reader = _Reader(body)
    reader.take(2 + 32)  # legacy_version, random
    reader.vector(1)  # legacy_session_id
    if len(reader.vector(2)) % 2:
        raise ClientHelloError("an odd cipher_suites length")
    reader.vector(1)  # legacy_compression_methods
    if reader.left == 0:  # no extensions at all (an old client): no SNI, no ALPN
        return ClientHello(None)
    extensions = _Reader(reader.vector(2))
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    seen: set[int] = set()
    while extensions.left:
        kind, value = extensions.number(2), extensions.vector(2)
        if kind in seen:  # RFC 8446 §4.2: at most one extension of each type
            raise ClientHelloError(f"extension {kind} appears twice")
        seen.add(kind)
        if kind == _EXT_SERVER_NAME:
            sni = _server_name(value)
        elif kind == _EXT_ALPN:
            alpn = _protocols(value)
    return ClientHello(sni, alpn)


def _server_name(value: bytes) -> str | None:
    names = _Reader(_Reader(value).vector(2))
    while names.left:
        name_type, name = names.number(1), names.vector(2)
        if name_type == 0:  # host_name
            try:
                return name.decode("ascii")
            except UnicodeDecodeError:
                raise ClientHelloError("a server name that is not ASCII") from None
    return None


def _protocols(value: bytes) -> tuple[str, ...]:
    protocols = _Reader(_Reader(value).vector(2))
    out: list[str] = []
    while protocols.left:
        name = protocols.vector(1)
        if not name:
            raise ClientHelloError("an empty ALPN protocol name")
        out.append(name.decode("latin-1"))
    return tuple(out)
