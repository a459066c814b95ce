"""Kubernetes objects in the shapes the API server returns, for the kubernetes provider's tests."""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["CERT_PEM", "KEY_PEM", "endpoint_slice", "ingress", "obj", "secret", "service"]

CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def obj(
    api_version: str, kind: str, name: str, spec: dict[str, Any], namespace: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def service(name: str, ports: list[dict[str, Any]], namespace: str = "default") -> dict[str, Any]:
    return obj("v1", "Service", name, {"type": "ClusterIP", "ports": ports}, namespace)


def endpoint_slice(
    slice_name: str, service: str, addresses: list[str], port: int, name: str = "", namespace: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": slice_name, "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": name, "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
    }  # fmt: skip


def secret(name: str, data: dict[str, str] | None = None, namespace: str = "default") -> dict[str, Any]:
    data = data or {
        "tls.crt": base64.b64encode(CERT_PEM.encode()).decode(),
        "tls.key": base64.b64encode(KEY_PEM.encode()).decode(),
    }
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "kubernetes.io/tls", "data": data}


def ingress(
    name: str,
    *,
    ingress_class: str | None = "a3s-gateway",
    rules: list[dict[str, Any]] | None = None,
    default_backend: tuple[str, int | str] | None = None,
    tls: list[dict[str, Any]] | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if ingress_class is not None:
        spec["ingressClassName"] = ingress_class
    if rules is not None:
        spec["rules"] = rules
    if default_backend is not None:
        svc, port = default_backend
        spec["defaultBackend"] = {
            "service": {"name": svc, "port": {"number" if isinstance(port, int) else "name": port}}
        }
    if tls is not None:
        spec["tls"] = tls
    return obj("networking.k8s.io/v1", "Ingress", name, spec, namespace)
