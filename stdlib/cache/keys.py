"""Cache keys (RFC 9111 §4.1): the primary key is the target URI; `Vary` adds a secondary key made
of the request's values of the named fields, under the URL's current record token."""

from __future__ import annotations

import hashlib

from ...runtime.api import Headers, Request
from .entry import VaryRecord

__all__ = ["resource_key", "variant_key", "vary_names"]


def resource_key(request: Request) -> str:
    """The primary cache key (§4): the target URI."""
    uri = f"{request.scheme}://{request.host}{request.target}"
    return "r:" + hashlib.blake2b(uri.encode("utf-8", "surrogateescape"), digest_size=20).hexdigest()


def vary_names(vary: str | None) -> tuple[str, ...]:
    if not vary:
        return ()
    return tuple(sorted({item.strip().lower() for item in vary.split(",") if item.strip()}))


def variant_key(resource: str, record: VaryRecord, headers: Headers) -> str:
    """The secondary key (§4.1): the record's token and the request's values of the Vary fields,
    normalised (list items trimmed and joined with one comma)."""
    values = [record.token]
    for name in record.names:
        joined = headers.get_joined(name)
        values.append("\x01" if joined is None else ",".join(p.strip() for p in joined.split(",")))
    digest = hashlib.blake2b("\0".join(values).encode("latin-1", "replace"), digest_size=20).hexdigest()
    return resource + ":" + digest
