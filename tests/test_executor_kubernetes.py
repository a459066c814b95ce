"""The `kubernetes` executor against a small fake API server (no real cluster here).

The fake implements the two calls the executor makes: a merge-patch of a Deployment's scale
subresource and a label-selected list of EndpointSlices, with bearer-token auth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.common.kubeconfig import from_kubeconfig, in_cluster, load_yaml
from a3s_gateway.stdlib.executors.kubernetes import (
    KubernetesConfig,
    KubernetesExecutor,
    parse_endpoint_slices,
    resolve_connection,
)
from a3s_gateway.stdlib.registry import lookup

from .stubs import eventually, json_stub

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: {server}   # the fake
    insecure-skip-tls-verify: true
  name: fake
- cluster:
    certificate-authority-data: {ca}
    server: https://prod.example:6443
  name: prod
contexts:
- context:
    cluster: fake
    namespace: models
    user: gateway
  name: fake
- context: {{cluster: prod, user: gateway}}
  name: flow
current-context: "fake"
preferences: {{}}
users:
- name: gateway
  user:
    token: 's3cret'
"""


class FakeApiServer:
    """Deployments' scale and EndpointSlices, in memory: N replicas -> N ready endpoints."""

    def __init__(self) -> None:
        self.replicas = 0
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.unauthorized = 0

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if headers.get("authorization") != "Bearer s3cret":
            self.unauthorized += 1
            return 401, {"kind": "Status", "code": 401}
        parts = urlsplit(url)
        if method == "PATCH" and parts.path == "/apis/apps/v1/namespaces/models/deployments/llm/scale":
            doc = json.loads(body)
            self.patches.append((headers.get("content-type", ""), parts.path, doc))
            self.replicas = doc["spec"]["replicas"]
            return 200, {"kind": "Scale", "spec": {"replicas": self.replicas}}
        if method == "GET" and parts.path == "/apis/discovery.k8s.io/v1/namespaces/models/endpointslices":
            selector = parse_qs(parts.query).get("labelSelector", [""])[0]
            if selector != "kubernetes.io/service-name=llm-svc":
                return 200, {"kind": "EndpointSliceList", "items": []}
            return 200, self.slices()
        return 404, {"kind": "Status", "code": 404}

    def slices(self) -> dict[str, Any]:
        endpoints: list[dict[str, Any]] = [
            {"addresses": [f"10.1.0.{i}"], "conditions": {"ready": True}} for i in range(self.replicas)
        ]
        endpoints.append({"addresses": ["10.1.0.200"], "conditions": {"ready": False}})
        endpoints.append({"addresses": ["10.1.0.201"], "conditions": {"ready": True, "terminating": True}})
        return {
            "kind": "EndpointSliceList",
            "items": [{"ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8000}],
                       "endpoints": endpoints}],
        }  # fmt: skip


@pytest.fixture
def api() -> Iterator[tuple[FakeApiServer, str]]:
    fake = FakeApiServer()

    with json_stub(fake.handle) as url:
        yield fake, url


def write_kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG.format(server=server, ca="TUlJQw=="))
    return str(path)


def test_registered_and_documented_as_tested_against_a_fake() -> None:
    kind = lookup("executor", "kubernetes")
    assert kind is not None and kind.impl is KubernetesExecutor
    assert "fake API server" in kind.doc


@pytest.mark.anyio
async def test_scales_the_deployment_and_reads_endpoint_slices(
    anyio_backend: object, api: tuple[FakeApiServer, str], tmp_path: Path
) -> None:
    fake, server = api
    cfg = KubernetesConfig(
        deployment="llm", service="llm-svc", port="http", kubeconfig=write_kubeconfig(tmp_path, server),
        poll_interval="50ms", fast_poll_interval="10ms",
    )  # fmt: skip
    executor = KubernetesExecutor(cfg, BuildContext("scaler:llm", "llm"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run)
        await executor.scale(3)
        await eventually(lambda: len(executor.ready_endpoints()) == 3)
        assert executor.ready_endpoints() == [f"http://10.1.0.{i}:8000" for i in range(3)]
        assert fake.patches[-1] == (
            "application/merge-patch+json",
            "/apis/apps/v1/namespaces/models/deployments/llm/scale",
            {"spec": {"replicas": 3}},
        )
        await executor.scale(0)
        await eventually(lambda: executor.ready_endpoints() == [])
        await executor.aclose()
    assert fake.unauthorized == 0 and executor.errors == 0


@pytest.mark.parametrize(
    ("port", "expected"),
    [(None, ["http://10.0.0.1:9090", "http://[fd00::1]:9090"]), ("http", ["http://10.0.0.1:8000", "http://[fd00::1]:8000"]),
     (8000, ["http://10.0.0.1:8000", "http://[fd00::1]:8000"]), ("grpc", [])],
)  # fmt: skip
def test_parse_endpoint_slices(port: int | str | None, expected: list[str]) -> None:
    payload = {
        "items": [{
            "ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8000}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {}},  # ready unset means ready
                {"addresses": ["fd00::1"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
            ],
        }]
    }  # fmt: skip
    assert parse_endpoint_slices(payload, port, "http") == expected


def test_kubeconfig_contexts(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path, "http://127.0.0.1:1")
    fake = from_kubeconfig(path)
    assert (fake.server, fake.namespace, fake.bearer(), fake.insecure) == (
        "http://127.0.0.1:1",
        "models",
        "s3cret",
        True,
    )
    prod = from_kubeconfig(path, "flow")
    assert (
        prod.server == "https://prod.example:6443" and prod.namespace == "default" and prod.ca_data == "MIIC"
    )
    with pytest.raises(ValueError, match="no context named 'nope'"):
        from_kubeconfig(path, "nope")


def test_exec_credentials_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        "clusters:\n- name: c\n  cluster:\n    server: https://x\ncontexts:\n- name: c\n  context:\n"
        "    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    exec:\n"
        "      command: aws\n      args: [eks, get-token]\n"
    )
    with pytest.raises(ValueError, match="exec"):
        from_kubeconfig(str(path))


def test_in_cluster_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "namespace").write_text("serving")
    (tmp_path / "ca.crt").write_text("PEM")
    conn = in_cluster({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
    assert conn is not None
    assert (conn.server, conn.namespace, conn.bearer(), conn.ca_file) == (
        "https://10.96.0.1:443", "serving", "tok", str(tmp_path / "ca.crt"),
    )  # fmt: skip
    assert in_cluster({}, tmp_path) is None


def test_resolution_order(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path, "http://127.0.0.1:1")
    cfg = KubernetesConfig(deployment="d", namespace="other", api_server="http://override:8080/")
    conn = resolve_connection(cfg, {"KUBECONFIG": path})
    assert (conn.server, conn.namespace, conn.bearer()) == ("http://override:8080", "other", "s3cret")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb: 'x: y'\nc: \"q\\n\"\nd: [1, two]\ne: {}\nf:\n", {"a": 1, "b": "x: y", "c": "q\n", "d": [1, "two"], "e": {}, "f": None}),
        ("top:\n  - a\n  -  b\n  - k: v\n    k2: v2\n", {"top": ["a", "b", {"k": "v", "k2": "v2"}]}),
        ("list:\n- x: 1 # comment\n  y: https://h:1/p#frag\n", {"list": [{"x": 1, "y": "https://h:1/p#frag"}]}),
        ('{"json": [true, null]}', {"json": [True, None]}),
        ("---\nflag: TRUE\nnone: ~\n", {"flag": True, "none": None}),
    ],
)  # fmt: skip
def test_small_yaml_loader(text: str, expected: Any) -> None:
    assert load_yaml(text) == expected


@pytest.mark.parametrize("text", ["a: &anchor 1\n", "a: |\n  text\n", "a: {b: [1]}\n", "a: 1\n  b: 2\n"])
def test_small_yaml_loader_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError):
        load_yaml(text)
