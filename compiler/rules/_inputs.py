"""What Traefik's matchers look at, derived from the raw request exactly as Go derives it.

Each function reproduces one step of Traefik v3 (and the Go standard library under it) so the
matchers compare against the same strings Traefik does:

- `canonical_host`: requestdecorator's `parseHost` (Go `net.SplitHostPort`, bracketed IPv6)
  then `types.CanonicalDomain` (trim spaces, lower-case). The trailing dot is kept.
- `routing_path`: Go's `URL.EscapedPath()` of the request target, then Traefik's
  `withRoutingPath`, which decodes every percent-escape except the reserved characters of
  RFC 3986 §2.2 and `%25`, compared as written: `%2F` stays encoded, `%2f` is decoded (the
  lookup in Traefik's table is case-sensitive).
- `query_values`: Go's `url.ParseQuery` (`&` only; pairs with `;` or a bad escape are dropped).
- `ip_key` / `parse_ip_spec`: Go's `net.ParseIP` / `net.ParseCIDR` and `IPNet.Contains`, where
  an IPv4-mapped IPv6 address is the IPv4 address.

The per-request functions are pure and cached, so a request checked against fifty routers pays
for each derivation once.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping

__all__ = [
    "IpSpec",
    "canonical_host",
    "go_lower",
    "go_upper",
    "ip_key",
    "parse_ip_spec",
    "query_values",
    "routing_path",
]

_CACHE = 4096
_GO_SPACE = " \t\n\v\f\r\x85\xa0"


def go_lower(text: str) -> str:
    """Go's strings.ToLower: per-character simple case mapping (Python's lower() is full)."""
    if text.isascii():
        return text.lower()
    return "".join("i" if ch == "\u0130" else ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


def go_upper(text: str) -> str:
    """Go's strings.ToUpper: per-character simple case mapping (so `ß` stays `ß`)."""
    if text.isascii():
        return text.upper()
    return "".join(ch.upper() if len(ch.upper()) == 1 else ch for ch in text)


@functools.lru_cache(maxsize=_CACHE)
def canonical_host(raw: str) -> str:
    """The host Host/HostRegexp compare against: port stripped, lower-cased, spaces trimmed."""
    return go_lower(_parse_host(raw).strip(_GO_SPACE))


def _parse_host(addr: str) -> str:
    if ":" not in addr:
        return addr
    host = _split_host_port(addr)
    if host is None:
        return addr[1:-1] if addr[0] == "[" and addr[-1] == "]" else addr
    return host


def _split_host_port(hostport: str) -> str | None:
    """The host part of Go's net.SplitHostPort, or None where Go returns an error."""
    i = hostport.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if hostport[0] == "[":
        end = hostport.find("]")
        if end < 0 or end + 1 != i:
            return None
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return None
    if "[" in hostport[j:] or "]" in hostport[k:]:
        return None
    return host


# Go's validEncoded(s, encodePath): unreserved, sub-delims, ':', '@', '[', ']', '/', and '%'.
_VALID_ENCODED = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@\[\]/%]*\Z")
_NO_ESCAPES = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@\[\]/]*\Z")
# Bytes Go's escape(s, encodePath) leaves alone.
_PATH_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~$&+,/:;=@")
# Traefik's reservedCharacters: these escapes stay encoded in the routing path.
_RESERVED = frozenset({
    "%3A", "%2F", "%3F", "%23", "%5B", "%5D", "%40", "%21", "%24", "%26", "%27", "%28", "%29", "%2A", "%2B",
    "%2C", "%3B", "%3D", "%25",
})  # fmt: skip
_HEX = frozenset(b"0123456789abcdefABCDEF")


@functools.lru_cache(maxsize=_CACHE)
def routing_path(raw: str) -> str | None:
    """The path Path/PathPrefix/PathRegexp see, or None for a malformed percent-encoding.

    Go rejects such a request with 400 before routing, so no path matcher matches it.
    """
    if _NO_ESCAPES.match(raw):
        return raw  # the common case: nothing to decode, nothing Go would re-encode
    data = raw.encode("utf-8", "surrogateescape")
    decoded = _unescape(data)
    if decoded is None:
        return None
    # URL.EscapedPath(): the target as sent when it is a valid encoding, else Path re-escaped.
    escaped = data if _VALID_ENCODED.match(raw) and raw.isascii() else _escape(decoded)
    out = bytearray()
    i = 0
    while i < len(escaped):
        if escaped[i] != 0x25:
            out.append(escaped[i])
            i += 1
            continue
        code = escaped[i : i + 3].decode("ascii")
        if code in _RESERVED:
            out += escaped[i : i + 3]
        else:
            out.append(int(code[1:], 16))
        i += 3
    return out.decode("utf-8", "surrogateescape")


def _unescape(data: bytes) -> bytes | None:
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x25:
            if i + 2 >= len(data) or data[i + 1] not in _HEX or data[i + 2] not in _HEX:
                return None
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def _escape(data: bytes) -> bytes:
    return b"".join(bytes((c,)) if c in _PATH_SAFE else b"%%%02X" % c for c in data)


@functools.lru_cache(maxsize=_CACHE)
def query_values(raw: str) -> Mapping[str, tuple[str, ...]]:
    """Go's url.ParseQuery(raw) with its errors ignored, as Traefik's `req.URL.Query()` does."""
    values: dict[str, list[str]] = {}
    for pair in raw.split("&"):
        if ";" in pair or not pair:
            continue
        key, _, value = pair.partition("=")
        k, v = _query_unescape(key), _query_unescape(value)
        if k is not None and v is not None:
            values.setdefault(k, []).append(v)
    return {k: tuple(v) for k, v in values.items()}


def _query_unescape(text: str) -> str | None:
    if "%" not in text and "+" not in text:
        return text
    decoded = _unescape(text.replace("+", " ").encode("utf-8", "surrogateescape"))
    return None if decoded is None else decoded.decode("utf-8", "surrogateescape")


IpKey = tuple[int, int]


@functools.lru_cache(maxsize=_CACHE)
def ip_key(text: str) -> IpKey | None:
    """(4 or 6, integer) for an address Go's net.ParseIP accepts; IPv4-mapped IPv6 is IPv4."""
    if "%" in text:  # Go does not accept zones
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return 4, int(address.ipv4_mapped)
    return address.version, int(address)


class IpSpec:
    """One ClientIP argument: an address, or a CIDR range (Go's ip.Checker, one entry)."""

    __slots__ = ("mask", "network", "version")

    def __init__(self, version: int, network: int, mask: int) -> None:
        self.version, self.network, self.mask = version, network, mask

    def contains(self, key: IpKey | None) -> bool:
        return key is not None and key[0] == self.version and key[1] & self.mask == self.network


def parse_ip_spec(text: str) -> IpSpec | None:
    """An IP (`10.0.0.1`, `::1`) or CIDR (`10.0.0.0/8`, `fe80::/10`) as Go reads it, else None."""
    if "/" not in text:
        key = ip_key(text)
        return None if key is None else IpSpec(key[0], key[1], (1 << (32 if key[0] == 4 else 128)) - 1)
    address, _, prefix = text.partition("/")
    if not (prefix.isascii() and prefix.isdigit()) or ip_key(address) is None:
        return None
    try:
        net = ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False)
    except ValueError:
        return None
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        # Go's IPNet.Contains treats ::ffff:a.b.c.d/n (n >= 96) as a.b.c.d/(n - 96).
        bits = net.prefixlen - 96
        return IpSpec(4, int(net.network_address.ipv4_mapped), ((1 << bits) - 1) << (32 - bits))
    return IpSpec(net.version, int(net.network_address), int(net.netmask))
