"""Header hygiene in both directions, and `forward`: the call a service makes to reach a backend.

Requests going up (RFC 9110 §7.6.1): hop-by-hop fields, and every field the Connection header
names, are removed (`te: trailers` survives, it is end-to-end in practice for gRPC). The
X-Forwarded-* family and X-Real-IP are rebuilt: values that came in are kept only when the
peer is a trusted proxy, otherwise a client could claim any address. Framing is re-derived,
never copied: an unknown-length body goes up chunked, a known one keeps its Content-Length.

Responses coming down lose their hop-by-hop fields too; the client-side adapter re-frames the
body (chunked when the length is unknown).

Everything here is one pass over the header list with set lookups: no regex, no re-parsing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Iterable
from operator import itemgetter

from ..compiler.schema import ProxyConfig
from . import grpc
from .api import Backend, Headers, Request, Response
from .upstream.client import UpstreamClient
from .upstream.pool import parse_origin

__all__ = [
    "HOP_BY_HOP",
    "PEER_TRUSTED",
    "TrustedProxies",
    "clean_response",
    "forward",
]

# Set in Request.state by the connection when the peer is one of the entrypoint's trusted proxies.
PEER_TRUSTED = "a3s.peer_trusted"

# RFC 9110 §7.6.1 plus the de-facto ones (Keep-Alive, Proxy-Connection) and the proxy auth pair,
# which belongs to the hop that consumes it (as Go's ReverseProxy does).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Dropped at the entrypoint when the peer is not a trusted proxy (ingress.py); whatever is left
# when a request reaches the proxy came from a trusted proxy or was set by a middleware.
FORWARDED_FIELDS = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-real-ip"}
)
_FORWARDED = FORWARDED_FIELDS
# A Connection header may not remove these: framing and routing depend on them (and a client
# must not be able to drop the forwarding headers we add by naming them).
_PROTECTED = frozenset({b"content-length", b"host"}) | _FORWARDED
_DEFAULT_PORT = {"http": b"80", "https": b"443"}
_SCHEMES = {"http": b"http", "https": b"https"}
_name_of = itemgetter(0)
# A Headers without running its __init__ (a Python frame), for lists built here and handed over.
_bare_headers = object.__new__


class TrustedProxies:
    """The entrypoint's trusted proxies; resolves the client address behind them."""

    __slots__ = ("_networks",)

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self._networks)

    def client_ip(self, peer: str, forwarded_for: Iterable[bytes]) -> str:
        """The rightmost X-Forwarded-For hop that is not itself a trusted proxy (or the leftmost).

        Only the right end of the list is trustworthy: each trusted proxy appended what it saw,
        anything left of the first untrusted hop may be forged by the client.
        """
        hops = [h.strip().decode("latin-1") for v in forwarded_for for h in v.split(b",")]
        hops = [h for h in hops if h]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop if _is_ip(hop) else peer
        return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# A field any of these names makes the general pass necessary.
_UNUSUAL = HOP_BY_HOP | FORWARDED_FIELDS | {b"x-request-id"}
_FORWARDING_CACHE_SIZE = 1024
# A longer Host (the client's choice, up to the head's 32 KiB) is not kept: the cache's memory
# stays bounded by this times its size.
_CACHED_AUTHORITY_MAX = 512
# (peer, client ip, scheme, authority) -> the forwarding fields _add_forwarded appends for them.
_forwarding: dict[tuple[str, str, str, bytes], tuple[tuple[bytes, bytes], ...]] = {}


def _headers_up(
    request: Request,
    raw: list[tuple[bytes, bytes]],
    names: list[bytes],
    host: bytes | None,
    trusted: bool,
    default_host: bytes,
) -> Headers:
    """The header list to send upstream, given the request's fields and their names.

    `host` replaces Host (None passes the client's through; `default_host` fills in when the
    client sent none, as HTTP/1.0 clients may); `trusted` says whether forwarding fields that
    came in are kept and extended. An unusual request (a hop-by-hop, forwarding or
    X-Request-Id field, or two Hosts) takes `_general_headers`; the others get C-level list
    work only: their fields go up as they are (Host replaced or kept), followed by the
    forwarding fields, which are the same for every request of one client to one authority
    and so come from a small cache. Both give the same list
    (property_tests/test_proxy_headers_properties.py)."""
    if not _UNUSUAL.isdisjoint(names) or names.count(b"host") > 1:
        return _general_headers(request, host=host, trusted=trusted, default_host=default_host)
    at = names.index(b"host") if b"host" in names else -1
    authority = raw[at][1] if at >= 0 else b""
    key = (request.client_addr[0], request.client_ip, request.scheme, authority)
    forwarding = _forwarding.get(key)
    if forwarding is None:
        forwarding = _forwarding_fields(request, key)
    # The client's fields (Host replaced, or added when it sent none), then the forwarding ones.
    if at < 0:
        out = [*raw, (b"host", default_host if host is None else host), *forwarding]
    elif host is None:
        out = [*raw, *forwarding]
    else:
        out = [*raw[:at], *raw[at + 1 :], (b"host", host), *forwarding]
    request_id = request.request_id
    if request_id:
        out.append((b"x-request-id", request_id.encode("latin-1")))
    if request.content_length is None:
        out.append((b"transfer-encoding", b"chunked"))
    headers = _bare_headers(Headers)
    headers.raw = out
    return headers


def _forwarding_fields(request: Request, key: tuple[str, str, str, bytes]) -> tuple[tuple[bytes, bytes], ...]:
    """The forwarding fields `_add_forwarded` appends for `key`'s client and authority, kept in
    the cache unless the authority is long."""
    fields: list[tuple[bytes, bytes]] = []
    _add_forwarded(fields, request, {}, key[3])
    forwarding = tuple(fields)
    if len(key[3]) <= _CACHED_AUTHORITY_MAX:
        if len(_forwarding) >= _FORWARDING_CACHE_SIZE:
            _forwarding.clear()
        _forwarding[key] = forwarding
    return forwarding


def _general_headers(request: Request, *, host: bytes | None, trusted: bool, default_host: bytes) -> Headers:
    """`_headers_up` for any request: one pass over its fields."""
    out: list[tuple[bytes, bytes]] = []
    named: set[bytes] | None = None
    incoming: dict[bytes, bytes] = {}
    request_id = request.request_id.encode("latin-1")
    upgrade: bytes | None = None
    has_id = False
    authority = None
    for name, value in request.headers.raw:
        if name in HOP_BY_HOP:
            if name == b"connection":
                named = (named or set()) | {t.strip().lower() for t in value.split(b",")}
            elif name == b"te" and value.strip().lower() == b"trailers":
                out.append((name, b"trailers"))
            elif name == b"upgrade":
                upgrade = value
            continue
        if name in _FORWARDED:
            if trusted:
                prev = incoming.get(name)
                incoming[name] = value if prev is None else prev + b", " + value
            continue
        if name == b"host":
            authority = value
            if host is not None:
                continue
        elif name == b"x-request-id":
            # Keep the client's id when it is the request's id; one copy only.
            if has_id or value != request_id:
                continue
            has_id = True
        out.append((name, value))
    if named:
        named -= _PROTECTED
        out = [(n, v) for n, v in out if n not in named]
    if upgrade is not None and _wants_websocket(request, upgrade, named):
        # RFC 6455 §4.1 through a proxy: the handshake fields go on. Extensions are not
        # negotiated through the gateway, so frames are relayed uncompressed on both sides.
        out = [(n, v) for n, v in out if n != b"sec-websocket-extensions"]
        out += [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
    if host is not None:
        out.append((b"host", host))
    elif authority is None:  # an HTTP/1.0 client may omit Host; HTTP/1.1 upstream requires one
        out.append((b"host", default_host))
    _add_forwarded(out, request, incoming, authority or b"")
    if not has_id and request_id:
        out.append((b"x-request-id", request_id))
    if request.content_length is None:
        # Unknown length (chunked in, or HTTP/2 without content-length): chunked up (RFC 9112 §7.1).
        out.append((b"transfer-encoding", b"chunked"))
    headers = Headers()
    headers.raw = out
    return headers


def _wants_websocket(request: Request, upgrade: bytes, connection: set[bytes] | None) -> bool:
    """An HTTP/1.1 GET with `Upgrade: websocket` and `Connection: upgrade` (RFC 6455 §4.1)."""
    return (
        request.method == "GET"
        and request.http_version == "1.1"
        and connection is not None
        and b"upgrade" in connection
        and b"websocket" in {t.strip().lower() for t in upgrade.split(b",")}
    )


def _add_forwarded(
    out: list[tuple[bytes, bytes]], request: Request, incoming: dict[bytes, bytes], authority: bytes
) -> None:
    peer = request.client_addr[0].encode("latin-1")
    scheme = request.scheme
    if incoming:  # only ever filled when the peer is trusted
        xff = incoming.get(b"x-forwarded-for")
        out.append((b"x-forwarded-for", xff + b", " + peer if xff else peer))
        out.append(
            (b"x-forwarded-proto", incoming.get(b"x-forwarded-proto") or _SCHEMES.get(scheme, b"http"))
        )
        out.append((b"x-forwarded-host", incoming.get(b"x-forwarded-host") or authority))
        port = incoming.get(b"x-forwarded-port") or _port_of(authority, scheme)
    else:
        out.append((b"x-forwarded-for", peer))
        out.append((b"x-forwarded-proto", _SCHEMES.get(scheme, b"http")))
        out.append((b"x-forwarded-host", authority))
        port = _port_of(authority, scheme)
    out.append((b"x-forwarded-port", port))
    client_ip = request.client_ip
    real_ip = incoming.get(b"x-real-ip") or (
        peer if client_ip == request.client_addr[0] else client_ip.encode("latin-1")
    )
    out.append((b"x-real-ip", real_ip))


_OTHER_HOPS = HOP_BY_HOP - {b"connection"}
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def _port_of(authority: bytes, scheme: str) -> bytes:
    colon = authority.rfind(b":")
    if colon > authority.rfind(b"]"):
        return authority[colon + 1 :]
    return _DEFAULT_PORT.get(scheme, b"80")


def clean_response(response: Response) -> None:
    """The hop-by-hop hygiene of a response coming down, in place (a 101 keeps its Upgrade):
    the fields RFC 9110 §7.6.1 names, and those the response's Connection names, go. The
    upstream client calls this for every response."""
    headers = response.headers
    if response.upgrade is not None:
        _switching_headers(headers)
        return
    raw = headers.raw
    names = list(map(_name_of, raw))
    if HOP_BY_HOP.isdisjoint(names):  # checked at C speed
        return
    if names.count(b"connection") == 1 and _OTHER_HOPS.isdisjoint(names):
        # The other usual case: a keep-alive backend's lone `Connection: keep-alive` (or
        # `close`), which names no field of the response: cut it out by its index.
        at = names.index(b"connection")
        token = raw[at][1].lower()
        if token in _PLAIN_CONNECTION and token not in names:
            headers.raw = raw[:at] + raw[at + 1 :]
            return
    named: set[bytes] = set()
    for name, value in raw:
        if name == b"connection":
            named |= {t.strip().lower() for t in value.split(b",")}
    named -= {b"content-length"}
    headers.raw = [(n, v) for n, v in raw if n not in HOP_BY_HOP and n not in named]


def forward(
    request: Request,
    backend: Backend,
    proxy_config: ProxyConfig,
    client: UpstreamClient,
    *,
    entrypoint_trusts_peer: bool | None = None,
) -> Awaitable[Response]:
    """Send `request` to `backend`; awaiting the result gives its response, headers cleaned
    both ways.

    `entrypoint_trusts_peer` says whether incoming X-Forwarded-* may be kept; None (the data
    path) keeps them, because the entrypoint already removed those of an untrusted peer.

    A plain function returning the client's coroutine: the upstream headers are computed here,
    the response's are cleaned by the client as it returns (`clean`), so this layer adds no
    coroutine frame to the request path.
    """
    # None: the entrypoint already dropped an untrusted peer's forwarding fields (ingress.py), so
    # what is left (a trusted proxy's, or a middleware's) is kept and extended.
    trusted = True if entrypoint_trusts_peer is None else entrypoint_trusts_peer
    authority = parse_origin(backend.url)[0].authority
    host = None if proxy_config.pass_host_header else authority
    # The field names are listed once, for the hygiene (`_headers_up`) and for gRPC.
    raw = request.headers.raw
    names = list(map(_name_of, raw))
    headers = _headers_up(request, raw, names, host, trusted, authority)
    timeouts = proxy_config.timeouts
    # Request.is_grpc from the names: the first Content-Type's value.
    if b"content-type" in names and raw[names.index(b"content-type")][1].startswith(b"application/grpc"):
        # The client's deadline bounds the upstream exchange (and fails it with
        # DEADLINE_EXCEEDED): nothing keeps a backend busy for a call already given up on.
        deadline = grpc.parse_timeout(request.headers.get("grpc-timeout"))
        if deadline is not None and (timeouts.total is None or deadline < timeouts.total):
            timeouts = timeouts.model_copy(update={"total": deadline})
    return client.send(request, backend.url, timeouts, headers=headers, clean=clean_response)


def _switching_headers(headers: Headers) -> None:
    """A 101 keeps its Upgrade and says `Connection: upgrade`; other hop-by-hop fields go."""
    raw = [(n, v) for n, v in headers.raw if n not in HOP_BY_HOP or n == b"upgrade"]
    headers.raw = [*raw, (b"connection", b"upgrade")]
