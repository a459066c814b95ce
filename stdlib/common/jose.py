"""The `jwt` middleware's JWKS cache (the key rules, shared with its config, are in jose_keys.py).

`JwksCache` holds the keys of one JWKS URL (RFC 7517), fetched with httpx. It is part of the
middleware's long-lived state, so its keys and connection survive reloads; time comes in as
`now` arguments (monotonic seconds), so its TTL and refresh rate limit are tested on a manual clock.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import jwt as pyjwt

from .jose_keys import key_algorithms

__all__ = ["JwksCache", "parse_jwks"]


@dataclass(frozen=True, slots=True)
class _Jwk:
    kid: str | None
    alg: str | None  # the JWK's own `alg`, binding it to one algorithm
    key: Any


class JwksCache:
    """The keys of one JWKS URL, fetched with httpx, cached with a TTL and a refresh rate limit.

    Time comes from `now` arguments (monotonic seconds), so tests drive it with a manual clock.
    """

    def __init__(
        self, url: str, *, ttl: float, min_interval: float, timeout: float, logger: logging.Logger
    ) -> None:
        self.url, self.ttl, self.min_interval = url, ttl, min_interval
        self._log = logger
        self._client = httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=True)
        self._keys: tuple[_Jwk, ...] = ()
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = anyio.Lock()
        self.fetches = 0

    async def find(self, kid: str | None, alg: str, now: float) -> list[Any]:
        """Keys that may verify a token signed with `alg` under `kid`, refreshing when due."""
        found = self._lookup(kid, alg)
        if now - self._fetched_at >= self.ttl or not found:
            await self.refresh(now)
            found = self._lookup(kid, alg)
        return found

    async def refresh(self, now: float) -> None:
        """Fetch the set again unless one was attempted less than `min_interval` ago."""
        seen = self._attempted_at
        async with self._lock:
            if self._attempted_at != seen or now - self._attempted_at < self.min_interval:
                return  # another request just fetched, or we are rate-limited
            self._attempted_at = now
            self.fetches += 1
            try:
                response = await self._client.get(self.url, headers={"accept": "application/json"})
                response.raise_for_status()
                keys = parse_jwks(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                self._log.warning(
                    "JWKS fetch from %s failed (keeping %d known keys): %s", self.url, len(self._keys), exc
                )
                return
            self._keys, self._fetched_at = keys, now

    def _lookup(self, kid: str | None, alg: str) -> list[Any]:
        return [
            k.key
            for k in self._keys
            if (kid is None or k.kid == kid)
            and (k.alg is None or k.alg == alg)
            and alg in key_algorithms(k.key)
        ]

    async def aclose(self) -> None:
        await self._client.aclose()


def parse_jwks(document: Any) -> tuple[_Jwk, ...]:
    """The signature keys of a JWKS document; unusable entries (oct, enc, unknown) are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS document is an object with a "keys" list')
    keys = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            continue
        try:
            key = pyjwt.PyJWK(entry).key
        except (pyjwt.PyJWKError, pyjwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        keys.append(_Jwk(kid if isinstance(kid, str) else None, alg if isinstance(alg, str) else None, key))
    return tuple(keys)
