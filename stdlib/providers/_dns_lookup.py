"""DNS lookups for the dns provider: a host's A and AAAA addresses, an SRV name's targets.

dnspython's async resolver does the work; it runs on asyncio and on trio (we hand it the
backend of the running loop, which it finds with sniffio as anyio does), falls back to TCP when an answer is truncated, and hands back each
record set's TTL. A lookup gives the targets and the smallest TTL among the records it used, or
raises `LookupFailed` with a one-line reason (no such name, no answer, a timeout, too many
records) that the provider turns into a problem or a lost source.

SRV (RFC 2782): only the targets of the lowest priority are used (the others are backups,
which a load balancer has no slot for); each target's weight is its server's weight, a weight
of 0 counting as 1 (RFC 2782 gives such targets "a very small chance", not none).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

__all__ = ["Lookup", "LookupFailed", "Target", "make_resolver"]


class LookupFailed(Exception):
    """The name did not resolve; `unreachable` when no resolver answered at all."""

    def __init__(self, reason: str, *, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable


@dataclass(frozen=True, order=True)
class Target:
    address: str  # an IP address
    port: int | None  # SRV: the record's port; a host lookup: None (the URL's port)
    weight: int = 1

    @property
    def host(self) -> str:
        return f"[{self.address}]" if ":" in self.address else self.address


@dataclass(frozen=True)
class Lookup:
    targets: tuple[Target, ...]
    ttl: float


def make_resolver(nameservers: Sequence[str], timeout: float) -> dns.asyncresolver.Resolver:
    """A resolver asking `nameservers` ("host:port", default port 53), or the system's."""
    resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    if nameservers:
        servers: list[str | dns.nameserver.Nameserver] = []
        for text in nameservers:
            host, port = _split(text)
            servers.append(dns.nameserver.Do53Nameserver(host, port))
        resolver.nameservers = servers
    resolver.lifetime = timeout
    resolver.cache = None  # the provider schedules re-resolution by TTL itself
    return resolver


def _split(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port or 53)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


async def lookup_host(resolver: dns.asyncresolver.Resolver, name: str, max_records: int) -> Lookup:
    """Every A and AAAA address of `name` (an IP literal is itself, with no TTL to follow)."""
    try:
        return Lookup((Target(str(ipaddress.ip_address(name.strip("[]"))), None),), float("inf"))
    except ValueError:
        pass
    targets: list[Target] = []
    ttls: list[float] = []
    missing: list[str] = []
    for rdtype in ("A", "AAAA"):
        answer = await _query(resolver, name, rdtype, missing)
        if answer is not None:
            _check_size(name, rdtype, len(answer), max_records)
            targets += [Target(rdata.address, None) for rdata in answer]
            ttls.append(answer.ttl)
    if not targets:
        raise LookupFailed(f"{name}: {' and '.join(missing) or 'no address'}")
    return Lookup(tuple(sorted(set(targets))), min(ttls))


async def lookup_srv(resolver: dns.asyncresolver.Resolver, name: str, max_records: int) -> Lookup:
    """The addresses and ports of the lowest-priority targets of SRV `name`, with their weights."""
    missing: list[str] = []
    answer = await _query(resolver, name, "SRV", missing)
    if answer is None:
        raise LookupFailed(f"{name}: {missing[0]}")
    _check_size(name, "SRV", len(answer), max_records)
    records = [r for r in answer if r.target.to_text() != "."]  # "." = the service is not offered
    if not records:
        raise LookupFailed(f"{name}: the SRV record says the service is not available here")
    best = min(r.priority for r in records)
    targets: list[Target] = []
    ttls = [float(answer.ttl)]
    for record in (r for r in records if r.priority == best):
        host = await lookup_host(resolver, record.target.to_text(omit_final_dot=True), max_records)
        ttls.append(host.ttl)
        targets += [Target(t.address, record.port, max(record.weight, 1)) for t in host.targets]
    if len(targets) > max_records:
        raise LookupFailed(
            f"{name}: its targets have {len(targets)} addresses, more than max_records ({max_records})"
        )
    return Lookup(tuple(sorted(set(targets))), min(ttls))


def _check_size(name: str, rdtype: str, count: int, max_records: int) -> None:
    if count > max_records:
        raise LookupFailed(
            f"{name}: the {rdtype} answer has {count} records, more than max_records ({max_records})"
        )


async def _query(
    resolver: dns.asyncresolver.Resolver, name: str, rdtype: str, missing: list[str]
) -> dns.resolver.Answer | None:
    # dnspython remembers the first event loop library it saw as its default: name this one's.
    backend = dns.asyncbackend.get_backend(dns.asyncbackend.sniff())
    try:
        return await resolver.resolve(name, rdtype, search=False, backend=backend)
    except dns.resolver.NXDOMAIN:
        missing.append("no such name (NXDOMAIN)")
    except dns.resolver.NoAnswer:
        missing.append(f"no {rdtype} record")
    except dns.resolver.NoNameservers as exc:
        raise LookupFailed(f"{name}: no resolver gave an answer ({exc})", unreachable=True) from None
    except dns.exception.Timeout:
        raise LookupFailed(f"{name}: the resolvers did not answer in time", unreachable=True) from None
    except dns.exception.DNSException as exc:  # a malformed answer, among others
        raise LookupFailed(f"{name}: {type(exc).__name__}: {exc}") from None
    return None
