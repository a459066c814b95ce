"""The kubernetes provider in a running gateway, against the fake API server (tests/kube_api.py: no
Kubernetes API server runs here): Ingresses, IngressRoutes and Middlewares become routers,
services of pod addresses and middlewares; a change (an EndpointSlice, a new Ingress) reloads; a
malformed object is a diagnostic naming it; the API server compacting its history (410), cutting
its watches, or stopped and restarted mid-watch costs no request."""

from __future__ import annotations

import base64
import socket
import ssl
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from ..backends import backend, client_identity, make_certs
from ..kube_api import fake_kube_api, kubeconfig
from ..kube_objects import endpoint_slice, ingress, obj, secret, service
from ..stubs import eventually, free_port
from .running import routers, servers

pytestmark = pytest.mark.anyio

CONFIG = """
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
providers {{
  throttle = "0.1s"
  kubernetes {{
    kubeconfig = "{kubeconfig}"
  }}
}}
"""


async def test_ingress_ingressroute_endpoints_and_faults(tmp_path: Path) -> None:
    port, gw_port = free_port(), free_port()
    with fake_kube_api() as api:
        api.apply("services", service("web", ports=[{"name": "http", "port": 80, "targetPort": port}]))
        api.apply("endpointslices", endpoint_slice("web-1", "web", ["127.0.0.2"], port=port, name="http"))
        api.apply("ingresses", ingress("site", rules=[{"http": {"paths": [
            {"path": "/site", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]))  # fmt: skip
        api.apply(
            "middlewares",
            obj("traefik.io/v1alpha1", "Middleware", "strip", {"stripPrefix": {"prefixes": ["/api"]}}),
        )
        api.apply("ingressroutes", obj("traefik.io/v1alpha1", "IngressRoute", "api", {"routes": [
            {"match": "PathPrefix(`/api`)", "middlewares": [{"name": "strip"}], "services": [{"name": "web", "port": "http"}]}]}))  # fmt: skip
        config = tmp_path / "gateway.hcl"
        config.write_text(
            CONFIG.format(port=gw_port, kubeconfig=kubeconfig(str(tmp_path / "kubeconfig"), api.url))
        )
        async with (
            backend(host="127.0.0.2", port=port) as a,
            backend(host="127.0.0.3", port=port) as b,
            Gateway(str(config)) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(lambda: "default-api-0@kubernetes" in routers(gateway), timeout=20)
            assert routers(gateway) == {"default-site-site@kubernetes", "default-api-0@kubernetes"}
            assert servers(gateway, "default-web-80@kubernetes") == [f"http://127.0.0.2:{port}"]
            assert (await client.get("/site/json")).status_code == 200
            assert (await client.get("/api/json")).status_code == 200 and a.seen[-1].target == "/json"

            # A pod is added to the Service: one more server.
            api.apply(
                "endpointslices",
                endpoint_slice("web-1", "web", ["127.0.0.2", "127.0.0.3"], port=port, name="http"),
            )
            await eventually(lambda: len(servers(gateway, "default-web-80@kubernetes")) == 2, timeout=20)

            # Faults: a compaction with the watches cut (410 -> re-list), then the whole API
            # server stopped and restarted; requests are served throughout.
            providers = gateway.providers
            assert providers is not None
            statuses: list[int] = []
            with api.lock:
                api.drop_watches()
                api.apply(
                    "endpointslices", endpoint_slice("web-1", "web", ["127.0.0.3"], port=port, name="http")
                )
                api.compact()
            await eventually(
                lambda: servers(gateway, "default-web-80@kubernetes") == [f"http://127.0.0.3:{port}"],
                timeout=20,
            )
            relists = api.count("LIST endpointslices")
            assert relists >= 2
            api.stop()
            await eventually(lambda: providers.status["kubernetes"].state == "lost", timeout=20)
            for _ in range(10):
                statuses.append((await client.get("/site/json")).status_code)
            api.apply("endpointslices", endpoint_slice("web-1", "web", ["127.0.0.2"], port=port, name="http"))
            await anyio.to_thread.run_sync(api.start)
            await eventually(
                lambda: servers(gateway, "default-web-80@kubernetes") == [f"http://127.0.0.2:{port}"],
                timeout=30,
            )
            statuses.append((await client.get("/site/json")).status_code)
            assert statuses == [200] * 11 and len(b.seen) >= 10

            # A malformed object is a diagnostic naming it; the last good configuration serves.
            api.apply("ingresses", ingress("empty"))
            await eventually(lambda: providers.status["kubernetes"].state == "rejected", timeout=20)
            error = providers.status["kubernetes"].last_error or ""
            assert "Ingress default/empty" in error and "has no backend" in error
            api.delete("ingresses", "default", "empty")
            api.apply("ingressroutes", obj("traefik.io/v1alpha1", "IngressRoute", "typo", {"routes": [
                {"match": "PathPrefix(`/t`)", "services": [{"name": "web", "port": 80, "nativeLB": True}]}]}))  # fmt: skip
            await eventually(
                lambda: "nativeLB" in (providers.status["kubernetes"].last_error or ""), timeout=20
            )
            assert "IngressRoute default/typo" in (providers.status["kubernetes"].last_error or "")
            assert (await client.get("/site/json")).status_code == 200


TLS_CONFIG = """
entrypoints "websecure" {{
  address = "127.0.0.1:{port}"
  tls {{
    cert_file = "{cert}"
    key_file  = "{key}"
  }}
}}
providers {{
  throttle = "0.1s"
  kubernetes {{
    kubeconfig = "{kubeconfig}"
  }}
}}
"""


def peer_names(port: int, ca_file: str, server_name: str) -> list[str]:
    """The DNS names of the certificate the gateway presents for `server_name` (SNI)."""
    context = ssl.create_default_context(cafile=ca_file)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        cert = tls.getpeercert() or {}
    return [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]


async def test_tls_secrets_are_served_by_sni(tmp_path: Path) -> None:
    port, gw_port = free_port(), free_port()
    certs = make_certs(tmp_path, ["default.test", "site.test"])
    site_cert, site_key = (Path(p).read_text() for p in certs.leaves["site.test"])
    with fake_kube_api() as api:
        api.apply("services", service("web", ports=[{"name": "http", "port": 80, "targetPort": port}]))
        api.apply("endpointslices", endpoint_slice("web-1", "web", ["127.0.0.2"], port=port, name="http"))
        api.apply("secrets", secret("site-tls", data={
            "tls.crt": base64.b64encode(site_cert.encode()).decode(),
            "tls.key": base64.b64encode(site_key.encode()).decode()}))  # fmt: skip
        api.apply("ingresses", ingress("site", tls=[{"hosts": ["site.test"], "secretName": "site-tls"}],
                                       rules=[{"host": "site.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                       "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]))  # fmt: skip
        config = tmp_path / "gateway.hcl"
        default_cert, default_key = certs.leaves["default.test"]
        config.write_text(TLS_CONFIG.format(port=gw_port, cert=default_cert, key=default_key,
                                            kubeconfig=kubeconfig(str(tmp_path / "kubeconfig"), api.url)))  # fmt: skip
        async with backend(host="127.0.0.2", port=port), Gateway(str(config)) as gateway:
            await eventually(lambda: "default-site-site-test@kubernetes" in routers(gateway), timeout=20)
            names = await anyio.to_thread.run_sync(peer_names, gw_port, certs.ca_file, "site.test")
            assert names == ["site.test"]
            assert await anyio.to_thread.run_sync(peer_names, gw_port, certs.ca_file, "default.test") == [
                "default.test"
            ]
            async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=certs.ca_file)) as client:
                response = await client.get(
                    f"https://127.0.0.1:{gw_port}/json",
                    headers={"host": "site.test"},
                    extensions={"sni_hostname": "site.test"},
                )
            assert response.status_code == 200


async def tls_status(
    port: int,
    ca_file: str,
    name: str,
    version: ssl.TLSVersion | None = None,
    identity: tuple[str, str] | None = None,
) -> int | None:
    """GET /json over TLS for `name` (SNI and Host) with at most `version` and a client
    certificate (or none): the status, or None when the gateway refuses the handshake (with TLS
    1.3 client certificates, seen at the first read)."""
    context = ssl.create_default_context(cafile=ca_file)
    if version is not None:
        context.maximum_version = version
    if identity is not None:
        context.load_cert_chain(*identity)
    try:
        async with httpx.AsyncClient(verify=context) as client:
            response = await client.get(
                f"https://127.0.0.1:{port}/json", headers={"host": name}, extensions={"sni_hostname": name}
            )
    except httpx.TransportError:
        return None
    return response.status_code


def two_hosts_with_options(
    api: Any, tmp_path: Path, ports: tuple[int, int], hosts: tuple[str, str]
) -> tuple[Path, str]:
    """The pods of Service web at `ports[0]`, an IngressRoute for `<host>.test` of each of `hosts`
    (the first names the TLSOption of its own name), and a gateway on `ports[1]` terminating TLS
    with their certificates: its configuration file, and the CA file of those certificates."""
    port, gw_port = ports
    certs = make_certs(tmp_path, [f"{h}.test" for h in hosts])
    (c1, k1), (c2, k2) = (certs.leaves[f"{h}.test"] for h in hosts)
    api.apply("services", service("web", ports=[{"name": "http", "port": 80, "targetPort": port}]))
    api.apply("endpointslices", endpoint_slice("web-1", "web", ["127.0.0.2"], port=port, name="http"))
    for host, tls in ((hosts[0], {"options": {"name": hosts[0]}}), (hosts[1], {})):
        api.apply("ingressroutes", obj("traefik.io/v1alpha1", "IngressRoute", host, {"routes": [
            {"match": f"Host(`{host}.test`)", "services": [{"name": "web", "port": "http"}]}], "tls": tls}))  # fmt: skip
    text = TLS_CONFIG.format(
        port=gw_port, cert=c1, key=k1, kubeconfig=kubeconfig(str(tmp_path / "kc"), api.url)
    )
    config = tmp_path / "gateway.hcl"
    config.write_text(
        text.replace("tls {", f'tls {{\n    certificates = [{{ cert_file = "{c2}", key_file = "{k2}" }}]')
    )
    return config, certs.ca_file


async def test_a_tls_option_named_by_an_ingressroute_is_chosen_by_sni(tmp_path: Path) -> None:
    port, gw_port = free_port(), free_port()
    tls12 = ssl.TLSVersion.TLSv1_2
    with fake_kube_api() as api:
        api.apply(
            "tlsoptions", obj("traefik.io/v1alpha1", "TLSOption", "modern", {"minVersion": "VersionTLS13"})
        )
        config, ca = two_hosts_with_options(api, tmp_path, (port, gw_port), ("modern", "legacy"))
        async with backend(host="127.0.0.2", port=port), Gateway(str(config)) as gateway:
            await eventually(lambda: "default-modern-0@kubernetes" in routers(gateway), timeout=20)
            assert await tls_status(gw_port, ca, "legacy.test", tls12) == 200
            assert await tls_status(gw_port, ca, "modern.test", tls12) is None
            assert await tls_status(gw_port, ca, "modern.test", ssl.TLSVersion.TLSv1_3) == 200
            # The TLSOption changed in the cluster: the next handshake has the new options.
            api.apply(
                "tlsoptions",
                obj("traefik.io/v1alpha1", "TLSOption", "modern", {"minVersion": "VersionTLS12"}),
            )

            with anyio.fail_after(20):
                while await tls_status(gw_port, ca, "modern.test", tls12) != 200:
                    await anyio.sleep(0.05)


async def test_namespaces_and_label_selector_narrow_what_is_served(tmp_path: Path) -> None:
    port, gw_port = free_port(), free_port()
    with fake_kube_api() as api:
        for namespace in ("web", "other"):
            api.apply(
                "services", service("app", ports=[{"port": 80, "targetPort": port}], namespace=namespace)
            )
            api.apply(
                "endpointslices",
                endpoint_slice("app-1", "app", ["127.0.0.2"], port=port, namespace=namespace),
            )
            for name, labels in (("shown", {"expose": "gateway"}), ("hidden", {})):
                item = ingress(name, default_backend=("app", 80), namespace=namespace)
                item["metadata"]["labels"] = labels
                api.apply("ingresses", item)
        config = tmp_path / "gateway.hcl"
        path = kubeconfig(str(tmp_path / "kubeconfig"), api.url)
        config.write_text(CONFIG.format(port=gw_port, kubeconfig=path).replace(
            f'kubeconfig = "{path}"', f'kubeconfig = "{path}"\n    namespaces = ["web"]\n    label_selector = "expose=gateway"'))  # fmt: skip
        async with backend(host="127.0.0.2", port=port), Gateway(str(config)) as gateway:
            await eventually(lambda: bool(routers(gateway)), timeout=20)
            assert routers(gateway) == {"web-shown-default-backend@kubernetes"}
            await eventually(lambda: api.count("WATCH ingresses") == 1)
            assert api.count("LIST ingresses") == 1
            assert api.requests and all(r.endswith(" ns=web") for r in api.requests)


async def test_a_tls_option_client_auth_requires_certificates_of_its_secrets_ca(tmp_path: Path) -> None:
    port, gw_port = free_port(), free_port()
    alice_ca, *alice = client_identity(tmp_path, "alice")
    _, *bob = client_identity(tmp_path, "bob")  # signed by another CA
    with fake_kube_api() as api:
        ca_pem = base64.b64encode(Path(alice_ca).read_bytes()).decode()
        api.apply("secrets", secret("client-ca", {"ca.crt": ca_pem}))
        api.apply("tlsoptions", obj("traefik.io/v1alpha1", "TLSOption", "mtls", {
            "clientAuth": {"secretNames": ["client-ca"], "clientAuthType": "RequireAndVerifyClientCert"}}))  # fmt: skip
        config, ca = two_hosts_with_options(api, tmp_path, (port, gw_port), ("mtls", "open"))
        async with backend(host="127.0.0.2", port=port), Gateway(str(config)) as gateway:
            await eventually(lambda: "default-mtls-0@kubernetes" in routers(gateway), timeout=20)
            assert await tls_status(gw_port, ca, "mtls.test", identity=(alice[0], alice[1])) == 200
            assert await tls_status(gw_port, ca, "mtls.test") is None
            assert await tls_status(gw_port, ca, "mtls.test", identity=(bob[0], bob[1])) is None
            assert await tls_status(gw_port, ca, "open.test") == 200
