"""The `kubernetes` provider's configuration (its implementation: providers/kubernetes.py)."""

from __future__ import annotations

from pydantic import Field

from ...base import ConfigModel, Duration
from ...registry import declare


class KubernetesProviderConfig(ConfigModel):
    namespaces: list[str] = Field(default=[], description="Namespaces to watch (empty: all).")
    label_selector: str | None = Field(
        default=None, description="Only Ingresses and IngressRoutes with these labels (`app=web,tier=front`)."
    )
    ingress: bool = Field(default=True, description="Watch networking.k8s.io/v1 Ingresses.")
    ingress_class: str = Field(default="a3s-gateway", description="The IngressClass name read.")
    ingress_route_crd: bool = Field(
        default=True,
        description="Watch Traefik's IngressRoute, Middleware and TLSOption (traefik.io/v1alpha1).",
    )
    allow_cross_namespace: bool = Field(
        default=False, description="Let an IngressRoute name a Service of another namespace."
    )
    entrypoints: list[str] = Field(default=[], description="The routers' entrypoints (empty: all).")
    kubeconfig: str | None = Field(
        default=None, description="Default: in-cluster, else $KUBECONFIG or ~/.kube/config."
    )
    context: str | None = None
    api_server: str | None = Field(default=None, description="Overrides the server URL found.")
    timeout: Duration = Field(default=10.0, gt=0, description="Connecting and listing.")


declare("provider", "kubernetes", config=KubernetesProviderConfig, impl="providers.kubernetes")
