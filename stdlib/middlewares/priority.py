"""`priority`: classify each request as critical, high, normal, low or best_effort.

```hcl
middlewares "priority" {
  type    = "priority"
  default = "normal"
  rules = [
    { header = "X-Priority" },                                         # the header names the class
    { claim = "tier", values = ["enterprise"], priority = "high" },    # a claim of the user's JWT
    { key = "tier" },                                                  # the llm-keys key's `tier`
    { key = "name", values = ["batch-*"], priority = "best_effort" },
    { path = "/v1/batches*", priority = "low" },
  ]
}
```

Rules are tried in order and the first that matches decides; a request none matches gets
`default`. Each rule reads one thing: a request `header`, a `claim` of the JWT that a `jwt`
middleware placed before this one verified (`a.b` reaches a nested claim), the `tier` or
`name` of the virtual key an `llm-keys` middleware placed before this one checked, or the
request `path` (a glob over the raw path). `values` are globs the value must match
(case-sensitive; none: any value present); `priority` is the class a match gives. Without
`priority` the value itself names the class (case, `-` and `_` ignored: `BestEffort`,
`best-effort`), and a value that names none does not match, so the next rule is tried.

The class goes to `request.state["priority"]`, where the `queue` middleware and a scaled
service's cold-start buffer read it: both serve their waiters highest class first, oldest first
within a class, and under overload the queue sheds best_effort first. A request that reaches
them unclassified counts as normal. A header a client sets is the client's claim: trust it only
from clients that may (behind an auth middleware, or on an internal entrypoint).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from ...runtime.api import Handler, Request, Response
from ..base import BuildContext, MiddlewareKind
from ..common.priority import PRIORITY, Priority, parse_priority
from ..registry import register
from .schemas.priority import PriorityConfig, PriorityRule

__all__ = ["PriorityClassifier", "PriorityConfig"]

Classify = Callable[[Request], Priority | None]


@register("middleware", "priority")
class PriorityClassifier(MiddlewareKind[PriorityConfig]):
    def __init__(self, config: PriorityConfig, state: Any, ctx: BuildContext) -> None:
        super().__init__(config, state, ctx)
        # Compiled once per build: a request runs a few closures, no parsing.
        self._rules = [_compile(rule) for rule in config.rules]
        self._default = Priority[config.default.upper()]

    def classify(self, request: Request) -> Priority:
        for rule in self._rules:
            found = rule(request)
            if found is not None:
                return found
        return self._default

    async def __call__(self, request: Request, next: Handler) -> Response:
        request.state[PRIORITY] = self.classify(request)
        return await next(request)


def _compile(rule: PriorityRule) -> Classify:
    given = Priority[rule.priority.upper()] if rule.priority is not None else None
    if rule.path is not None:
        assert given is not None  # the schema insists
        path = re.compile(fnmatch.translate(rule.path)).match
        return lambda request: given if path(request.path) else None
    read = _reader(rule)
    pattern = re.compile("|".join(fnmatch.translate(v) for v in rule.values)).match if rule.values else None

    def classify(request: Request) -> Priority | None:
        value = read(request)
        if value is None or (pattern is not None and not pattern(value)):
            return None
        return given if given is not None else parse_priority(value)

    return classify


def _reader(rule: PriorityRule) -> Callable[[Request], str | None]:
    if rule.header is not None:
        return _header(rule.header.lower().encode("latin-1"))
    if rule.claim is not None:
        parts = rule.claim.split(".")
        return lambda request: _claim(request.state.get("jwt_claims"), parts)
    state_key = "llm_key_tier" if rule.key == "tier" else "llm_key"
    return lambda request: _text(request.state.get(state_key))


def _header(key: bytes) -> Callable[[Request], str | None]:
    # The raw pairs, lower-case already: no name conversion per request (Headers.get's).
    def read(request: Request) -> str | None:
        for name, value in request.headers.raw:
            if name == key:
                return value.decode("latin-1")
        return None

    return read


def _claim(claims: object, parts: list[str]) -> str | None:
    value = claims
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return _text(value)


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else None
