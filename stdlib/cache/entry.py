"""What the cache stores: complete responses (`Entry`) and, per URL, the Vary field names
(`VaryRecord`), plus their byte form for Redis.

An `Entry` is immutable and built only once its whole body has arrived, so a reader never sees
a response being written (no torn entries). Its body is kept as the chunks it should be replayed
as: one chunk for an ordinary body, one per event for a server-sent event stream, so a cached
stream is re-emitted with its event boundaries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .freshness import corrected_initial_age, freshness_lifetime, http_date, parse_cache_control

__all__ = ["Entry", "VaryRecord", "decode", "encode", "make_entry"]

HeaderPairs = tuple[tuple[bytes, bytes], ...]
# Fixed cost counted per stored object besides its bytes (key, bookkeeping), so that a flood of
# tiny entries still respects the byte bound.
OVERHEAD = 128


@dataclass(frozen=True, slots=True)
class Entry:
    status: int
    headers: HeaderPairs
    chunks: tuple[bytes, ...]
    # Wall-clock second the response arrived, and the age it already had then (RFC 9111 §4.2.3).
    response_time: float
    initial_age: float
    # Freshness lifetime in seconds (0: stale at once, as with `no-cache`).
    lifetime: float
    # Never served stale, not even to a request's max-stale (must-revalidate, proxy-revalidate,
    # s-maxage in a shared cache, no-cache).
    must_revalidate: bool = False
    # May answer a request carrying Authorization (RFC 9111 §3.5: public, s-maxage, must-revalidate).
    shared_auth: bool = False

    def age(self, now: float) -> float:
        return self.initial_age + max(0.0, now - self.response_time)

    @property
    def size(self) -> int:
        return OVERHEAD + sum(len(k) + len(v) for k, v in self.headers) + sum(len(c) for c in self.chunks)

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


@dataclass(frozen=True, slots=True)
class VaryRecord:
    """The request fields the stored variants of one URL differ by, and the URL's current token:
    a new token (after an invalidation, or a new record) makes every older variant unreachable."""

    names: tuple[str, ...]
    token: str

    @property
    def size(self) -> int:
        return OVERHEAD + sum(len(n) for n in self.names) + len(self.token)


Stored = Entry | VaryRecord


def encode(value: Stored) -> bytes:
    """`V` + JSON for a record; `E` + JSON metadata + newline + the chunks, back to back."""
    if isinstance(value, VaryRecord):
        return b"V" + json.dumps([list(value.names), value.token]).encode()
    meta = [
        value.status,
        [[k.decode("latin-1"), v.decode("latin-1")] for k, v in value.headers],
        [len(c) for c in value.chunks],
        value.response_time,
        value.initial_age,
        value.lifetime,
        value.must_revalidate,
        value.shared_auth,
    ]
    return b"".join([b"E", json.dumps(meta, separators=(",", ":")).encode(), b"\n", *value.chunks])


def decode(data: bytes) -> Stored | None:
    """The stored value, or None for bytes this version cannot read (a foreign or older format)."""
    try:
        if data[:1] == b"V":
            names, token = json.loads(data[1:])
            return VaryRecord(tuple(names), str(token))
        if data[:1] != b"E":
            return None
        newline = data.index(b"\n")
        status, headers, lengths, response_time, initial_age, lifetime, must_revalidate, shared_auth = (
            json.loads(data[1:newline])
        )
        chunks, at = [], newline + 1
        for length in lengths:
            chunks.append(data[at : at + length])
            at += length
        if at != len(data):
            return None
        pairs = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers)
        return Entry(
            int(status),
            pairs,
            tuple(chunks),
            response_time,
            initial_age,
            lifetime,
            must_revalidate,
            shared_auth,
        )
    except (ValueError, TypeError):
        return None


def make_entry(
    status: int,
    headers: HeaderPairs,
    chunks: tuple[bytes, ...],
    *,
    request_time: float,
    response_time: float,
    heuristic_max: float,
    lifetime: float | None = None,
) -> Entry:
    """An entry with its freshness worked out from its headers (RFC 9111 §4.2), or with a fixed
    `lifetime` (completions, whose upstreams send no freshness information)."""
    fields = _Fields(headers)
    cc = parse_cache_control(fields.joined(b"cache-control"))
    date = http_date(fields.first(b"date"))
    if lifetime is None:
        lifetime = freshness_lifetime(
            status,
            cc,
            date=date,
            expires=fields.first(b"expires"),
            last_modified=http_date(fields.first(b"last-modified")),
            response_time=response_time,
            heuristic_max=heuristic_max,
        )
    no_cache = "no-cache" in cc
    return Entry(
        status,
        headers,
        chunks,
        response_time=response_time,
        initial_age=corrected_initial_age(
            age=fields.first(b"age"), date=date, request_time=request_time, response_time=response_time
        ),
        lifetime=0.0 if no_cache else lifetime,
        must_revalidate=no_cache or any(d in cc for d in ("must-revalidate", "proxy-revalidate", "s-maxage")),
        shared_auth=any(d in cc for d in ("public", "s-maxage", "must-revalidate")),
    )


class _Fields:
    def __init__(self, headers: HeaderPairs) -> None:
        self.headers = headers

    def first(self, name: bytes) -> str | None:
        return next((v.decode("latin-1") for k, v in self.headers if k == name), None)

    def joined(self, name: bytes) -> str | None:
        values = [v.decode("latin-1") for k, v in self.headers if k == name]
        return ", ".join(values) if values else None
