"""HTTP rules compiled into plain closures: `compile_http(rule)(request) -> bool`.

Each matcher does what Traefik v3's pkg/muxer/http/matcher.go does, on the same derived
values (`_inputs.py`): everything that can be prepared is prepared here (lower-cased hosts,
translated regexps, parsed CIDRs), so matching a request is a few comparisons. `&&` and `||`
short-circuit left to right, as Traefik's matchersTree does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ._compile import RuleCompileError, build
from ._hosts import exact_hosts, host_wildcard
from ._inputs import canonical_host, go_lower, go_upper, ip_key, parse_ip_spec, query_values, routing_path
from ._re2 import compile_re2
from .ast import Matcher, Rule

__all__ = ["HeaderLookup", "HttpMatchInput", "HttpMatcher", "RuleCompileError", "compile_http"]


class HeaderLookup(Protocol):
    def get_all(self, name: str) -> Sequence[str]:
        """Every value of the header `name` (case-insensitive), one per field line."""
        ...


class HttpMatchInput(Protocol):
    """What HTTP matchers read from a request."""

    @property
    def method(self) -> str: ...
    @property
    def host(self) -> str:
        """The Host header (or :authority) as sent, port included."""
        ...

    @property
    def path(self) -> str:
        """The raw, percent-encoded path of the request target."""
        ...

    @property
    def query(self) -> str:
        """The raw query string, without '?'."""
        ...

    @property
    def headers(self) -> HeaderLookup: ...
    @property
    def client_ip(self) -> str:
        """The peer's IP address (not X-Forwarded-For)."""
        ...


HttpMatcher = Callable[[HttpMatchInput], bool]


def compile_http(rule: Rule) -> HttpMatcher:
    """Compile a valid HTTP rule (`parse_rule(text, "http")` without problems)."""
    return build(rule, "http", _leaf)


def _leaf(m: Matcher) -> HttpMatcher:
    return _BUILDERS[m.name](*m.args)


def _host(host: str) -> HttpMatcher:
    host = go_lower(host)
    if host == "*":
        return lambda req: True  # Traefik v3.7.7: every request, with or without a Host
    if host.startswith("*"):
        accepts = host_wildcard(host)
        return lambda req: accepts(canonical_host(req.host))
    accepted = exact_hosts(host)  # the common case: one set lookup per request
    return lambda req: canonical_host(req.host) in accepted


def _host_regexp(pattern: str) -> HttpMatcher:
    search = compile_re2(pattern).search
    return lambda req: search(canonical_host(req.host)) is not None


def _path(path: str) -> HttpMatcher:
    return lambda req: routing_path(req.path) == path


def _path_prefix(prefix: str) -> HttpMatcher:
    def match(req: HttpMatchInput) -> bool:
        routed = routing_path(req.path)
        return routed is not None and routed.startswith(prefix)

    return match


def _path_regexp(pattern: str) -> HttpMatcher:
    search = compile_re2(pattern).search

    def match(req: HttpMatchInput) -> bool:
        routed = routing_path(req.path)
        return routed is not None and search(routed) is not None

    return match


def _method(method: str) -> HttpMatcher:
    method = go_upper(method)
    return lambda req: req.method == method


def _header(name: str, value: str) -> HttpMatcher:
    if _hidden_header(name):
        return lambda req: False
    # Values are compared as bytes in Go; a runtime that decodes fields as latin-1 sees the
    # UTF-8 bytes of a non-ASCII value as their latin-1 characters, so accept that spelling too.
    accepted = {value, value.encode("utf-8", "surrogateescape").decode("latin-1")}
    return lambda req: any(v in accepted for v in req.headers.get_all(name))


def _header_regexp(name: str, pattern: str) -> HttpMatcher:
    if _hidden_header(name):
        return lambda req: False
    search = compile_re2(pattern).search
    return lambda req: any(search(v) is not None for v in req.headers.get_all(name))


def _hidden_header(name: str) -> bool:
    # Go's server moves these out of Request.Header, so Traefik's Header matchers never see them.
    return name.lower() in ("host", "transfer-encoding")


def _query(key: str, value: str = "") -> HttpMatcher:
    # Query(`key`) matches a present key with an empty value (`?key` or `?key=`), as in Traefik.
    return lambda req: value in query_values(req.query).get(key, ())


def _query_regexp(key: str, pattern: str | None = None) -> HttpMatcher:
    if pattern is None:
        return _query(key)
    search = compile_re2(pattern).search
    return lambda req: any(search(v) is not None for v in query_values(req.query).get(key, ()))


def _client_ip(spec: str) -> HttpMatcher:
    parsed = parse_ip_spec(spec)
    if parsed is None:
        raise RuleCompileError(f"ClientIP: {spec!r} is not an IP address or CIDR range")
    contains = parsed.contains
    return lambda req: contains(ip_key(req.client_ip))


_BUILDERS: dict[str, Callable[..., HttpMatcher]] = {
    "ClientIP": _client_ip,
    "Header": _header,
    "HeaderRegexp": _header_regexp,
    "Host": _host,
    "HostRegexp": _host_regexp,
    "Method": _method,
    "Path": _path,
    "PathPrefix": _path_prefix,
    "PathRegexp": _path_regexp,
    "Query": _query,
    "QueryRegexp": _query_regexp,
}
