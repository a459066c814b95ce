"""Reading a running gateway's graph in the provider tests: a service's servers, the routers."""

from __future__ import annotations

from a3s_gateway.runtime.gateway import Gateway

__all__ = ["routers", "servers", "weighted"]


def weighted(gateway: Gateway, service: str) -> list[tuple[str, int]]:
    """(url, weight) of each server of `service` in the running graph (none when it is absent)."""
    for node in gateway.graph.ir.nodes:
        if node.kind == "service" and node.name == service:
            return [(s.url, s.weight) for s in node.config.load_balancer.servers]
    return []


def servers(gateway: Gateway, service: str) -> list[str]:
    return sorted(url for url, _ in weighted(gateway, service))


def routers(gateway: Gateway) -> set[str]:
    return {n.name for n in gateway.graph.ir.nodes if n.kind == "router"}
