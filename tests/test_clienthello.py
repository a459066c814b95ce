"""The ClientHello peek parser (runtime/protocols/clienthello.py), fed real OpenSSL hellos."""

from __future__ import annotations

import pytest

from a3s_gateway.runtime.protocols.clienthello import (
    NEED_MORE,
    NOT_TLS,
    ClientHello,
    ClientHelloError,
    parse_client_hello,
)

from .tls_hellos import client_hello, split_records


def test_sni_and_alpn_are_read_from_a_real_hello() -> None:
    hello = client_hello("Db.Example.com", ("h2", "postgresql"))
    assert parse_client_hello(hello) == ClientHello("Db.Example.com", ("h2", "postgresql"))


def test_a_hello_without_sni_or_alpn() -> None:
    assert parse_client_hello(client_hello(None)) == ClientHello(None, ())


def test_every_prefix_needs_more_and_records_may_split_the_message() -> None:
    hello = client_hello("a.test", ("x",))
    for cut in range(len(hello)):
        assert parse_client_hello(hello[:cut]) is NEED_MORE
    for size in (1, 7, 100):
        assert parse_client_hello(split_records(hello, size)) == ClientHello("a.test", ("x",))


@pytest.mark.parametrize("first", [b"GET / HTTP/1.1\r\n", b"\x00\x00\x00\x08\x04\xd2\x16/", b"SSH-2.0"])
def test_plaintext_protocols_are_not_tls(first: bytes) -> None:
    assert parse_client_hello(first) is NOT_TLS


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x2e\x01\x03\x01", "SSLv2"),
        (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "not a ClientHello"),
        (b"\x16\x02\x00\x00\x05\x01\x00\x00\x01\x00", "not TLS"),
        (b"\x16\x03\x01\x00\x00", "0 bytes"),
        (b"\x16\x03\x01\x00\x04\x01\x00\x00\x08" + b"\x15\x03\x01\x00\x02\x02\x28", "record type 21"),
        (b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00", "overruns"),
    ],
)
def test_bad_hellos_are_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ClientHelloError, match=reason):
        parse_client_hello(data)


def test_an_oversized_hello_is_refused_from_its_header() -> None:
    header = b"\x16\x03\x01\x40\x00\x01" + (70000).to_bytes(3)
    with pytest.raises(ClientHelloError, match="limit"):
        parse_client_hello(header)
    with pytest.raises(ClientHelloError, match="limit"):
        parse_client_hello(client_hello("a.test"), max_size=64)


def test_a_64_kib_server_name_is_refused() -> None:
    # OpenSSL will not send such a name: build the extension by hand inside a real hello's frame.
    name = b"a" * 65500
    sni = (len(name) + 3).to_bytes(2) + b"\x00" + len(name).to_bytes(2) + name
    ext = b"\x00\x00" + len(sni).to_bytes(2) + sni
    body = (
        b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + len(ext).to_bytes(2) + ext
    )
    message = b"\x01" + len(body).to_bytes(3) + body
    records = b"".join(
        b"\x16\x03\x01" + len(message[i : i + 2**14]).to_bytes(2) + message[i : i + 2**14]
        for i in range(0, len(message), 2**14)
    )
    with pytest.raises(ClientHelloError, match="limit"):
        parse_client_hello(records)
