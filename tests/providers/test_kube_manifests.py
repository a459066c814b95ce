"""deploy/kubernetes/: the RBAC grants what the kubernetes provider watches, the CRDs are the ones it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from a3s_gateway.stdlib.common.kubeconfig import load_yaml
from a3s_gateway.stdlib.providers.kubernetes import RESOURCES
from a3s_gateway.stdlib.providers.schemas.kubernetes import KubernetesProviderConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def documents(name: str) -> list[dict[str, Any]]:
    text = (DEPLOY / name).read_text()
    return [load_yaml(part) for part in text.split("\n---\n") if part.strip()]


def group_of(prefix: str) -> str:
    return "" if prefix == "/api/v1" else prefix.split("/")[2]


def test_the_cluster_role_lets_the_provider_list_and_watch_what_it_watches() -> None:
    (account, role, binding) = documents("rbac.yaml")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for resource, prefix in RESOURCES.items():
        for verb in ("list", "watch"):
            assert (group_of(prefix), resource, verb) in granted, (resource, verb)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]  # fmt: skip
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_the_crds_are_the_traefik_resources_the_provider_reads() -> None:
    crds = documents("crds.yaml")
    served = {
        (c["spec"]["group"], c["spec"]["names"]["plural"], c["spec"]["versions"][0]["name"]) for c in crds
    }
    wanted = {(group_of(p), r, p.split("/")[3]) for r, p in RESOURCES.items() if group_of(p) == "traefik.io"}
    assert served == wanted


def test_the_ingress_class_is_the_default_one() -> None:
    (ingress_class,) = documents("ingressclass.yaml")
    assert ingress_class["metadata"]["name"] == KubernetesProviderConfig().ingress_class
