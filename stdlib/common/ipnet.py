"""IP addresses and CIDR sets for allowlists, and the X-Forwarded-For strategies of Traefik.

`IPSet` is built once from configuration (`"10.0.0.0/8"`, `"2001:db8::/32"`, `"192.0.2.7"`) and
answers `contains(text)` for IPv4 and IPv6 alike. IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`,
what a dual-stack socket reports for an IPv4 peer) are matched as the IPv4 address they carry, and
a mapped network in the config (`::ffff:10.0.0.0/104`) as the IPv4 network it stands for, so one
`10.0.0.0/8` entry covers both spellings. Zone ids (`fe80::1%eth0`) are ignored.

The X-Forwarded-For helpers pick the client out of the list the proxies in front wrote, right to
left (each proxy appends the address it saw, so the right end is the most trustworthy):
`xff_at_depth` takes the n-th entry from the right (Traefik's `ipStrategy.depth`),
`xff_excluding` the right-most entry not in a set of known proxies (`ipStrategy.excludedIPs`).
Both are only meaningful when every hop they skip is a proxy you run: a client can write any
left-hand entries it likes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ...runtime.api import Headers

__all__ = ["IPSet", "parse_ip", "parse_network", "xff_at_depth", "xff_entries", "xff_excluding"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_ip(text: str) -> IPAddress | None:
    """The address in `text` (bracketed, with a port or a zone id accepted), or None."""
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]:443"
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:  # "192.0.2.1:8080"
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text: str) -> IPNetwork:
    """A network from `"10.0.0.0/8"` or a single address (`/32`, `/128`). ValueError when invalid.

    Host bits are tolerated (`10.1.2.3/8` means `10.0.0.0/8`), as in Traefik and nginx.
    """
    try:
        network = ipaddress.ip_network(text.strip().split("%", 1)[0], strict=False)
    except ValueError:
        raise ValueError(
            f'invalid IP address or CIDR {text!r} (e.g. "10.0.0.0/8", "2001:db8::/32")'
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


class IPSet:
    """A fixed set of networks, answering membership for address text. Build once, query often."""

    __slots__ = ("_v4", "_v6")

    def __init__(self, entries: Iterable[str]) -> None:
        networks = [parse_network(e) for e in entries]
        v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
        v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
        self._v4 = tuple(ipaddress.collapse_addresses(v4))
        self._v6 = tuple(ipaddress.collapse_addresses(v6))

    def contains(self, text: str) -> bool:
        """Whether `text` is an address inside the set (False for anything unparsable)."""
        address = parse_ip(text)
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv4Address):
            return any(address in n for n in self._v4)
        return any(address in n for n in self._v6)

    __contains__ = contains

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

    def __repr__(self) -> str:
        return f"IPSet({[str(n) for n in (*self._v4, *self._v6)]!r})"


def xff_entries(headers: Headers) -> list[str]:
    """Every X-Forwarded-For entry, left to right, across repeated fields (RFC 9110 §5.3)."""
    joined = headers.get_joined("x-forwarded-for") or ""
    return [part.strip() for part in joined.split(",") if part.strip()]


def xff_at_depth(headers: Headers, depth: int) -> str | None:
    """The `depth`-th X-Forwarded-For entry from the right (1 = the last one), or None."""
    entries = xff_entries(headers)
    if depth < 1 or len(entries) < depth:
        return None
    return entries[-depth]


def xff_excluding(headers: Headers, excluded: IPSet) -> str | None:
    """The right-most X-Forwarded-For entry that is not one of the `excluded` proxies, or None."""
    for entry in reversed(xff_entries(headers)):
        if not excluded.contains(entry):
            return entry
    return None
