"""Traefik v2's `{name:pattern}` templates, found and rewritten as v3 regexps for hints.

Traefik v2 routed through gorilla/mux, whose templates (`/users/{id:[0-9]+}`,
`{sub:[a-z]+}.example.com`) put a regexp inside braces. Traefik v3 reads the same text as a
Go regexp in which `{id:...}` is literal text, so the rule silently stops matching. The brace
scan below is gorilla's `braceIndices`; the rewrite is its `newRouteRegexp`: literal parts
quoted with Go's `regexp.QuoteMeta`, each template replaced by its pattern (or the default,
`[^/]+` in paths and `[^.]+` in hosts), the whole anchored.
"""

from __future__ import annotations

import re

__all__ = ["quote_meta", "template_hint", "v2_template"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?::.+)?", re.DOTALL)
_META = frozenset("\\.+*?()|[]{}^$")


def quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta."""
    return "".join("\\" + ch if ch in _META else ch for ch in text)


def _templates(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level `{...}` whose content is `name` or `name:pattern`."""
    found: list[tuple[int, int]] = []
    level = start = 0
    for i, ch in enumerate(text):
        if ch == "{":
            level += 1
            if level == 1:
                start = i
        elif ch == "}" and level > 0:
            level -= 1
            if level == 0 and _NAME.fullmatch(text, start + 1, i):
                found.append((start, i + 1))
    return found


def v2_template(text: str) -> int | None:
    """Offset of the first v2 template in `text`, or None."""
    found = _templates(text)
    return found[0][0] if found else None


def template_hint(text: str, default: str, *, end: bool) -> str:
    """The v3 regexp a v2 template meant: `/users/{id:[0-9]+}` -> `^/users/([0-9]+)$`."""
    out = ["^"]
    last = 0
    for start, stop in _templates(text):
        _, _, pattern = text[start + 1 : stop - 1].partition(":")
        out.append(quote_meta(text[last:start]))
        out.append(f"({pattern or default})")
        last = stop
    out.append(quote_meta(text[last:]))
    if end:
        out.append("$")
    return "".join(out)
