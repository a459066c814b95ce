"""Kubernetes Services to gateway services: the pod addresses behind a Service port.

Both Ingress and IngressRoute name a Service and a port (a number or a name of the Service's
ports). As Traefik does, the backends are the pods, not the Service's cluster IP: the ready
endpoints of the Service's EndpointSlices (`kubernetes.io/service-name=<service>`), on the
target port the slice lists under the Service port's name. An `ExternalName` Service is its
external name on the port given. The scheme is `https` when the port is 443 or named `https`
(Traefik's rule), else `http`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..common.endpoint_slices import parse_endpoint_slices
from ._found import Found, as_dict, dicts, safe_name

__all__ = ["Cluster", "ServiceRef", "add_service"]

Key = tuple[str, str]  # namespace, name


@dataclass(frozen=True)
class Cluster:
    """The objects the provider watches, by resource then (namespace, name)."""

    objects: Mapping[str, Mapping[Key, dict[str, Any]]]

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(resource, {}).get((namespace, name))

    def items(self, resource: str) -> list[tuple[Key, dict[str, Any]]]:
        return sorted(self.objects.get(resource, {}).items())

    def slices_of(self, namespace: str, service: str) -> list[dict[str, Any]]:
        return [
            item
            for (ns, _), item in self.items("endpointslices")
            if ns == namespace and _labels(item).get("kubernetes.io/service-name") == service
        ]


@dataclass(frozen=True)
class ServiceRef:
    namespace: str
    name: str
    port: int | str | None
    weight: int | None = None
    scheme: str | None = None  # http, https or h2c (HTTP/2 with prior knowledge, as upstream URLs take)
    pass_host_header: bool | None = None


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def servers_of(cluster: Cluster, ref: ServiceRef) -> tuple[list[dict[str, Any]] | None, str]:
    """The servers behind `ref`, or None and why not."""
    service = cluster.get("services", ref.namespace, ref.name)
    if service is None:
        return None, f"Service {ref.namespace}/{ref.name} does not exist"
    spec = as_dict(service.get("spec"))
    ports = dicts(spec.get("ports"))
    if spec.get("type") == "ExternalName":
        if not isinstance(ref.port, int):
            return None, f"ExternalName Service {ref.namespace}/{ref.name} needs a port number"
        if not isinstance(spec.get("externalName"), str) or not spec["externalName"]:
            return None, f"ExternalName Service {ref.namespace}/{ref.name} has no spec.externalName"
        scheme = ref.scheme or _scheme(ref.port, "")
        return [{"url": f"{scheme}://{spec['externalName']}:{ref.port}"}], ""
    port = _service_port(ports, ref.port)
    if port is None:
        return None, f"Service {ref.namespace}/{ref.name} has no port {ref.port!r}"
    scheme = ref.scheme or _scheme(port.get("port"), port.get("name"))
    slices = cluster.slices_of(ref.namespace, ref.name)
    # A slice names its ports after the Service's; a single unnamed port is the first one.
    wanted = str(port.get("name") or "") or None
    urls = parse_endpoint_slices({"items": slices}, wanted, scheme)
    return [{"url": url} for url in urls], ""


def _service_port(ports: list[dict[str, Any]], wanted: int | str | None) -> dict[str, Any] | None:
    if wanted is None:
        return ports[0] if len(ports) == 1 else None
    for port in ports:
        if wanted in (port.get("name"), port.get("port")):
            return port
    return None


def _scheme(port: object, name: object) -> str:
    return "https" if port == 443 or name == "https" else "http"


def add_service(found: Found, cluster: Cluster, refs: list[ServiceRef], origin: str) -> str | None:
    """Add the gateway service for `refs` (one Service, or several weighted) and return its name;
    None (and a problem at `origin`) when one of them cannot be resolved."""
    groups: list[tuple[ServiceRef, list[dict[str, Any]]]] = []
    for ref in refs:
        servers, why = servers_of(cluster, ref)
        if servers is None:
            found.problem(origin, why)
            return None
        groups.append((ref, servers))
    hosts = {ref.pass_host_header for ref in refs if ref.pass_host_header is not None}
    if len(hosts) > 1:
        found.problem(origin, "the weighted Services disagree on passHostHeader: a route has one Host")
        return None
    name = safe_name(*(part for ref in refs for part in (ref.namespace, ref.name, ref.port)))
    if len(groups) == 1:
        body: dict[str, Any] = {"load_balancer": {"servers": groups[0][1]}}
    else:  # weighted Services: one revision each, their traffic split by weight
        total = sum(ref.weight if ref.weight is not None else 1 for ref, _ in groups) or 1
        body = {
            "revisions": [
                {
                    "name": safe_name(ref.namespace, ref.name, ref.port),
                    "traffic_percent": 100 * (ref.weight if ref.weight is not None else 1) / total,
                    "servers": servers,
                }
                for ref, servers in groups
            ]
        }
    if hosts == {False}:
        body["load_balancer"] = {**body.get("load_balancer", {}), "pass_host_header": False}
    # The same Services read the same way are one service; another scheme or Host makes another.
    return found.add_shared("services", name, body, origin)
