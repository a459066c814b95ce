"""Real ClientHellos, made by Python's ssl module (OpenSSL) into memory, for the parser tests."""

from __future__ import annotations

import ssl


def client_hello(server_name: str | None = "a.test", alpn: tuple[str, ...] = ()) -> bytes:
    """The first flight OpenSSL sends for `server_name` (None: no SNI) offering `alpn`."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def split_records(hello: bytes, size: int) -> bytes:
    """The same handshake message re-framed into TLS records of at most `size` payload bytes."""
    assert hello[0] == 0x16
    length = int.from_bytes(hello[3:5])
    payload, version = hello[5 : 5 + length], hello[1:3]
    out = bytearray()
    for start in range(0, len(payload), size):
        chunk = payload[start : start + size]
        out += bytes([0x16]) + version + len(chunk).to_bytes(2) + chunk
    return bytes(out) + hello[5 + length :]
