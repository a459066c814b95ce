"""`route53`: DNS-01 through Amazon Route 53's API, signed by the gateway (SigV4, no SDK).

    dns_challenge {
      provider          = "route53"
      access_key_id     = "${AWS_ACCESS_KEY_ID}"
      secret_access_key = "${AWS_SECRET_ACCESS_KEY}"
      hosted_zone_id    = "Z0123456789ABCDEFGHIJ"
    }

One call does everything: `POST /2013-04-01/hostedzone/<zone>/rrset` with a `ChangeBatch`. Route
53 keeps a name's TXT values as one record set, so the provider sends the whole set it wants:
UPSERT with every value it has published at that name (a wildcard and its bare name share
`_acme-challenge.<domain>`), and DELETE of the last one (which must name the set exactly).
Values are quoted, as TXT strings are in Route 53. Requests are signed with AWS Signature
Version 4 (`_sigv4.py`) for service `route53` in `region` (us-east-1 for the global endpoint).
"""

from __future__ import annotations

import datetime
from xml.sax.saxutils import escape

import httpx

from ..registry import register
from ._base import DnsProviderError
from ._sigv4 import sign
from .schemas.route53 import Route53Config

__all__ = ["Route53", "change_batch"]

_NS = "https://route53.amazonaws.com/doc/2013-04-01/"


def change_batch(action: str, fqdn: str, values: list[str], ttl: int) -> bytes:
    """The ChangeResourceRecordSets request body for one TXT record set."""
    records = "".join(
        f"<ResourceRecord><Value>{escape(chr(34) + v + chr(34))}</Value></ResourceRecord>" for v in values
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ChangeResourceRecordSetsRequest xmlns="{_NS}">'
        f"<ChangeBatch><Comment>a3s-gateway ACME DNS-01</Comment><Changes><Change><Action>{action}</Action>"
        f"<ResourceRecordSet><Name>{escape(fqdn)}</Name><Type>TXT</Type><TTL>{ttl}</TTL>"
        f"<ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch>"
        "</ChangeResourceRecordSetsRequest>"
    ).encode()


@register("dns_provider", "route53")
class Route53:
    def __init__(self, config: Route53Config) -> None:
        self._config = config
        self._client = httpx.AsyncClient(timeout=30)
        self._values: dict[str, list[str]] = {}

    async def _change(self, action: str, fqdn: str, values: list[str]) -> None:
        config = self._config
        zone = config.hosted_zone_id.removeprefix("/hostedzone/")
        url = f"{config.endpoint.rstrip('/')}/2013-04-01/hostedzone/{zone}/rrset"
        body = change_batch(action, fqdn, values, config.ttl)
        headers = sign(
            "POST",
            url,
            {"content-type": "text/xml"},
            body,
            access_key_id=config.access_key_id,
            secret_access_key=config.secret_access_key,
            session_token=config.session_token,
            region=config.region,
            service="route53",
            now=datetime.datetime.now(datetime.UTC),
        )
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DnsProviderError(f"route53 {action} {fqdn}: {exc}") from None
        if response.status_code != 200:
            raise DnsProviderError(
                f"route53 {action} {fqdn}: {response.status_code} {response.text.strip()[:300]}"
            )

    async def set_txt(self, fqdn: str, value: str) -> None:
        values = [*self._values.get(fqdn, []), value]
        await self._change("UPSERT", fqdn, values)
        self._values[fqdn] = values

    async def delete_txt(self, fqdn: str, value: str) -> None:
        values = self._values.get(fqdn, [value])
        left = [v for v in values if v != value]
        await self._change("UPSERT" if left else "DELETE", fqdn, left or values)
        self._values[fqdn] = left

    async def aclose(self) -> None:
        await self._client.aclose()
