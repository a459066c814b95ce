"""Asking DNS servers directly (dnspython, synchronous: called in worker threads): which servers
are authoritative for a name's zone, and which of them do not answer a TXT value yet.

The zone is found by SOA queries walking up the name; its NS names are resolved to addresses,
and each one is asked with recursion off, as the ACME server's own resolver will end up asking
them. With `resolvers` given ("host:port"), those find the zone; when they find no zone (a test
DNS server such as pebble-challtestsrv answers every name and has no SOA), they are taken as the
authoritative servers themselves.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rdatatype
import dns.resolver

__all__ = ["authoritative_servers", "missing_on"]

Server = tuple[str, int]


def _resolver(resolvers: list[str]) -> dns.resolver.Resolver:
    if not resolvers:
        return dns.resolver.Resolver()
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(*_split(r)) for r in resolvers]
    resolver.lifetime = 5.0
    return resolver


def _split(address: str) -> Server:
    host, sep, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if sep and port.isdigit() else (address, 53)


def authoritative_servers(fqdn: str, resolvers: list[str]) -> list[Server]:
    resolver = _resolver(resolvers)
    try:
        zone = dns.resolver.zone_for_name(fqdn, resolver=resolver, lifetime=5.0)
        names = [str(ns.target) for ns in resolver.resolve(zone, "NS")]
        servers = sorted({(str(a), 53) for name in names for a in resolver.resolve(name, "A")})
    except (dns.exception.DNSException, OSError):
        servers = []
    return servers or [_split(r) for r in resolvers]


def missing_on(servers: list[Server], fqdn: str, value: str) -> list[Server]:
    """The servers that do not answer `value` among `fqdn`'s TXT strings (yet)."""
    query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
    query.flags &= ~0x0100  # RD off: the server's own data
    missing = []
    for host, port in servers:
        try:
            answer = dns.query.udp(query, host, port=port, timeout=2.0)
        except (dns.exception.DNSException, OSError):
            missing.append((host, port))
            continue
        strings = {
            b"".join(r.strings).decode() for rrset in answer.answer for r in rrset if hasattr(r, "strings")
        }
        if value not in strings:
            missing.append((host, port))
    return missing
