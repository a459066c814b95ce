"""The PROXY header codec: what is encoded parses back, split anywhere; random bytes never raise
anything but ProxyHeaderError."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime.protocols.proxy_protocol import (
    NEED_MORE,
    ProxyHeader,
    ProxyHeaderError,
    encode_proxy_header,
    parse_proxy_header,
)

_V4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
_V6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
_PORT = st.integers(0, 65535)


@settings(max_examples=500)
@given(
    st.sampled_from([1, 2]),
    st.one_of(st.tuples(_V4, _V4), st.tuples(_V6, _V6)),
    _PORT,
    _PORT,
    st.binary(max_size=40),
)
def test_a_header_parses_back_from_any_prefix(
    version: int, ips: tuple[str, str], sport: int, dport: int, rest: bytes
) -> None:
    header = encode_proxy_header(version, (ips[0], sport), (ips[1], dport))
    for cut in range(len(header)):
        assert parse_proxy_header(header[:cut]) is NEED_MORE
    parsed = parse_proxy_header(header + rest)
    assert isinstance(parsed, ProxyHeader)
    assert parsed.source == (str(ipaddress.ip_address(ips[0])), sport)
    assert parsed.destination == (str(ipaddress.ip_address(ips[1])), dport)
    assert (header + rest)[parsed.length :] == rest


@settings(max_examples=1000)
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=120).map(lambda b: b"PROXY " + b),
                 st.binary(max_size=120).map(lambda b: b"\r\n\r\n\x00\r\nQUIT\n" + b)))  # fmt: skip
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    try:
        parse_proxy_header(data)
    except ProxyHeaderError:
        pass
