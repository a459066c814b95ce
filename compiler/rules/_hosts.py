"""`Host` and `HostSNI` values as Traefik v3.7 compares them: exact names and `*.` wildcards.

Traefik v3.7 (pkg/muxer/muxer.go `DomainMatchHostExpression`) compares a host with an
expression case-insensitively; an expression starting with `*` is compared with the host whose
first label is replaced by `*`. So `*.example.com` matches `a.example.com` (one label, any
text), and neither `a.b.example.com` nor `example.com`. The HTTP `host` matcher
(pkg/muxer/http/matcher.go) also accepts a trailing dot on either side, by trying again with the
dot removed from the expression, then from the request's host. The TCP `hostSNI` matcher
(pkg/muxer/tcp/matcher.go) removes one trailing dot from the expression, and none from the
server name (RFC 6066 3: "without a trailing dot").

Each expression is turned into a closure once, and matching builds no string (but to drop a
request's trailing dot): an exact name is one set lookup, a wildcard an `endswith` and a `find`.
The caller has already lower-cased the host (`canonical_host`, or the TCP server name), so the
comparisons here are plain equality: the lower-cased forms are equal exactly when Go's `EqualFold`
holds for ASCII text, and Traefik refuses non-ASCII expressions.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["exact_hosts", "host_wildcard", "sni_expression"]

HostTest = Callable[[str], bool]


def _first_label_replaced(tail: str) -> HostTest:
    """`"*" + tail == domain with its first label replaced by "*"`, without building that string.

    The domain's text from its first dot on must be `tail`: it ends with `tail`, and its first dot
    is where `tail` starts (so `tail` starts with a dot, and the label before it has none).
    """
    if not tail:
        return lambda domain: "." not in domain
    size = len(tail)
    return lambda domain: domain.endswith(tail) and domain.find(".") == len(domain) - size


def exact_hosts(expression: str) -> frozenset[str]:
    """The request hosts an exact (no `*`) lower-cased expression accepts, trailing dots included.

    Traefik's three comparisons (equal; equal to the rule without its dot; the request's host
    without its dot equal to the rule) precomputed, so matching is one set lookup.
    """
    bare = {expression[:-1]} if expression.endswith(".") else set()
    return frozenset({expression, expression + "."} | bare) - {""}


def host_wildcard(expression: str) -> HostTest:
    """The HTTP Host test for a lower-cased expression starting with `*` (an exact one is a set
    lookup, `exact_hosts`): reqHost -> bool, and an empty host never matches."""
    exact = _first_label_replaced(expression[1:])
    bare = _first_label_replaced(expression[1:-1]) if expression.endswith(".") else None

    def match(host: str) -> bool:
        if not host:
            return False
        if exact(host) or (bare is not None and bare(host)):
            return True
        return host.endswith(".") and exact(host[:-1])

    return match


def sni_expression(expression: str) -> HostTest:
    """The TCP HostSNI test: one trailing dot dropped from the expression, case-insensitive."""
    expression = expression.removesuffix(".").lower()
    if not expression.startswith("*"):
        return lambda name: name != "" and name == expression
    wildcard = _first_label_replaced(expression[1:])
    return lambda name: name != "" and wildcard(name)
