"""The header hygiene's fast paths give exactly the general pass's lists (runtime/proxy.py).

`forward` computes a request's upstream headers with `_headers_up`, called here as `forward`
calls it (`sent_up`). The usual request has no hop-by-hop field, no forwarding field and no
X-Request-Id (one C-level `isdisjoint` scan says so): its fields go up as they are (Host
replaced, or kept when `host` is None, or `default_host` when the client sent none) followed by
the forwarding fields, which are the same for every request of one client to one authority and
so come from a small cache. Anything else takes `_general_headers`. For random header lists
(names drawn from the ones either path treats specially, plus ordinary ones, in any order and
multiplicity), peers, schemes, request ids, body lengths and Host policies, the two give the same
list, also when the forwarding fields come from the cache (each request is tried twice).
`clean_response`, which the upstream client runs on every response and which cuts a lone
`Connection: keep-alive` out by its index, drops exactly the fields RFC 9110 §7.6.1 says to.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime import proxy
from a3s_gateway.runtime.api import Headers, Request, Response
from a3s_gateway.runtime.proxy import HOP_BY_HOP, _general_headers, _headers_up, clean_response

NAMES = [b"host", b"accept", b"user-agent", b"x-request-id", b"connection", b"te", b"x-forwarded-for"]
NAMES += [b"x-forwarded-host", b"x-real-ip", b"keep-alive", b"content-type", b"upgrade", b"x-custom"]
VALUES = [b"a.com", b"a.com:8080", b"[::1]:443", b"", b"keep-alive", b"trailers", b"id-1", b"1.2.3.4", b"x"]


def sent_up(request: Request, *, host: bytes | None, trusted: bool, default_host: bytes) -> Headers:
    """The headers `forward` sends up for `request`: its field names listed once, then `_headers_up`."""
    raw = request.headers.raw
    return _headers_up(request, raw, [name for name, _ in raw], host, trusted, default_host)


fields = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=6)


@settings(max_examples=500, deadline=None)
@given(
    fields,
    st.sampled_from([("10.0.0.1", "10.0.0.1"), ("10.0.0.1", "192.168.1.9"), ("::1", "::1")]),
    st.sampled_from(["http", "https"]),
    st.sampled_from(["", "id-1", "abc"]),
    st.sampled_from([0, 5, None]),
    st.sampled_from([None, b"backend:9000", b"b.example"]),
    st.booleans(),
)
def test_the_fast_path_gives_the_general_list(
    raw: list[tuple[bytes, bytes]],
    addresses: tuple[str, str],
    scheme: str,
    request_id: str,
    length: int | None,
    host: bytes | None,
    trusted: bool,
) -> None:
    peer, client_ip = addresses
    request = Request(
        "GET",
        "/",
        Headers(raw),
        client_addr=(peer, 1234),
        client_ip=client_ip,
        scheme=scheme,
        request_id=request_id,
        content_length=length,
    )
    expected = _general_headers(request, host=host, trusted=trusted, default_host=b"fallback").raw
    for _ in range(2):  # the second time, the forwarding fields come from the cache
        got = sent_up(request, host=host, trusted=trusted, default_host=b"fallback").raw
        assert got == expected
        assert request.headers.raw == raw  # the request's own list is left alone


RESPONSE_NAMES = [b"connection", b"keep-alive", b"close", b"content-length", b"server", b"te", b"x-a"]
RESPONSE_VALUES = [b"keep-alive", b"Keep-Alive", b"close", b"close, x-a", b" keep-alive", b"x-a", b"5", b""]


def _reference_response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """RFC 9110 §7.6.1 spelled out: drop hop-by-hop fields and those Connection names."""
    named = {t.strip().lower() for n, v in raw if n == b"connection" for t in v.split(b",")}
    named -= {b"content-length"}
    return [(n, v) for n, v in raw if n not in HOP_BY_HOP and n not in named]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(RESPONSE_NAMES), st.sampled_from(RESPONSE_VALUES)), max_size=6))
def test_response_hygiene_drops_exactly_the_hop_by_hop_fields(raw: list[tuple[bytes, bytes]]) -> None:
    headers = Headers(raw)
    clean_response(Response(200, headers))
    assert headers.raw == _reference_response_headers(raw)


def test_long_authorities_leave_the_forwarding_cache_bounded_in_bytes() -> None:
    """The Host a client sends goes into X-Forwarded-Host (and Port): the fields for a long one
    are built, right, and not kept, so the cache holds at most its size times a short key."""
    proxy._forwarding.clear()
    for n in range(64):
        raw = [(b"host", b"%d.%s.example" % (n, b"h" * 4096)), (b"accept", b"*/*")]
        request = Request("GET", "/", Headers(raw), client_addr=("10.0.0.1", 1234), client_ip="10.0.0.1")
        expected = _general_headers(request, host=None, trusted=False, default_host=b"fallback").raw
        assert sent_up(request, host=None, trusted=False, default_host=b"fallback").raw == expected
    assert sum(len(authority) for _, _, _, authority in proxy._forwarding) <= 1024
