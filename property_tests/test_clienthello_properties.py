"""The ClientHello parser: any split of a real hello parses the same; random bytes never raise
anything but ClientHelloError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime.protocols.clienthello import (
    NEED_MORE,
    ClientHello,
    ClientHelloError,
    parse_client_hello,
)
from tests.tls_hellos import client_hello, split_records

_HELLOS = {
    (name, alpn): client_hello(name, alpn)
    for name in ("a.test", "very-long-label." * 12 + "example", None)
    for alpn in ((), ("h2", "http/1.1"))
}


@settings(max_examples=300)
@given(st.sampled_from(sorted(_HELLOS, key=repr)), st.integers(1, 600), st.integers(0, 2000))
def test_any_split_parses_the_same(key: tuple[str | None, tuple[str, ...]], record: int, cut: int) -> None:
    name, alpn = key
    data = split_records(_HELLOS[key], record)
    expected = ClientHello(name, alpn)
    # Bytes arrive in any segmentation: every prefix needs more, the whole parses the same.
    cut = min(cut, len(data) - 1)
    assert parse_client_hello(data[:cut]) is NEED_MORE
    assert parse_client_hello(data) == expected
    assert parse_client_hello(data + b"\x17\x03\x03\x00\x01x") == expected


@settings(max_examples=1000)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    try:
        parse_client_hello(data)
    except ClientHelloError:
        pass


@settings(max_examples=500)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 400))
def test_corrupted_hellos_never_raise_anything_else(noise: bytes, at: int) -> None:
    hello = _HELLOS[("a.test", ("h2", "http/1.1"))]
    at = min(at, len(hello))
    try:
        parse_client_hello(hello[:at] + noise + hello[at + len(noise) :])
    except ClientHelloError:
        pass
