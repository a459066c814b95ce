"""From a parsed request head to an `api.Request`: what an entrypoint knows about a request.

The connection (connection.py) owns the socket; this module owns the facts it attaches to each
request: the request id (the client's `X-Request-Id`, or a new one), the client address (the
peer, or the rightmost untrusted `X-Forwarded-For` hop when the peer is a trusted proxy), the
body length and the entrypoint's settings. Everything is C-level lookups over the header list,
with no loop per field on the request path.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from operator import itemgetter

from ..compiler.schema import EntrypointConfig
from .api import BodyStream, Headers, Request
from .events import HeaderList, RequestHead
from .protocols.underscores import UnderscorePolicy
from .proxy import FORWARDED_FIELDS, PEER_TRUSTED, TrustedProxies

__all__ = ["ConnectionSettings", "build_request", "new_request_id"]

_MAX_REQUEST_ID = 200  # a longer client-supplied id is replaced, not forwarded
_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}
_name_of = itemgetter(0)
# A Headers over the adapter's list without running its __init__ (a Python frame per request).
_bare_headers = object.__new__

_id_prefix = os.urandom(5).hex()
_id_counter = itertools.count(1)


def _reseed_ids() -> None:
    global _id_prefix  # a forked worker must not repeat its parent's ids
    _id_prefix = os.urandom(5).hex()


os.register_at_fork(after_in_child=_reseed_ids)


def new_request_id() -> str:
    """A unique id: a random per-process prefix plus a counter (no syscall per request)."""
    return f"{_id_prefix}{next(_id_counter):08x}"


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """What every connection of one entrypoint shares, computed once from its configuration
    (`from_config`). No defaults here: the schema's (compiler/schema.py, EntrypointConfig) are
    the only ones, so a default changed there is the one every connection gets."""

    scheme: str
    read_header: float
    idle: float
    max_request_line: int
    max_header_bytes: int
    max_header_count: int
    trusted: TrustedProxies
    # How long a request runs before each tick checks whether its client hung up.
    probe_after: float
    websocket_idle: float
    websocket_message: int
    http2_max_streams: int
    read_body: float
    underscore_headers: UnderscorePolicy
    # Plain connections: "auto" (HTTP/1.1, or HTTP/2 when the preface comes), "prior-knowledge"
    # (HTTP/2 only) or "off" (HTTP/1.1 only). TLS connections follow ALPN.
    h2c: str

    @classmethod
    def from_config(
        cls, config: EntrypointConfig, *, scheme: str, probe_after: float = 1.0
    ) -> ConnectionSettings:
        return cls(
            scheme,
            config.timeouts.read_header,
            config.timeouts.idle,
            config.limits.request_line,
            config.limits.header_bytes,
            config.limits.header_count,
            TrustedProxies(config.trusted_proxies),
            probe_after,
            websocket_idle=config.timeouts.websocket_idle,
            websocket_message=config.limits.websocket_message,
            http2_max_streams=config.limits.http2_max_streams,
            read_body=config.timeouts.read_body or float("inf"),  # 0: no deadline
            underscore_headers=config.underscore_headers,
            h2c=config.h2c,
        )


def build_request(
    head: RequestHead,
    body: BodyStream,
    settings: ConnectionSettings,
    peer: tuple[str, int],
    *,
    peer_trusted: bool,
    sni: str | None,
) -> Request:
    raw = head.headers
    names = list(map(_name_of, raw))
    length: int | None = 0  # RFC 9112 §6.3: no Content-Length nor chunked means no body
    if head.has_body:  # chunked bodies have no length (None)
        length = int(raw[names.index(b"content-length")][1]) if b"content-length" in names else None
    if _CLAIMS.isdisjoint(names):  # the usual request: one C-level scan says so
        client_ip = peer[0]
        request_id = f"{_id_prefix}{next(_id_counter):08x}"  # new_request_id inlined
    else:
        raw, client_ip, request_id = _claimed(raw, names, settings, peer[0], peer_trusted)
    headers = _bare_headers(Headers)
    headers.raw = raw  # the adapter built this list for us: no copy
    method = head.method
    request = Request(
        # latin-1: an HTTP/2 `:method` that is no token (not even ASCII) still makes a request,
        # which its connection answers 400 (`H2ServerConnection.invalid`) without dispatching.
        _METHODS.get(method) or method.decode("latin-1"),
        head.target.decode("latin-1"),
        headers,
        body,
        peer,
        client_ip,
        settings.scheme,
        _VERSIONS.get(head.http_version) or head.http_version.decode("ascii"),
        request_id=request_id,
        content_length=length,
        sni=sni,
    )
    if peer_trusted:
        request.state[PEER_TRUSTED] = True
    return request


# What a client may say about itself: its request id and the forwarding fields.
_CLAIMS = FORWARDED_FIELDS | {b"x-request-id"}


def _claimed(
    raw: HeaderList, names: list[bytes], settings: ConnectionSettings, peer_ip: str, peer_trusted: bool
) -> tuple[HeaderList, str, str]:
    """The header list, client address and request id of a request that names its own id or
    carries forwarding fields."""
    given_id = raw[names.index(b"x-request-id")][1] if b"x-request-id" in names else b""
    client_ip = peer_ip
    if peer_trusted and b"x-forwarded-for" in names:
        hops = [v for n, v in raw if n == b"x-forwarded-for"]
        client_ip = settings.trusted.client_ip(client_ip, hops)
    elif not peer_trusted and not FORWARDED_FIELDS.isdisjoint(names):
        # As Traefik's entrypoint does: what an untrusted client claims about forwarding is
        # dropped here, before any middleware, so a value a middleware sets later is kept.
        raw = [(n, v) for n, v in raw if n not in FORWARDED_FIELDS]
    request_id = given_id.decode("latin-1") if 0 < len(given_id) <= _MAX_REQUEST_ID else new_request_id()
    return raw, client_ip, request_id
