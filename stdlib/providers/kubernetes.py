"""`kubernetes`: routers and services from Ingresses and Traefik's IngressRoute CRDs, backends from EndpointSlices.

    providers {
      kubernetes {
        namespaces        = ["web"]          # default: all
        ingress_class     = "a3s-gateway"    # Ingresses of this class only
        ingress_route_crd = true             # IngressRoute, Middleware, TLSOption (traefik.io/v1alpha1)
        entrypoints       = ["web"]          # the routers' entrypoints (IngressRoute: its entryPoints)
      }
    }

The provider lists and then watches (client-go's list+watch: resourceVersion, bookmarks, a
re-list on 410 Gone, a dropped watch resumed where it stopped) Services, EndpointSlices, Secrets,
Ingresses and, with `ingress_route_crd`, IngressRoutes, Middlewares and TLSOptions. Each change
is one reload. The mapping (docs/providers.md):

- an Ingress rule's host and path -> a router `Host(...) && PathPrefix(...)` (Exact: `Path`);
  its default backend -> a router of every path at the lowest priority;
- an IngressRoute's route -> a router with its `match` as the rule, its middlewares and priority;
- a Middleware -> the middleware kind doing the same job (stripPrefix -> strip-prefix, rateLimit
  -> rate-limit, basicAuth -> basic-auth with the users of its Secret, ...);
- a Service port -> a service whose servers are the ready pod addresses of its EndpointSlices,
  on the target port (several weighted Services: revisions splitting the traffic by weight).

Names are `<namespace>-<object>-...` (`default-web-80@kubernetes` elsewhere). What cannot be
served (an Ingress without a backend, a CRD field we do not read, a missing Service or Secret) is
a diagnostic naming the object, and the last good configuration keeps serving. The TLS Secrets
the Ingresses and IngressRoutes name are certificates: every entrypoint with a `tls` block serves
them by SNI, after its own (Traefik's dynamic `tls.certificates`).

The API server and credentials are those of the `kubernetes` executor: the pod's service
account in a cluster, else the kubeconfig (`kubeconfig`, `$KUBECONFIG`, `~/.kube/config`).
deploy/kubernetes/ has the ServiceAccount, ClusterRole (get, list, watch on those resources) and
the Traefik CRDs. An unreachable API server is a lost source: the last fragment keeps serving
while the provider retries with backoff.

There is no Kubernetes API server on these machines: the provider is tested against a fake API
server implementing list and watch, bookmarks, 410 Gone and dropped watches over real HTTP
(tests/kube_api.py); it has not been run against a real cluster here.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import anyio
import httpx

from ..common.kubeconfig import KubeConnection, api_client, auth_headers, resolve_connection
from ..registry import register
from ._found import Found
from ._ingress import translate_ingresses
from ._ingressroute import translate_crds
from ._kube_backends import Cluster
from ._kube_watch import Reflector
from ._tls_files import CertificateFiles
from .base import BuildContext, Fragment, ProviderKind, Updates, keep_watching
from .schemas.kubernetes import KubernetesProviderConfig

__all__ = ["RESOURCES", "Kubernetes", "KubernetesProviderConfig"]

# resource -> its API path prefix; the CRDs only with `ingress_route_crd`.
RESOURCES = {
    "services": "/api/v1",
    "endpointslices": "/apis/discovery.k8s.io/v1",
    "secrets": "/api/v1",
    "ingresses": "/apis/networking.k8s.io/v1",
    "ingressroutes": "/apis/traefik.io/v1alpha1",
    "middlewares": "/apis/traefik.io/v1alpha1",
    "tlsoptions": "/apis/traefik.io/v1alpha1",
}
_CRDS = {"ingressroutes", "middlewares", "tlsoptions"}
_SELECTED = {"ingresses", "ingressroutes"}  # label_selector narrows these (backends are found by name)


@register("provider", "kubernetes")
class Kubernetes(ProviderKind[KubernetesProviderConfig]):
    def __init__(self, config: KubernetesProviderConfig, ctx: BuildContext) -> None:
        super().__init__(config, ctx)
        self._certificates = CertificateFiles()

    async def run(self, updates: Updates) -> None:
        await keep_watching(updates, self._watch, log=self.log)

    def _connection(self) -> KubeConnection:
        return resolve_connection(
            {**os.environ, **self.ctx.env},
            kubeconfig=self.config.kubeconfig, context=self.config.context, api_server=self.config.api_server,
        )  # fmt: skip

    async def _watch(self, updates: Updates) -> None:
        conn = self._connection()
        async with api_client(conn, self.config.timeout) as client:
            changed = _Signal()
            reflectors = self._reflectors(client, conn, changed.set)
            failure: list[BaseException] = []

            async def run(reflector: Reflector) -> None:
                try:
                    await reflector.run()
                except Exception as exc:  # the first failure ends the attempt, unwrapped
                    failure.append(exc)
                    tg.cancel_scope.cancel()

            async with anyio.create_task_group() as tg:
                for items in reflectors.values():
                    for reflector in items:
                        tg.start_soon(run, reflector)
                while True:
                    await changed.wait()
                    if all(r.synced for items in reflectors.values() for r in items):
                        await updates.publish(self._fragment(reflectors))
            if failure:
                raise failure[0]

    def _reflectors(
        self, client: httpx.AsyncClient, conn: KubeConnection, changed: Callable[[], None]
    ) -> dict[str, list[Reflector]]:
        wanted = [r for r in RESOURCES if (r not in _CRDS or self.config.ingress_route_crd)]
        if not self.config.ingress:
            wanted.remove("ingresses")
        out: dict[str, list[Reflector]] = {}
        for resource in wanted:
            prefix = RESOURCES[resource]
            paths = [f"{prefix}/namespaces/{ns}/{resource}" for ns in self.config.namespaces] or [
                f"{prefix}/{resource}"
            ]
            selector = self.config.label_selector if resource in _SELECTED else None
            out[resource] = [
                Reflector(client, path, lambda: auth_headers(conn), label_selector=selector, changed=changed)
                for path in paths
            ]
        return out

    def _fragment(self, reflectors: dict[str, list[Reflector]]) -> Fragment:
        cluster = Cluster({resource: {k: v for r in items for k, v in r.objects.items()}
                           for resource, items in reflectors.items()})  # fmt: skip
        found = Found()
        certificates = []
        if self.config.ingress:
            certificates += translate_ingresses(
                found, cluster, self.config.ingress_class, self.config.entrypoints
            )
        if self.config.ingress_route_crd:
            certificates += translate_crds(
                found, cluster, self.config.entrypoints, self.config.allow_cross_namespace
            )
        self._certificates.add(found, certificates)
        return Fragment(self.name, found.tree, found.origins, tuple(found.problems))


class _Signal:
    """Set by any reflector's change; waited on by the publisher."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()
