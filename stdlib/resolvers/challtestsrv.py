"""`challtestsrv`: DNS-01 through pebble-challtestsrv's management API, for tests and private set-ups.

    dns_challenge {
      provider       = "challtestsrv"
      management_url = "http://127.0.0.1:8055"
      resolvers      = ["127.0.0.1:8053"]      # challtestsrv's DNS server, which pebble asks too
    }

pebble-challtestsrv (Debian's `pebble` package) is a DNS server whose records are set over HTTP:
`POST /set-txt {"host": "_acme-challenge.example.com.", "value": "..."}` adds a TXT value and
`POST /clear-txt {"host": ...}` removes the name's values. Start pebble with `-dnsserver` naming
it, and DNS-01 runs end to end on one machine with no DNS host.
"""

from __future__ import annotations

import httpx

from ..registry import register
from ._base import DnsProviderError
from .schemas.challtestsrv import ChalltestsrvConfig

__all__ = ["Challtestsrv"]


@register("dns_provider", "challtestsrv")
class Challtestsrv:
    def __init__(self, config: ChalltestsrvConfig) -> None:
        self._url = config.management_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=10)
        self._values: dict[str, list[str]] = {}  # what we set, to put back the others on delete

    async def _post(self, path: str, payload: dict[str, str]) -> None:
        try:
            response = await self._client.post(self._url + path, json=payload)
        except httpx.HTTPError as exc:
            raise DnsProviderError(f"challtestsrv {self._url}{path}: {exc}") from None
        if response.status_code != 200:
            raise DnsProviderError(f"challtestsrv {path}: {response.status_code} {response.text.strip()}")

    async def set_txt(self, fqdn: str, value: str) -> None:
        self._values.setdefault(fqdn, []).append(value)
        await self._post("/set-txt", {"host": fqdn, "value": value})

    async def delete_txt(self, fqdn: str, value: str) -> None:
        left = [v for v in self._values.get(fqdn, []) if v != value]
        await self._post("/clear-txt", {"host": fqdn})  # the API clears a name; the rest is set again
        self._values[fqdn] = left
        for other in left:
            await self._post("/set-txt", {"host": fqdn, "value": other})

    async def aclose(self) -> None:
        await self._client.aclose()
