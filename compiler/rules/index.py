"""A router index: which rules of a priority-ordered list could match a request, found without
trying them all.

Scanning 10,000 routers in priority order costs 10,000 matcher calls for a request that none
takes. The index reads each rule's AST once and derives a necessary condition for it to match:
a set of *placements*, each a host key and a path prefix, such that whenever the rule matches a
request, the request fits at least one placement. Rules are filed under their placements; a
request looks up the few buckets its host and path fit, and gets the positions of the rules
filed there, in priority order. The caller then runs those rules' own matchers, in that order,
exactly as the linear scan would have run them: a rule the index leaves out could not have
matched, so the first match is the same router (property_tests/test_router_index_properties.py).

A placement's host key is one of
  - `ANY`: no condition on the host;
  - `(EXACT, name)`: the request's canonical host (`_inputs.canonical_host`) equals `name`. An
    exact `Host` is already matched by a set lookup (`_hosts.exact_hosts`, which spells out the
    trailing-dot variants), so each member of that set is one placement;
  - `(WILD, tail)`: `Host(`*.example.com`)` tests the host with its first label replaced by `*`
    (`_hosts.host_wildcard`), that is: the host's text from its first dot on equals the tail.
    The request side computes that text once (`_wild_key`), and once more for a host with a
    trailing dot, which the matcher also tries without it.
and its path condition is `None` (any path) or a prefix of the routing path (`Path(p)` needs the
prefix `p` as much as `PathPrefix(p)` does).

Conditions combine as logic says: `a && b` fits a placement of `a` and one of `b` at once (two
different exact hosts, or two prefixes neither of which extends the other, cannot both hold, so
that pair is dropped), `a || b` fits a placement of either, and `!a`, regexps, headers, queries,
methods and ClientIP say nothing (`ANY`, any path). A rule whose placements would exceed
`MAX_PLACEMENTS` is filed under `ANY`: the index stays small, and such a rule is simply tried on
every request, as before. Placements are computed once per rule text, so a reload that keeps its
rules rebuilds the index with dictionary inserts only (the runtime caches them by rule text).

TCP rules use the same scheme on the TLS server name (`HostSNI`, `tcp_matchers.server_name`),
without the path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._catalog import Kind
from ._hosts import exact_hosts
from ._inputs import canonical_host, go_lower, routing_path
from .ast import And, Matcher, Not, Rule, operands
from .http_matchers import HttpMatchInput
from .tcp_matchers import TcpMatchInput, server_name

__all__ = ["MAX_PLACEMENTS", "Placement", "RuleIndex", "placements"]

MAX_PLACEMENTS = 256

_ANY, _EXACT, _WILD = 0, 1, 2
HostKey = tuple[int, str]
Placement = tuple[HostKey, str | None]
_ANY_HOST: HostKey = (_ANY, "")
_ANYWHERE: Placement = (_ANY_HOST, None)
_EVERYTHING: frozenset[Placement] = frozenset({_ANYWHERE})


class _Paths:
    """The rules of one host bucket, by path prefix: prefixes are grouped by length, so a request
    path is cut once per distinct length (a handful in practice), not once per character."""

    __slots__ = ("any", "by_length", "lengths")

    def __init__(self) -> None:
        self.any: list[int] = []
        self.by_length: dict[int, dict[str, list[int]]] = {}
        self.lengths: tuple[int, ...] = ()

    def add(self, prefix: str | None, position: int) -> None:
        if prefix is None:
            self.any.append(position)
        else:
            self.by_length.setdefault(len(prefix), {}).setdefault(prefix, []).append(position)

    def freeze(self) -> None:
        self.lengths = tuple(sorted(self.by_length))

    def collect(self, path: str | None, into: list[list[int]]) -> None:
        if self.any:
            into.append(self.any)
        if path is None:
            return
        size = len(path)
        for length in self.lengths:
            if length > size:
                break
            found = self.by_length[length].get(path[:length])
            if found is not None:
                into.append(found)


class RuleIndex:
    """Positions of the rules (a list in priority order) that could match a request.

    `candidates(host, path)` takes the request's canonical host (HTTP: `canonical_host`; TCP: the
    server name as `HostSNI` compares it) and its routing path (None when it has none or it is
    malformed), and returns positions in increasing order: the linear scan restricted to them
    picks the same rule as the scan of the whole list.
    """

    __slots__ = ("_any", "_exact", "_wild")

    def __init__(self, rules: Iterable[frozenset[Placement]]) -> None:
        """`rules`: the `placements` of each rule, in priority order."""
        self._exact: dict[str, _Paths] = {}
        self._wild: dict[str, _Paths] = {}
        self._any = _Paths()
        for position, found in enumerate(rules):
            for (host_kind, key), prefix in found:  # distinct pairs: never twice in one list
                self._bucket(host_kind, key).add(prefix, position)
        for paths in (self._any, *self._exact.values(), *self._wild.values()):
            paths.freeze()

    def _bucket(self, host_kind: int, key: str) -> _Paths:
        if host_kind == _ANY:
            return self._any
        table = self._exact if host_kind == _EXACT else self._wild
        found = table.get(key)
        if found is None:
            found = table[key] = _Paths()
        return found

    def http_candidates(self, request: HttpMatchInput) -> Sequence[int]:
        """The candidates of an HTTP request, from the host and path its matchers compare."""
        return self.candidates(canonical_host(request.host), routing_path(request.path))

    def tcp_candidates(self, connection: TcpMatchInput) -> Sequence[int]:
        """The candidates of a TCP connection, from the server name `HostSNI` compares."""
        return self.candidates(server_name(connection), None)

    def candidates(self, host: str, path: str | None) -> Sequence[int]:
        found: list[list[int]] = []
        exact = self._exact.get(host)
        if exact is not None:
            exact.collect(path, found)
        if self._wild:
            key = _wild_key(host)
            wild = self._wild.get(key)
            if wild is not None:
                wild.collect(path, found)
            if host.endswith("."):
                bare = _wild_key(host[:-1])
                wild = self._wild.get(bare) if bare != key else None
                if wild is not None:
                    wild.collect(path, found)
        self._any.collect(path, found)
        if not found:
            return ()
        if len(found) == 1:
            return found[0]
        return sorted(set().union(*found))

    def statistics(self) -> dict[str, int]:
        """How the rules are filed: host buckets of each kind, rules tried on every request."""
        return {
            "exact_hosts": len(self._exact),
            "wildcard_hosts": len(self._wild),
            "unindexed": len(self._any.any),
        }


def _wild_key(host: str) -> str:
    """The host's text from its first dot on ('' without a dot): what a `*` wildcard compares."""
    dot = host.find(".")
    return host[dot:] if dot >= 0 else ""


def placements(rule: Rule, kind: Kind) -> frozenset[Placement]:
    """A necessary condition for `rule` to match: the request fits at least one placement.

    An empty set means the rule can match no request at all (e.g. two different exact hosts).
    Not cached here: hashing a long left-deep chain recurses once per operand, so callers cache
    by rule text (runtime/router.py `compile_rule`).
    """
    if isinstance(rule, Matcher):
        return _leaf(rule, kind)
    if isinstance(rule, Not):
        return _EVERYTHING
    parts = [placements(part, kind) for part in operands(rule)]
    if isinstance(rule, And):
        result = parts[0]
        for part in parts[1:]:
            result = _both(result, part)
        return result
    if any(_ANYWHERE in part for part in parts):
        return _EVERYTHING
    either = frozenset().union(*parts)
    return either if len(either) <= MAX_PLACEMENTS else _EVERYTHING


def _both(left: frozenset[Placement], right: frozenset[Placement]) -> frozenset[Placement]:
    if len(left) * len(right) > MAX_PLACEMENTS:
        # Either side alone is still a necessary condition: keep the narrower one.
        return left if len(left) <= MAX_PLACEMENTS and _ANYWHERE not in left else right
    out: set[Placement] = set()
    for host_a, prefix_a in left:
        for host_b, prefix_b in right:
            host = _host_and(host_a, host_b)
            possible, prefix = _prefix_and(prefix_a, prefix_b)
            if host is not None and possible:
                out.add((host, prefix))
    return frozenset(out)


def _host_and(a: HostKey, b: HostKey) -> HostKey | None:
    """Both host conditions at once; None when they cannot both hold."""
    if a[0] == _ANY:
        return b
    if b[0] == _ANY:
        return a
    if a[0] == _EXACT and b[0] == _EXACT:
        return a if a[1] == b[1] else None
    return a if a[0] == _EXACT else b  # an exact host is the narrower condition; keeping one is sound


def _prefix_and(a: str | None, b: str | None) -> tuple[bool, str | None]:
    """Both path prefixes at once: the longer, when it extends the shorter; (False, None) when
    neither does, as no path starts with both."""
    if a is None or b is None:
        return True, b if a is None else a
    if a.startswith(b):
        return True, a
    if b.startswith(a):
        return True, b
    return False, None


def _leaf(m: Matcher, kind: Kind) -> frozenset[Placement]:
    if kind == "http":
        if m.name == "Host":
            return _hosts(go_lower(m.args[0]), exact_hosts(go_lower(m.args[0])))
        if m.name in ("Path", "PathPrefix"):
            return frozenset({(_ANY_HOST, m.args[0])})
    elif m.name == "HostSNI":
        # tcp_matchers._host_sni / _hosts.sni_expression: one trailing dot dropped, lower-cased.
        expression = m.args[0].removesuffix(".").lower() if m.args[0] != "*" else "*"
        return _hosts(expression, frozenset({expression}) - {""})
    return _EVERYTHING


def _hosts(expression: str, exact: frozenset[str]) -> frozenset[Placement]:
    if expression == "*":
        return _EVERYTHING
    if expression.startswith("*"):
        tails = {expression[1:]}
        if expression.endswith("."):  # _hosts.host_wildcard also tries the rule without its dot
            tails.add(expression[1:-1])
        return frozenset(((_WILD, tail), None) for tail in tails)
    return frozenset(((_EXACT, name), None) for name in exact)
