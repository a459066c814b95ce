"""The shape every DNS-01 provider has (runtime/acme/dns01.py calls it).

`set_txt` publishes one more TXT value at `fqdn` (the wildcard and the bare name of one order
share `_acme-challenge.<domain>`, each with its own value); `delete_txt` removes that value and
leaves the others. Both raise `DnsProviderError` with the API's own words on failure.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["DnsProvider", "DnsProviderError"]


class DnsProviderError(Exception):
    """A DNS API call failed: the message says which and why."""


class DnsProvider(Protocol):
    async def set_txt(self, fqdn: str, value: str) -> None: ...

    async def delete_txt(self, fqdn: str, value: str) -> None: ...

    async def aclose(self) -> None: ...
