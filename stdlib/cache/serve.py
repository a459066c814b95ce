"""Answering from an entry: whether it may be used (RFC 9111 §4.2, §5.2.1), the response built from
it (with `Age`, or a 304 for the client's own conditionals), and a 304's header update (§3.2)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ...runtime.api import Headers, Request, Response, empty_body
from .entry import Entry
from .freshness import delta_seconds, http_date

__all__ = ["freshened", "serve", "usable", "validators"]

# Sent with a 304 from the cache (RFC 9110 §15.4.5).
_NOT_MODIFIED_FIELDS = frozenset(
    {b"etag", b"cache-control", b"content-location", b"date", b"expires", b"vary", b"last-modified"}
)


def usable(entry: Entry, age: float, req_cc: dict[str, str | None]) -> bool:
    """Whether the entry may answer without asking the upstream (§4.2, §5.2.1)."""
    if "no-cache" in req_cc:
        return False
    max_age = delta_seconds(req_cc, "max-age")
    if max_age is not None and age > max_age:
        return False
    min_fresh = delta_seconds(req_cc, "min-fresh")
    if min_fresh is not None and entry.lifetime - age < min_fresh:
        return False
    if age < entry.lifetime:
        return True
    if entry.must_revalidate or "max-stale" not in req_cc:
        return False
    if req_cc["max-stale"] is None:
        return True
    max_stale = delta_seconds(req_cc, "max-stale")
    return max_stale is not None and age - entry.lifetime <= max_stale


def validators(entry: Entry) -> bool:
    return any(k == b"etag" or k == b"last-modified" for k, _ in entry.headers)


def freshened(stored: tuple[tuple[bytes, bytes], ...], update: Headers) -> tuple[tuple[bytes, bytes], ...]:
    """§3.2: the 304's fields replace the stored ones of the same name (never Content-Length)."""
    names = {k for k, _ in update.raw if k != b"content-length"}
    kept = [(k, v) for k, v in stored if k not in names]
    return tuple(kept + [(k, v) for k, v in update.raw if k in names])


def serve(request: Request, entry: Entry, age: float, label: bytes, asked: Headers | None = None) -> Response:
    """The stored response (or a 304 for the client's conditionals in `asked`, its headers by default)."""
    if not_modified(asked or request.headers, entry):
        headers = Headers([(k, v) for k, v in entry.headers if k in _NOT_MODIFIED_FIELDS])
        headers.set("x-cache", label)
        return Response(304, headers, empty_body(), generated=True)
    headers = Headers(list(entry.headers))
    headers.set("age", str(int(age)))
    headers.set("x-cache", label)
    body = empty_body() if request.method == "HEAD" else replay(entry.chunks)
    return Response(entry.status, headers, body, generated=True)


def not_modified(headers: Headers, entry: Entry) -> bool:
    """RFC 9110 §13.2.2 at the cache: If-None-Match (weak comparison), else If-Modified-Since."""
    if entry.status != 200:
        return False
    if_none_match = headers.get_joined("if-none-match")
    if if_none_match is not None:
        etag = entry.header(b"etag")
        if etag is None:
            return False
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    since = http_date(headers.get("if-modified-since"))
    modified = http_date(entry.header(b"last-modified"))
    return since is not None and modified is not None and modified <= since


async def replay(chunks: tuple[bytes, ...]) -> AsyncGenerator[bytes, None]:
    for chunk in chunks:
        if chunk:
            yield chunk
