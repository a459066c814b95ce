"""The model table of a `model_router` service: which service serves a requested model.

Pure: no I/O, no clock. The config (stdlib/services/schemas/model_router.py) checks itself with
`problems`, at compile time; the runtime asks `plan(model)` on every request.

How a requested model is resolved:

1. **Aliases** are followed (`fast` -> `claude-haiku-4-5`), possibly through several steps;
   a loop is a compile error.
2. **Model blocks** are matched: an exact name first, then the glob patterns in the order they
   are written (`*` any run, `?` one character, `[a-z]` / `[!0-9]` a class; case-sensitive,
   as model names are). The first match names the service, and the model name to send
   upstream (`upstream_model`, default the resolved name).
3. **Fallbacks** of that block are model names too, each resolved the same way, and tried in
   order after it. Only the requested model's own list is used (a fallback's fallbacks are
   not followed), and a target already in the plan is not tried twice.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["GLOB_CHARS", "ModelTable", "RouteSpec", "Target", "alias_loop", "glob_error"]

GLOB_CHARS = frozenset("*?[")
# Plans are cached per requested name; clients send a handful of names, a hostile one many (and
# long ones: a name is client input, as large as the body): the cache is bounded in both.
_PLAN_CACHE_MAX = 4096
_PLAN_CACHE_NAME_MAX = 256


class RouteSpec(Protocol):
    """What a model block says (the config model implements it)."""

    @property
    def service(self) -> str: ...

    @property
    def upstream_model(self) -> str | None: ...

    @property
    def fallbacks(self) -> Sequence[str]: ...

    @property
    def api(self) -> str | None: ...

    @property
    def api_key(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a request: a service, and the model name it is asked for (equal and
    hashed by these two: parking is keyed by them), with the block that chose it."""

    service: str
    model: str
    route: RouteSpec | None = field(default=None, compare=False, repr=False)


def glob_error(pattern: str) -> str | None:
    """Why `pattern` is not a usable glob, or None. fnmatch accepts anything (an unclosed `[`
    becomes a literal, `[z-a]` matches nothing); a config that says that is a mistake."""
    if not pattern.strip():
        return "a model pattern cannot be empty"
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                return f"unclosed '[' at position {i + 1} in {pattern!r}"
            body = pattern[i + 1 : end].lstrip("!")
            if not body:
                return f"empty character class at position {i + 1} in {pattern!r}"
            for lo, hi in re.findall(r"(.)-(.)", body):
                if lo > hi:
                    return f"reversed range '{lo}-{hi}' in {pattern!r}"
            i = end
        i += 1
    return None


def alias_loop(aliases: Mapping[str, str], start: str) -> list[str] | None:
    """The alias loop reached from `start` (`[a, b, a]`), or None when the chain ends."""
    trail = [start]
    current = start
    while current in aliases:
        current = aliases[current]
        if current in trail:
            return [*trail[trail.index(current) :], current]
        trail.append(current)
    return None


@dataclass(frozen=True, slots=True)
class _Glob:
    pattern: str
    match: re.Pattern[str]
    route: RouteSpec


class ModelTable:
    """Aliases and model blocks, compiled once per build; `plan` is cached per requested name."""

    def __init__(
        self, routes: Mapping[str, RouteSpec], aliases: Mapping[str, str], default_model: str | None = None
    ) -> None:
        self.aliases = dict(aliases)
        self.default_model = default_model
        self._exact = {name: route for name, route in routes.items() if GLOB_CHARS.isdisjoint(name)}
        self._globs = [
            _Glob(name, re.compile(fnmatch.translate(name)), route)
            for name, route in routes.items()
            if not GLOB_CHARS.isdisjoint(name)
        ]
        self._plans: dict[str, tuple[Target, ...]] = {}

    def resolve(self, model: str) -> str:
        """`model` with its aliases followed (a loop, refused at compile time, stops the walk)."""
        seen: set[str] = set()
        while model in self.aliases and model not in seen:
            seen.add(model)
            model = self.aliases[model]
        return model

    def route(self, name: str) -> tuple[str, RouteSpec] | None:
        """(the pattern, the block) matching the resolved `name`: exact first, then globs in order."""
        route = self._exact.get(name)
        if route is not None:
            return name, route
        for glob in self._globs:
            if glob.match.match(name):
                return glob.pattern, glob.route
        return None

    def target(self, model: str) -> Target | None:
        """Where `model` (an alias or a name) goes, or None when no block matches."""
        name = self.resolve(model)
        found = self.route(name)
        if found is None:
            return None
        route = found[1]
        return Target(route.service, route.upstream_model or name, route)

    def plan(self, model: str) -> tuple[Target, ...]:
        """The targets to try for `model`, in order: its own, then its fallbacks' (empty: no route)."""
        plan = self._plans.get(model)
        if plan is None:
            plan = tuple(self._targets(model))
            if len(model) <= _PLAN_CACHE_NAME_MAX:
                if len(self._plans) >= _PLAN_CACHE_MAX:
                    self._plans.clear()
                self._plans[model] = plan
        return plan

    def _targets(self, model: str) -> Iterator[Target]:
        own = self.target(model)
        if own is None or own.route is None:
            return
        seen: set[Target] = set()
        for target in (own, *map(self.target, own.route.fallbacks)):
            if target is not None and target not in seen:
                seen.add(target)
                yield target
