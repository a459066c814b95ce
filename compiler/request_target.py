"""The request target as the router reads it and the backend receives it.

A rule that guards `/admin` is only as good as the agreement between the path the router matches
and the path the backend resolves. A backend may resolve dot-segments (RFC 3986 §5.2.4), decode
percent-encodings first, merge slashes, or read `\\` as a separator; the gateway must not match
one path and forward another that the backend reads as a different one. So every entrypoint
rewrites the path once, before routing, into a form every such reader agrees on, and forwards
exactly that (Traefik v3's "request path" pipeline, docs/dataplane.md "Request paths"):

1. refuse (400) a fragment (`#`), a malformed percent-encoding, and the percent-encodings a
   backend may read as structure once decoded: `%2F %5C %00 %3B %25 %3F %23`, each allowed per
   entrypoint (`http { encoded_characters { ... } }`). A raw `\\` counts as `%5C`: refused, or
   when allowed forwarded as `%5C`, data and never a separator;
2. normalise: decode the percent-encoded unreserved characters (RFC 3986 §2.3, §6.2.2.2) and
   upper-case the remaining encodings (§6.2.2.1);
3. sanitise (unless `sanitize_path = false`): merge duplicate slashes, then remove `.` and `..`
   segments (§5.2.4). A dot-segment carrying `;` parameters (`..;x`), which servlet containers
   read as `..`, is refused.

The query string is never touched. The common path (no `%`, `\\`, `#`, `//` nor `/.`) is one
scan of `in` tests and returns the target object itself.

`valid_authority` is the Host check (RFC 9112 §3.2, RFC 3986 §3.2.2): a reg-name or IPv4 address,
or a bracketed IPv6 literal, with an optional port; no userinfo, no comma list.

Pure code shared by the runtime's router and by `a3s-gateway route`, so the dry run answers what
`run` does.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field

from .schema import EntrypointHttp

__all__ = ["DEFAULT_PATHS", "BadTarget", "PathPolicy", "sanitize_path", "valid_authority"]

# RFC 3986 §2.3.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# The encodings Traefik refuses by default: (config flag, upper-case hex, what it encodes).
_GUARDED = (
    ("allow_encoded_slash", "2F", "slash"),
    ("allow_encoded_backslash", "5C", "backslash"),
    ("allow_encoded_null_character", "00", "null character"),
    ("allow_encoded_semicolon", "3B", "semicolon"),
    ("allow_encoded_percent", "25", "percent sign"),
    ("allow_encoded_question_mark", "3F", "question mark"),
    ("allow_encoded_hash", "23", "hash"),
)
_NAMES = {code: name for _, code, name in _GUARDED}


class BadTarget(ValueError):
    """The request target is refused (the runtime answers 400 with this message)."""


@functools.cache
def _table(denied: frozenset[str]) -> dict[str, str]:
    """Every two-hex-digit pair (either case) -> its normal form; denied pairs are absent."""
    digits = "0123456789abcdefABCDEF"
    table: dict[str, str] = {}
    for hi in digits:
        for lo in digits:
            code = (hi + lo).upper()
            if code in denied:
                continue
            char = chr(int(code, 16))
            table[hi + lo] = char if char in _UNRESERVED else "%" + code
    return table


@dataclass(frozen=True, slots=True)
class PathPolicy:
    """One entrypoint's path rules, built once from its `http` block."""

    denied: frozenset[str] = frozenset(_NAMES)  # upper-case hex pairs refused
    sanitize: bool = True
    _codes: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_codes", _table(self.denied))

    @classmethod
    def from_config(cls, http: EntrypointHttp) -> PathPolicy:
        chars = http.encoded_characters
        denied = frozenset(code for flag, code, _ in _GUARDED if not getattr(chars, flag))
        return cls(denied, http.sanitize_path)

    def target(self, method: str, target: str) -> str:
        """The request target to route and forward: `target` itself when nothing needs doing."""
        if (
            target[:1] == "/"
            and "%" not in target
            and "//" not in target
            and "/." not in target
            and "\\" not in target
            and "#" not in target
        ):
            return target
        if target[:1] != "/":
            # RFC 9112 §3.2.4 asterisk-form, §3.2.3 authority-form (CONNECT); an absolute-form
            # target was turned into origin-form by the HTTP/1.1 adapter already.
            if (target == "*" and method == "OPTIONS") or method == "CONNECT":
                return target
            raise BadTarget("the request target is not an absolute path")
        query = target.find("?")
        path = target if query < 0 else target[:query]
        new = self.path(path)
        if new == path:
            return target
        return new if query < 0 else new + target[query:]

    def path(self, path: str) -> str:
        """The normal form of a path that starts with '/' (no query); raises BadTarget."""
        if "#" in path:
            raise BadTarget("a fragment (#) in the request path")
        if "\\" in path:
            if "5C" in self.denied:
                raise BadTarget("a backslash in the request path")
            path = path.replace("\\", "%5C")  # data, never a separator
        if "%" in path:
            path = self._percent(path)
        if self.sanitize and ("//" in path or "/." in path):
            path = sanitize_path(path)
        return path

    def _percent(self, path: str) -> str:
        parts = path.split("%")
        out = [parts[0]]
        codes = self._codes
        for part in parts[1:]:
            pair = part[:2]
            code = codes.get(pair)
            if code is None:
                name = _NAMES.get(pair.upper()) if len(pair) == 2 else None
                if name is not None:
                    raise BadTarget(f"an encoded {name} (%{pair.upper()}) in the request path")
                raise BadTarget("a malformed percent-encoding in the request path")
            out.append(code)
            out.append(part[2:])
        return "".join(out)


DEFAULT_PATHS = PathPolicy()


def sanitize_path(path: str) -> str:
    """Merge duplicate slashes, then remove dot-segments (RFC 3986 §5.2.4) from a path that
    starts with '/'. A segment ending the path in `.` or `..` leaves a trailing slash, as §5.2.4
    does (`/a/b/..` -> `/a/`)."""
    stack: list[str] = []
    trailing = False
    for segment in path.split("/")[1:]:
        trailing = True
        if segment == "" or segment == ".":
            continue
        if segment == "..":
            if stack:
                stack.pop()
            continue
        if ";" in segment and segment.partition(";")[0] in (".", ".."):
            # Servlet containers strip `;` parameters first and read a dot-segment here
            # (`/public/..;/admin` is `/admin` to them, `/public/..;/admin` to RFC 3986).
            raise BadTarget("a dot-segment with parameters (;) in the request path")
        stack.append(segment)
        trailing = False
    if not stack:
        return "/"
    return "/" + "/".join(stack) + ("/" if trailing else "")


# RFC 3986 §3.2.2 reg-name (which covers IPv4address) and §3.2.3 port. Sub-delims are allowed
# except ',': a comma is how two Host values look once merged (RFC 9110 §5.3).
_REG_NAME = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})*(?::[0-9]{0,5})?")
_IP_LITERAL = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::[0-9]{0,5})?")


def valid_authority(host: str) -> bool:
    """Whether a Host value (or :authority) is `host [":" port]` with no userinfo (RFC 9112 §3.2).
    Not cached here: the router caches its answers by the raw bytes (`runtime/router.py`)."""
    if _REG_NAME.fullmatch(host) is not None:
        return True
    literal = _IP_LITERAL.fullmatch(host)
    if literal is None:
        return False
    try:
        ipaddress.IPv6Address(literal.group(1))
    except ValueError:
        return False
    return True
