"""Router priorities and the order routers are tried in.

Traefik (pkg/server/router/router.go, pkg/muxer/http/mux.go): a router without a priority, or
with priority 0, gets the length of its rule (`len(rule)` in Go: bytes of UTF-8), and routers
are tried from the highest priority down. TCP routers (pkg/muxer/tcp/mux.go) have one special
case: the catch-all `HostSNI(`*`)` with no priority gets -1, so it is tried last.

Traefik sorts with Go's unstable `sort.Sort` over routers read from a map, so routers of equal
priority are tried in no defined order. A3S breaks ties by router name (code point order):
the order is total and never depends on how the configuration was written.
"""

from __future__ import annotations

from .ast import Matcher, Not, Rule
from .parser import parse_rule

__all__ = ["MAX_USER_PRIORITY", "default_priority", "effective_priority", "is_catch_all", "sort_key"]

# Traefik reserves the top 1000 priorities for its internal routers (math.MaxInt - 1000).
MAX_USER_PRIORITY = 2**63 - 1 - 1000


def default_priority(rule_text: str) -> int:
    """The priority Traefik gives a router that sets none: the rule's length in bytes.

    A rule that is exactly the TCP catch-all `HostSNI(`*`)` gets -1.
    """
    if "*" in rule_text and is_catch_all(rule_text):
        return -1
    return len(rule_text.encode("utf-8", "surrogatepass"))


def effective_priority(rule_text: str, priority: int | None) -> int:
    """An explicit priority wins; None or 0 (Traefik: "not set") means the default."""
    return priority if priority else default_priority(rule_text)


def is_catch_all(rule_text: str) -> bool:
    """Whether a TCP rule is Traefik's catch-all: one HostSNI(`*`), negations ignored as in Traefik."""
    parsed = parse_rule(rule_text, "tcp")
    node: Rule | None = parsed.ast
    while isinstance(node, Not):  # Traefik's tree keeps `!` as a flag that its check ignores
        node = node.inner
    return isinstance(node, Matcher) and node.name == "HostSNI" and node.args == ("*",)


def sort_key(name: str, priority: int) -> tuple[int, str]:
    """Sort routers with this key: higher priority first, then by name."""
    return (-priority, name)
