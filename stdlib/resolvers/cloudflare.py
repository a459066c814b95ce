"""`cloudflare`: DNS-01 through Cloudflare's API v4, with an API token.

    dns_challenge {
      provider  = "cloudflare"
      api_token = "${CF_API_TOKEN}"    # Zone:DNS:Edit on the zone
      # zone_id = "..."                # found by name when not given
    }

The zone is the longest suffix of the record's name that `GET /zones?name=` finds (or
`zone_id`). A value is published with `POST /zones/<zone>/dns_records` (type TXT) and removed by
looking its record up (`GET /zones/<zone>/dns_records?type=TXT&name=...&content=...`) and
deleting it, so other TXT values at the same name stay. Every call sends
`Authorization: Bearer <api_token>`; a response whose `success` is false is an error naming
Cloudflare's own messages.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..registry import register
from ._base import DnsProviderError
from .schemas.cloudflare import CloudflareConfig

__all__ = ["Cloudflare"]


@register("dns_provider", "cloudflare")
class Cloudflare:
    def __init__(self, config: CloudflareConfig) -> None:
        self._config = config
        self._client = httpx.AsyncClient(
            base_url=config.api_url.rstrip("/"),
            headers={"authorization": f"Bearer {config.api_token}"},
            timeout=30,
        )
        self._zones: dict[str, str] = {}

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise DnsProviderError(f"cloudflare {method} {path}: {exc}") from None
        if not isinstance(data, dict) or not data.get("success"):
            errors = data.get("errors") if isinstance(data, dict) else None
            words = (
                "; ".join(str(e.get("message", e)) for e in errors or []) or f"status {response.status_code}"
            )
            raise DnsProviderError(f"cloudflare {method} {path}: {words}")
        return data.get("result")

    async def _zone(self, fqdn: str) -> str:
        if self._config.zone_id:
            return self._config.zone_id
        if fqdn in self._zones:
            return self._zones[fqdn]
        labels = fqdn.rstrip(".").split(".")
        for start in range(1, len(labels) - 1):  # _acme-challenge.a.example.com: a.example.com, example.com
            found = await self._call("GET", "/zones", params={"name": ".".join(labels[start:])})
            if found:
                self._zones[fqdn] = str(found[0]["id"])
                return self._zones[fqdn]
        raise DnsProviderError(f"cloudflare: no zone of this token holds {fqdn}")

    async def set_txt(self, fqdn: str, value: str) -> None:
        zone = await self._zone(fqdn)
        record = {"type": "TXT", "name": fqdn.rstrip("."), "content": value, "ttl": self._config.ttl}
        await self._call("POST", f"/zones/{zone}/dns_records", json=record)

    async def delete_txt(self, fqdn: str, value: str) -> None:
        zone = await self._zone(fqdn)
        params = {"type": "TXT", "name": fqdn.rstrip("."), "content": value}
        for record in await self._call("GET", f"/zones/{zone}/dns_records", params=params) or []:
            await self._call("DELETE", f"/zones/{zone}/dns_records/{record['id']}")

    async def aclose(self) -> None:
        await self._client.aclose()
