"""TCP rules compiled into plain closures: `compile_tcp(rule)(connection) -> bool`.

As Traefik v3.7's pkg/muxer/tcp/matcher.go: the server name is lower-cased and trimmed before
matching (`types.CanonicalDomain`), `HostSNI` compares it case-insensitively with the rule (one
trailing dot dropped from the rule, none from the server name) and takes a leading `*.` label
(`_hosts.py`), `HostSNI(`*`)` matches every connection, with or without SNI, and `ALPN` matches
when any protocol the client offered equals the value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ._compile import RuleCompileError, build
from ._hosts import sni_expression
from ._inputs import go_lower, ip_key, parse_ip_spec
from ._re2 import compile_re2
from .ast import Matcher, Rule

__all__ = ["RuleCompileError", "TcpMatchInput", "TcpMatcher", "compile_tcp", "server_name"]

_GO_SPACE = " \t\n\v\f\r\x85\xa0"


class TcpMatchInput(Protocol):
    """What TCP matchers read from a connection."""

    @property
    def sni(self) -> str | None:
        """The TLS server name the client sent; None without TLS or without SNI."""
        ...

    @property
    def alpn(self) -> Sequence[str]:
        """The ALPN protocols the client offered, in its order."""
        ...

    @property
    def client_ip(self) -> str:
        """The peer's IP address."""
        ...


TcpMatcher = Callable[[TcpMatchInput], bool]


def compile_tcp(rule: Rule) -> TcpMatcher:
    """Compile a valid TCP rule (`parse_rule(text, "tcp")` without problems)."""
    return build(rule, "tcp", _leaf)


def _leaf(m: Matcher) -> TcpMatcher:
    return _BUILDERS[m.name](*m.args)


def server_name(conn: TcpMatchInput) -> str:
    """The SNI as Traefik matches it: trimmed and lower-cased, '' when absent."""
    return go_lower((conn.sni or "").strip(_GO_SPACE))


def _host_sni(host: str) -> TcpMatcher:
    if host == "*":
        return lambda conn: True
    accepts = sni_expression(host)
    return lambda conn: accepts(server_name(conn))


def _host_sni_regexp(pattern: str) -> TcpMatcher:
    search = compile_re2(pattern).search
    return lambda conn: search(server_name(conn)) is not None


def _alpn(protocol: str) -> TcpMatcher:
    return lambda conn: protocol in conn.alpn


def _client_ip(spec: str) -> TcpMatcher:
    parsed = parse_ip_spec(spec)
    if parsed is None:
        raise RuleCompileError(f"ClientIP: {spec!r} is not an IP address or CIDR range")
    contains = parsed.contains
    return lambda conn: contains(ip_key(conn.client_ip))


_BUILDERS: dict[str, Callable[[str], TcpMatcher]] = {
    "ALPN": _alpn,
    "ClientIP": _client_ip,
    "HostSNI": _host_sni,
    "HostSNIRegexp": _host_sni_regexp,
}
