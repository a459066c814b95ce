"""Ready endpoints from Kubernetes EndpointSlices (discovery.k8s.io/v1), as backend URLs.

An endpoint counts when its `ready` condition is not false and it is not terminating (what
kube-proxy and Traefik route to). Shared by the `kubernetes` executor and provider.
"""

from __future__ import annotations

from typing import Any

__all__ = ["parse_endpoint_slices"]


def parse_endpoint_slices(payload: Any, port: int | str | None, scheme: str) -> list[str]:
    """Ready endpoint URLs from an EndpointSliceList."""
    urls: list[str] = []
    for item in payload.get("items", []) if isinstance(payload, dict) else []:
        number = _port(item.get("ports") or [], port)
        if number is None:
            continue
        for endpoint in item.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.append(f"{scheme}://{host}:{number}")
    return sorted(dict.fromkeys(urls))


def _port(ports: list[dict[str, Any]], wanted: int | str | None) -> int | None:
    for entry in ports:
        if wanted is None or wanted in (entry.get("name"), entry.get("port")):
            value = entry.get("port")
            return int(value) if value is not None else None
    return None
