"""Ready endpoints from Kubernetes EndpointSlices (discovery.k8s.io/v1), as backend URLs.

An endpoint counts when its `ready` condition is not false and it is not terminating (what
kube-proxy and Traefik route to). Shared by the `kubernetes` executor and provider.
"""

from __future__ import annotations

from typing import Any

__all__ = ["parse_endpoint_slices"]


def parse_endpoint_slices(payload: Any, port: int | str | None, scheme: str) -> list[str]:
    """Ready endpoint URLs from an EndpointSliceList (a malformed entry is skipped, not fatal)."""
    urls: list[str] = []
    for item in _dicts(payload.get("items") if isinstance(payload, dict) else None):
        number = _port(_dicts(item.get("ports")), port)
        if number is None:
            continue
        for endpoint in _dicts(item.get("endpoints")):
            conditions = endpoint.get("conditions")
            conditions = conditions if isinstance(conditions, dict) else {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            addresses = endpoint.get("addresses")
            for address in addresses if isinstance(addresses, list) else []:
                if isinstance(address, str) and address:
                    host = f"[{address}]" if ":" in address else address
                    urls.append(f"{scheme}://{host}:{number}")
    return sorted(dict.fromkeys(urls))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _port(ports: list[dict[str, Any]], wanted: int | str | None) -> int | None:
    for entry in ports:
        if wanted is None or wanted in (entry.get("name"), entry.get("port")):
            value = entry.get("port")
            return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None
