"""RFC 9111 rules for a shared cache, as pure functions of header values and `now` (wall seconds).

What may be stored (§3), how long it stays fresh (§4.2.1, §4.2.2), how old it is (§4.2.3) and
which request directives allow serving it (§5.2.1). No I/O and no clock: the middleware passes
the times in, so these are tested against a reference on any clock.

Where the RFC leaves a choice we follow nginx and Varnish: `private` (with or without field
names) and `no-cache="field"` are treated as their unqualified forms, `Vary: *` and responses
that set cookies are not stored, and heuristic freshness is 10% of the time since Last-Modified
(RFC 9111 §4.2.2's suggestion, as Squid and browsers do), capped.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import mktime_tz, parsedate_tz

__all__ = [
    "HEURISTIC_STATUSES",
    "corrected_initial_age",
    "delta_seconds",
    "freshness_lifetime",
    "http_date",
    "parse_cache_control",
    "storable",
]

Directives = Mapping[str, str | None]

# §4.2.2: heuristically cacheable by default (RFC 9110 §15.1).
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# Final statuses this cache understands well enough to store (§3: "understood by the cache").
# 206 is left out: ranges are passed through, not assembled.
UNDERSTOOD_STATUSES = frozenset(HEURISTIC_STATUSES - {206} | {302, 303, 307, 400, 403, 451})
_DELTA_MAX = 2**31  # §1.2.2: a larger delta-seconds is taken as this


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Directive name (lower case) -> argument (unquoted) or None. The first of a repeated name wins."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for item in _split_list(value):
        name, eq, arg = item.partition("=")
        name = name.strip().lower()
        if not name or name in out:
            continue
        arg = arg.strip()
        if len(arg) >= 2 and arg[0] == arg[-1] == '"':
            arg = arg[1:-1].replace('\\"', '"')
        out[name] = arg if eq else None
    return out


def _split_list(value: str) -> list[str]:
    """Split on commas outside quoted strings (`no-cache="a, b"` is one directive)."""
    items, start, quoted = [], 0, False
    for i, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append(value[start:i])
            start = i + 1
    items.append(value[start:])
    return [item.strip() for item in items if item.strip()]


def delta_seconds(directives: Directives, name: str) -> int | None:
    """The directive's delta-seconds; None when absent or not a non-negative integer (§1.2.2)."""
    arg = directives.get(name)
    if arg is None or not arg.isdigit():
        return None
    return min(int(arg), _DELTA_MAX)


def http_date(value: str | None) -> float | None:
    """An HTTP-date (RFC 9110 §5.6.7, any of its three formats) as Unix seconds, or None."""
    if not value:
        return None
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return float(mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


def storable(
    status: int,
    request_cc: Directives,
    response_cc: Directives,
    *,
    authorized: bool,
    has_expires: bool,
    vary: str | None,
    sets_cookie: bool,
) -> bool:
    """§3: may a shared cache store this response to a GET?"""
    if status not in UNDERSTOOD_STATUSES or "no-store" in request_cc or "no-store" in response_cc:
        return False
    if "private" in response_cc or sets_cookie:
        return False
    if vary is not None and any(item.strip() == "*" for item in vary.split(",")):
        return False
    # §3.5: a response to an authenticated request only with an explicit shared-cache permission.
    if authorized and not (
        "public" in response_cc or "s-maxage" in response_cc or "must-revalidate" in response_cc
    ):
        return False
    return (
        "public" in response_cc
        or has_expires
        or "max-age" in response_cc
        or "s-maxage" in response_cc
        or status in HEURISTIC_STATUSES
    )


def freshness_lifetime(
    status: int,
    response_cc: Directives,
    *,
    date: float | None,
    expires: str | None,
    last_modified: float | None,
    response_time: float,
    heuristic_max: float,
) -> float:
    """§4.2.1: s-maxage, then max-age, then Expires - Date, then a heuristic (§4.2.2), else 0."""
    for name in ("s-maxage", "max-age"):
        if name in response_cc:
            return float(delta_seconds(response_cc, name) or 0)  # an invalid value: stale (§4.2.1)
    date = response_time if date is None else date
    if expires is not None:
        when = http_date(expires)
        return 0.0 if when is None else max(0.0, when - date)  # an invalid Expires is in the past (§5.3)
    heuristic = status in HEURISTIC_STATUSES or "public" in response_cc
    if heuristic and last_modified is not None and heuristic_max > 0:
        return min(heuristic_max, max(0.0, (date - last_modified) * 0.1))
    return 0.0


def corrected_initial_age(
    *, age: str | None, date: float | None, request_time: float, response_time: float
) -> float:
    """§4.2.3: the age the response already had when it arrived (current age = this + resident time)."""
    age_value = float(int(age)) if age is not None and age.strip().isdigit() else 0.0
    apparent_age = max(0.0, response_time - date) if date is not None else 0.0
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, age_value + response_delay)
