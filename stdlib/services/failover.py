"""Failover: when a service has no available backend, its traffic goes to a fallback service.

```hcl
service "llm" {
  load_balancer { servers = [{ url = "http://gpu-1:8000" }] }
  failover { service = "llm-backup" }
}
service "llm-backup" {
  load_balancer { servers = [{ url = "http://cpu-1:8000" }] }
  failover { service = "llm-hosted" }   # chains are allowed; cycles are compile errors
}
```

The decision is taken per request, so traffic returns to the primary as soon as it has an
available backend again. Along a chain the first service with an available backend wins; when
none has one, the request stays with the primary, which answers 503 `no_healthy_backend`.
Cycles are rejected by the compiler; `resolve` still stops at a service it has already visited,
so a cycle can never loop at runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

__all__ = ["Node", "chain", "resolve", "resolve_among"]


def chain(service: str, fallback_of: Callable[[str], str | None]) -> list[str]:
    """`service` followed by its fallbacks, in order, stopping before any repeat."""
    seen: list[str] = []
    current: str | None = service
    while current is not None and current not in seen:
        seen.append(current)
        current = fallback_of(current)
    return seen


def resolve(
    service: str, has_available: Callable[[str], bool], fallback_of: Callable[[str], str | None]
) -> str:
    """The service that should take the request: the first along the chain with an available
    backend, or `service` itself when none has one (it then answers 503)."""
    for name in chain(service, fallback_of):
        if has_available(name):
            return name
    return service


class Node(Protocol):
    """A service as failover sees it."""

    @property
    def name(self) -> str: ...

    @property
    def failover(self) -> str | None: ...

    def has_available(self) -> bool: ...


def resolve_among(start: Node, services: Mapping[str, Node]) -> str:
    """`resolve` for `start` among the services of its generation, by name."""

    def lookup(name: str) -> Node | None:
        return start if name == start.name else services.get(name)

    def has_available(name: str) -> bool:
        service = lookup(name)
        return service is not None and service.has_available()

    def fallback_of(name: str) -> str | None:
        service = lookup(name)
        return None if service is None else service.failover

    return resolve(start.name, has_available, fallback_of)
