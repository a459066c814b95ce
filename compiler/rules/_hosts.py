"""`Host` and `HostSNI` values as Traefik v3.7 compares them: exact names and `*.` wildcards.

Traefik v3.7 (pkg/muxer/muxer.go `DomainMatchHostExpression`) compares a host with an
expression case-insensitively; an expression starting with `*` is compared with the host whose
first label is replaced by `*`. So `*.example.com` matches `a.example.com` (one label, any
text), and neither `a.b.example.com` nor `example.com`. The HTTP `host` matcher
(pkg/muxer/http/matcher.go) also accepts a trailing dot on either side, by trying again with the
dot removed from the expression, then from the request's host. The TCP `hostSNI` matcher
(pkg/muxer/tcp/matcher.go) removes one trailing dot from the expression, and none from the
server name (RFC 6066 3: "without a trailing dot").

Each expression is turned into a closure once; matching is string operations on the host, which
the caller has already lower-cased (`canonical_host`, or the TCP server name), so the comparisons
here are plain equality: the lower-cased forms are equal exactly when Go's `EqualFold` holds for
ASCII text, and Traefik refuses non-ASCII expressions.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["domain_matches", "exact_hosts", "host_expression", "sni_expression"]

HostTest = Callable[[str], bool]


def domain_matches(domain: str, expression: str) -> bool:
    """Traefik's DomainMatchHostExpression, on lower-case text."""
    if expression.startswith("*"):
        dot = domain.find(".")
        return expression == ("*" if dot < 0 else "*" + domain[dot:])
    return domain == expression


def exact_hosts(expression: str) -> frozenset[str]:
    """The request hosts an exact (no `*`) lower-cased expression accepts, trailing dots included.

    Traefik's three comparisons (equal; equal to the rule without its dot; the request's host
    without its dot equal to the rule) precomputed, so matching is one set lookup.
    """
    bare = {expression[:-1]} if expression.endswith(".") else set()
    return frozenset({expression, expression + "."} | bare) - {""}


def host_expression(expression: str) -> HostTest:
    """The HTTP Host test for a lower-cased expression: reqHost -> bool (empty never matches)."""
    if not expression.startswith("*"):
        return exact_hosts(expression).__contains__
    bare = expression[:-1] if expression.endswith(".") else None

    def match(host: str) -> bool:
        if not host:
            return False
        if domain_matches(host, expression):
            return True
        if bare is not None and domain_matches(host, bare):
            return True
        return host.endswith(".") and domain_matches(host[:-1], expression)

    return match


def sni_expression(expression: str) -> HostTest:
    """The TCP HostSNI test: one trailing dot dropped from the expression, case-insensitive."""
    expression = expression.removesuffix(".").lower()
    if not expression.startswith("*"):
        return lambda name: name != "" and name == expression
    return lambda name: name != "" and domain_matches(name, expression)
