"""Which matchers exist, how they may be spelled, and how many arguments each takes.

Traefik v3 (pkg/muxer/http/matcher.go, pkg/muxer/tcp/matcher.go) registers each matcher under
its name, its lower-case and upper-case forms and its title-case form (`pkg/rules/parser.go`:
`Pathprefix`), so `Host`, `host`, `HOST` and `Host` are one matcher but `pathPrefix` is unknown.
A3S adds `Headers` as a spelling of `Header` (the A3S docs use it).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ARITY", "V2_ONLY", "Kind", "describe_arity", "kind_of", "resolve", "resolve_v2", "spellings"]

Kind = Literal["http", "tcp"]

# Accepted argument counts (Traefik v3's expectNParameters / expect1Parameter).
ARITY: dict[Kind, dict[str, tuple[int, ...]]] = {
    "http": {
        "ClientIP": (1,),
        "Header": (2,),
        "HeaderRegexp": (2,),
        "Host": (1,),
        "HostRegexp": (1,),
        "Method": (1,),
        "Path": (1,),
        "PathPrefix": (1,),
        "PathRegexp": (1,),
        "Query": (1, 2),
        "QueryRegexp": (1, 2),
    },
    "tcp": {"ALPN": (1,), "ClientIP": (1,), "HostSNI": (1,), "HostSNIRegexp": (1,)},
}
_ALIASES: dict[Kind, dict[str, str]] = {"http": {"Headers": "Header"}, "tcp": {}}
# Traefik v2 names with no v3 matcher of that name: the v3 matcher to use instead.
V2_ONLY: dict[Kind, dict[str, str]] = {
    "http": {"HostHeader": "Host", "HeadersRegexp": "HeaderRegexp"},
    "tcp": {},
}


def spellings(name: str) -> set[str]:
    """The spellings Traefik registers for a matcher name."""
    lower = name.lower()
    return {name, lower, name.upper(), lower[:1].upper() + lower[1:]}


def _table(names: dict[str, str]) -> dict[str, str]:
    return {spelling: canonical for written, canonical in names.items() for spelling in spellings(written)}


_RESOLVE: dict[Kind, dict[str, str]] = {
    kind: _table({**{n: n for n in ARITY[kind]}, **_ALIASES[kind]}) for kind in ("http", "tcp")
}
_V2: dict[Kind, dict[str, str]] = {kind: _table({n: n for n in V2_ONLY[kind]}) for kind in ("http", "tcp")}


def resolve(name: str, kind: Kind) -> str | None:
    """The canonical matcher a spelling names in `kind` rules, or None."""
    return _RESOLVE[kind].get(name)


def resolve_v2(name: str, kind: Kind) -> str | None:
    """The canonical v2-only name a spelling names (`hostheader` -> `HostHeader`), or None."""
    return _V2[kind].get(name)


def kind_of(name: str, kind: Kind) -> Kind | None:
    """The other kind whose matcher this spelling names, when it is not a `kind` matcher."""
    other: Kind = "tcp" if kind == "http" else "http"
    return other if resolve(name, other) is not None else None


def describe_arity(counts: tuple[int, ...]) -> str:
    if len(counts) == 1:
        n = counts[0]
        return f"exactly {n} argument{'s' if n != 1 else ''}"
    return " or ".join(str(n) for n in counts) + " arguments"
