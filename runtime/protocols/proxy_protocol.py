"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), sans-IO.

A proxy in front of the gateway (a cloud load balancer, HAProxy) starts each connection with a
header naming the client it accepted; the gateway does the same towards backends that ask for
it. `parse_proxy_header(data)` answers `NEED_MORE`, `NOT_PROXY` (the bytes do not start with
either signature), or a `ProxyHeader` with the number of bytes it took, and raises
`ProxyHeaderError` for a malformed header; `encode_proxy_header` writes either version.

Version 1 (§2.1) is one text line of at most 107 bytes: `PROXY TCP4 src dst sport dport\r\n`
(TCP6 alike; `PROXY UNKNOWN ...\r\n` names no address). Version 2 (§2.2) is binary: a 12-byte
signature, version and command (0x21 PROXY, 0x20 LOCAL: a health check of the proxy's own),
family and transport (0x11 TCP over IPv4, 0x21 TCP over IPv6, 0x00 unspecified), a 16-bit
length, the addresses, then TLVs (skipped here).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

__all__ = [  # and the constants V1_MAX, V2_SIGNATURE
    "NEED_MORE",
    "NOT_PROXY",
    "ProxyHeader",
    "ProxyHeaderError",
    "encode_proxy_header",
    "parse_proxy_header",
]

V1_PREFIX: Final = b"PROXY "
V1_MAX: Final = 107
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_FAMILIES = {0x11: (4, 12), 0x21: (16, 36)}  # family+transport -> (address size, block size)

Address = tuple[str, int]


class ProxyHeaderError(ValueError):
    """A header that starts like a PROXY header and is not a valid one."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    # None: the header names no client (v1 UNKNOWN, v2 LOCAL or an unspecified family).
    source: Address | None
    destination: Address | None
    length: int  # bytes of the header; what follows is the client's


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_MORE: Final = _Marker("NEED_MORE")
NOT_PROXY: Final = _Marker("NOT_PROXY")


def parse_proxy_header(data: bytes) -> ProxyHeader | _Marker:
    if data[:12] == V2_SIGNATURE[: len(data[:12])] and data:
        return _parse_v2(data) if len(data) >= 16 else NEED_MORE
    if data[:6] == V1_PREFIX[: len(data[:6])]:
        return _parse_v1(data) if len(data) >= 6 else NEED_MORE
    return NOT_PROXY


def _parse_v1(data: bytes) -> ProxyHeader | _Marker:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError("a PROXY v1 line longer than 107 bytes")
        return NEED_MORE
    try:
        fields = data[:end].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("a PROXY v1 line that is not ASCII") from None
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(None, None, end + 2)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("a PROXY v1 line needs TCP4|TCP6 src dst sport dport")
    version = 4 if fields[1] == "TCP4" else 6
    source = (_ip(fields[2], version), _port(fields[4]))
    destination = (_ip(fields[3], version), _port(fields[5]))
    return ProxyHeader(source, destination, end + 2)


def _ip(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"{text!r} is not an IP address") from None
    if address.version != version:
        raise ProxyHeaderError(f"{text!r} is not an IPv{version} address")
    return str(address)


def _port(text: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535 or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(f"{text!r} is not a port")
    return int(text)


def _parse_v2(data: bytes) -> ProxyHeader | _Marker:
    version_command, family = data[12], data[13]
    if version_command >> 4 != 2 or version_command & 0x0F not in (0, 1):
        raise ProxyHeaderError(f"PROXY v2 version/command byte {version_command:#x}")
    length = 16 + int.from_bytes(data[14:16])
    if len(data) < length:
        return NEED_MORE
    if version_command & 0x0F == 0 or family not in _V2_FAMILIES:  # LOCAL, or no address we use
        return ProxyHeader(None, None, length)
    size, block = _V2_FAMILIES[family]
    if length - 16 < block:
        raise ProxyHeaderError("a PROXY v2 address block shorter than its family")
    body = data[16:length]
    source_ip = ipaddress.ip_address(body[:size])
    destination_ip = ipaddress.ip_address(body[size : 2 * size])
    ports = body[2 * size : 2 * size + 4]
    source = (str(source_ip), int.from_bytes(ports[:2]))
    destination = (str(destination_ip), int.from_bytes(ports[2:]))
    return ProxyHeader(source, destination, length)


def encode_proxy_header(version: int, source: Address, destination: Address) -> bytes:
    """The header announcing a TCP connection from `source` to `destination`."""
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:  # an IPv4 client on an IPv6 socket: say both as IPv6
        src, dst = _as_v6(src), _as_v6(dst)
    if version == 1:
        name = "TCP4" if src.version == 4 else "TCP6"
        return f"PROXY {name} {src} {dst} {source[1]} {destination[1]}\r\n".encode()
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + source[1].to_bytes(2) + destination[1].to_bytes(2)
    return V2_SIGNATURE + bytes([0x21, family]) + len(body).to_bytes(2) + body


def _as_v6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address):
        return address
    return ipaddress.IPv6Address("::ffff:" + str(address))
