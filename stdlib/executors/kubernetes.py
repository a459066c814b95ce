"""`kubernetes`: scale a Deployment, route to the ready endpoints of its Service.

    scaling {
      executor = "kubernetes"
      kubernetes {
        deployment = "llm"
        namespace  = "models"     # default: the pod's namespace, or the kubeconfig context's
        service    = "llm"        # the Service whose EndpointSlices list the pods (default: deployment)
        port       = "http"       # EndpointSlice port name or number (default: the first port)
      }
    }

Scaling is a merge-patch of the Deployment's `scale` subresource
(`PATCH /apis/apps/v1/namespaces/<ns>/deployments/<name>/scale`, `{"spec": {"replicas": N}}`);
a failed patch is retried every `poll_interval`. Ready endpoints come from the Service's
EndpointSlices (`GET /apis/discovery.k8s.io/v1/namespaces/<ns>/endpointslices?labelSelector=
kubernetes.io/service-name=<service>`): every address of every endpoint whose `ready` condition
is not false and that is not terminating, with the chosen port, as `<scheme>://<address>:<port>`.
They are polled every `poll_interval`, and every `fast_poll_interval` while fewer are ready than
were asked for.

The API server and credentials are, in order: the pod's service account when running in a
cluster (`KUBERNETES_SERVICE_HOST` and `/var/run/secrets/kubernetes.io/serviceaccount`); else
the kubeconfig at `kubeconfig`, `$KUBECONFIG` or `~/.kube/config` (context `context` or the
current one; token, token file, client certificate or basic credentials; exec plugins are not
supported). `api_server` overrides the server URL. The gateway's service account needs `patch`
on `deployments/scale` and `list` on `endpointslices`.

Tested only against a small fake API server started by the tests (tests/test_executor_kubernetes.py);
it has not been run against a real cluster here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import quote

import anyio
import httpx

from ..base import BuildContext
from ..common.endpoint_slices import parse_endpoint_slices
from ..common.kubeconfig import KubeConnection, api_client, auth_headers
from ..common.kubeconfig import resolve_connection as kube_connection
from ..registry import register
from ._base import Executor
from .schemas.kubernetes import KubernetesConfig

__all__ = ["KubernetesConfig", "KubernetesExecutor", "parse_endpoint_slices", "resolve_connection"]


def resolve_connection(config: KubernetesConfig, env: dict[str, str]) -> KubeConnection:
    return kube_connection(
        env, kubeconfig=config.kubeconfig, context=config.context,
        api_server=config.api_server, namespace=config.namespace,
    )  # fmt: skip


@register("executor", "kubernetes")
class KubernetesExecutor(Executor[KubernetesConfig]):
    """Patches a Deployment's scale and reads its Service's EndpointSlices."""

    def __init__(self, config: KubernetesConfig, ctx: BuildContext, *, servers: Sequence[str] = ()) -> None:
        super().__init__(config, ctx, servers=servers)
        self._sent: int | None = None
        self.errors = 0

    async def _main(self) -> None:
        conn = resolve_connection(self.config, {**os.environ, **self.ctx.env})
        async with api_client(conn, self.config.timeout) as client:
            while True:
                self._wake = anyio.Event()
                if self._sent != self.desired:
                    await self._patch(client, conn)
                await self._poll(client, conn)
                pending = self._sent != self.desired or len(self.ready_endpoints()) < self.desired
                interval = self.config.fast_poll_interval if pending else self.config.poll_interval
                with anyio.move_on_after(interval):
                    await self._wake.wait()

    async def _patch(self, client: httpx.AsyncClient, conn: KubeConnection) -> None:
        desired = self.desired
        path = f"/apis/apps/v1/namespaces/{conn.namespace}/deployments/{self.config.deployment}/scale"
        headers = auth_headers(conn, **{"content-type": "application/merge-patch+json"})
        try:
            response = await client.patch(path, json={"spec": {"replicas": desired}}, headers=headers)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.errors += 1
            self.log.warning(
                "scaling deployment %s/%s failed: %s", conn.namespace, self.config.deployment, exc
            )
            return
        self._sent = desired

    async def _poll(self, client: httpx.AsyncClient, conn: KubeConnection) -> None:
        service = self.config.service or self.config.deployment
        selector = quote(f"kubernetes.io/service-name={service}", safe="")
        path = (
            f"/apis/discovery.k8s.io/v1/namespaces/{conn.namespace}/endpointslices?labelSelector={selector}"
        )
        try:
            response = await client.get(path, headers=auth_headers(conn))
            response.raise_for_status()
            urls = parse_endpoint_slices(response.json(), self.config.port, self.config.scheme)
        except (httpx.HTTPError, ValueError) as exc:
            self.errors += 1
            self.log.warning("reading endpointslices of %s/%s failed: %s", conn.namespace, service, exc)
            return
        self.publish(urls)
