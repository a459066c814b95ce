"""Reading a PROXY protocol header from a peer (protocols/proxy_protocol.py does the parsing).

A trusted peer may send a header (its client becomes the connection's client) or not (the peer
is the client), as Traefik's `proxyProtocol.trustedIPs`; an untrusted peer that sends one is
refused (`ProxyHeaderError`), so nobody can claim another address by writing a header. So an
entrypoint with `proxy_protocol` reads the first bytes of every connection before routing it:
it serves protocols whose client speaks first. The caller bounds the time (read_header).
"""

from __future__ import annotations

import anyio.abc

from ..protocols.proxy_protocol import NEED_MORE, ProxyHeader, ProxyHeaderError, parse_proxy_header

__all__ = ["read_proxy_header"]


async def read_proxy_header(stream: anyio.abc.ByteStream, trusted: bool) -> tuple[ProxyHeader | None, bytes]:
    """The header (None when there is none) and the bytes read after it."""
    data = await stream.receive(65536)
    while (result := parse_proxy_header(data)) is NEED_MORE:
        data += await stream.receive(65536)
    if not isinstance(result, ProxyHeader):
        return None, data
    if not trusted:
        raise ProxyHeaderError("a PROXY header from a peer outside proxy_protocol.trusted_ips")
    return result, data[result.length :]
