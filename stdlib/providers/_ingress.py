"""Ingress (networking.k8s.io/v1) to routers and services, as Traefik's kubernetesIngress does.

Only Ingresses of our class are read: `spec.ingressClassName` (or the older
`kubernetes.io/ingress.class` annotation) equal to the provider's `ingress_class`
(`a3s-gateway` by default). For each rule and path:

    rules[].host = "api.example.com", path "/v1", pathType Prefix
      -> routers "<ns>-<ingress>-api-example-com-v1" {
           rule = "Host(`api.example.com`) && PathPrefix(`/v1`)"   # Exact: Path(...)
           service = "<ns>-<service>-<port>"                         # the pods' addresses
         }

A wildcard host (`*.example.com`) becomes a HostRegexp matching one label. The default
backend is a router matching every path at the lowest priority. The TLS Secret named under
`spec.tls` (type kubernetes.io/tls) is read as a certificate (TLS itself is the entrypoint's:
an HTTP router is served on the entrypoints it names, with or without TLS). What cannot be served (no backend at all, a
`resource` backend, a Service or port that does not exist, a missing Secret) is a problem
naming the Ingress, and the rest of the Ingress is still read.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from ._found import Found, as_dict, dicts, safe_name
from ._kube_backends import Cluster, ServiceRef, add_service

__all__ = ["Certificate", "read_certificate", "translate_ingresses"]

CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_BACKEND_PRIORITY = 1  # below any rule's default priority (its length), as Traefik's MinInt


@dataclass(frozen=True)
class Certificate:
    """A TLS Secret's certificate and key (PEM), with the object it came from."""

    origin: str
    cert_pem: str
    key_pem: str


def _meta(obj: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    meta = as_dict(obj.get("metadata"))
    annotations = as_dict(meta.get("annotations"))
    return str(meta.get("namespace") or "default"), str(meta.get("name") or ""), annotations


def is_ours(obj: dict[str, Any], ingress_class: str) -> bool:
    _, _, annotations = _meta(obj)
    spec = as_dict(obj.get("spec"))
    return (spec.get("ingressClassName") or annotations.get(CLASS_ANNOTATION)) == ingress_class


def host_rule(host: str) -> str:
    if host.startswith("*."):
        suffix = re.escape(host[2:])
        return f"HostRegexp(`^[a-zA-Z0-9-]+\\.{suffix}$`)"
    return f"Host(`{host}`)"


def path_rule(path: str | None, path_type: str | None) -> str:
    path = path or "/"
    return f"Path(`{path}`)" if path_type == "Exact" else f"PathPrefix(`{path}`)"


def translate_ingresses(
    found: Found,
    cluster: Cluster,
    ingress_class: str,
    entrypoints: list[str],
) -> list[Certificate]:
    """Add the routers and services of every Ingress of `ingress_class`; return its certificates."""
    certificates: list[Certificate] = []
    for (namespace, name), obj in cluster.items("ingresses"):
        if is_ours(obj, ingress_class):
            certificates += _one(found, cluster, namespace, name, obj, entrypoints)
    return certificates


def _one(
    found: Found, cluster: Cluster, namespace: str, name: str, obj: dict[str, Any], entrypoints: list[str]
) -> list[Certificate]:
    origin = f"Ingress {namespace}/{name}"
    spec = as_dict(obj.get("spec"))
    certificates: list[Certificate] = []
    for entry in dicts(spec.get("tls")):
        if entry.get("secretName"):
            cert = read_certificate(found, cluster, namespace, str(entry["secretName"]), origin)
            if cert is not None:
                certificates.append(cert)
    paths = 0
    for rule in dicts(spec.get("rules")):
        host = str(rule["host"]) if rule.get("host") else None
        http = as_dict(rule.get("http"))
        for item in dicts(http.get("paths")):
            paths += 1
            ref = _backend(found, item.get("backend"), namespace, f"{origin} path {item.get('path') or '/'}")
            if ref is None:
                continue
            service = add_service(found, cluster, [ref], origin)
            if service is None:
                continue
            parts = [host_rule(host)] if host else []
            parts.append(path_rule(item.get("path"), item.get("pathType")))
            router: dict[str, Any] = {"rule": " && ".join(parts), "service": service}
            if entrypoints:
                router["entrypoints"] = list(entrypoints)
            found.add("routers", safe_name(namespace, name, host, item.get("path")), router, origin)
    default = spec.get("defaultBackend")
    if default is not None:
        ref = _backend(found, default, namespace, f"{origin} defaultBackend")
        service = add_service(found, cluster, [ref], origin) if ref is not None else None
        if service is not None:
            router = {"rule": "PathPrefix(`/`)", "service": service, "priority": DEFAULT_BACKEND_PRIORITY}
            if entrypoints:
                router["entrypoints"] = list(entrypoints)
            found.add("routers", safe_name(namespace, name, "default-backend"), router, origin)
    elif paths == 0:
        found.problem(origin, "the Ingress has no backend: neither rules with paths nor a defaultBackend")
    return certificates


def _backend(found: Found, backend: Any, namespace: str, origin: str) -> ServiceRef | None:
    if not isinstance(backend, dict) or not backend:
        found.problem(origin, "no backend: give backend.service with a name and a port")
        return None
    if "resource" in backend:
        found.problem(origin, "resource backends are not supported: give backend.service")
        return None
    service = backend.get("service")
    port = service.get("port") if isinstance(service, dict) else None
    if not isinstance(service, dict) or not service.get("name") or not isinstance(port, dict):
        found.problem(origin, "backend.service needs a name and a port (number or name)")
        return None
    wanted = port.get("number") if port.get("number") is not None else port.get("name")
    if not isinstance(wanted, (int, str)) or isinstance(wanted, bool):
        found.problem(origin, "backend.service.port needs a number or a name")
        return None
    return ServiceRef(namespace, str(service["name"]), wanted)


def read_certificate(
    found: Found, cluster: Cluster, namespace: str, secret: str, origin: str
) -> Certificate | None:
    obj = cluster.get("secrets", namespace, secret)
    if obj is None:
        found.problem(origin, f"TLS Secret {namespace}/{secret} does not exist")
        return None
    data = as_dict(obj.get("data"))
    try:
        cert = base64.b64decode(data.get("tls.crt") or "", validate=True).decode()
        key = base64.b64decode(data.get("tls.key") or "", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, TypeError):  # TypeError: not a string at all
        found.problem(origin, f"TLS Secret {namespace}/{secret}: tls.crt or tls.key is not base64 PEM")
        return None
    if "BEGIN" not in cert or "BEGIN" not in key:
        found.problem(origin, f"TLS Secret {namespace}/{secret} has no tls.crt and tls.key")
        return None
    return Certificate(f"Secret {namespace}/{secret}", cert, key)
