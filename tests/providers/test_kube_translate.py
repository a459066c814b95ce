"""The kubernetes provider's translators: Ingress and Traefik CRDs to a fragment (pure functions).

The objects are in the shapes the API server returns (networking.k8s.io/v1, discovery.k8s.io/v1,
traefik.io/v1alpha1); tests/kube_api.py serves the same objects over list+watch.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from a3s_gateway.stdlib.providers._found import Found
from a3s_gateway.stdlib.providers._ingress import translate_ingresses
from a3s_gateway.stdlib.providers._ingressroute import translate_crds
from a3s_gateway.stdlib.providers._kube_backends import Cluster
from a3s_gateway.stdlib.registry import lookup

from ..backends import client_identity
from ..kube_objects import CERT_PEM, KEY_PEM, endpoint_slice, ingress, obj, secret, service


def cluster(*objects: tuple[str, dict[str, Any]]) -> Cluster:
    out: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for resource, item in objects:
        meta = item["metadata"]
        out.setdefault(resource, {})[(meta.get("namespace", "default"), meta["name"])] = item
    return Cluster(out)


BACKEND = (
    ("services", service("web", ports=[{"name": "http", "port": 80, "targetPort": 8080}])),
    ("endpointslices", endpoint_slice("web-abc", "web", ["10.0.0.1", "10.0.0.2"], port=8080, name="http")),
)


def test_ingress_rules_become_routers_to_the_pods() -> None:
    found = Found()
    item = ingress(
        "site",
        rules=[{"host": "api.example.com", "http": {"paths": [
            {"path": "/v1", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "/exact", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
        ]}}],
    )  # fmt: skip
    certs = translate_ingresses(found, cluster(*BACKEND, ("ingresses", item)), "a3s-gateway", ["web"])
    assert certs == [] and found.problems == []
    routers = found.tree["routers"]
    assert routers["default-site-api-example-com-v1"] == {
        "rule": "Host(`api.example.com`) && PathPrefix(`/v1`)",
        "service": "default-web-80",
        "entrypoints": ["web"],
    }
    assert (
        routers["default-site-api-example-com-exact"]["rule"] == "Host(`api.example.com`) && Path(`/exact`)"
    )
    assert found.tree["services"]["default-web-80"] == {
        "load_balancer": {"servers": [{"url": "http://10.0.0.1:8080"}, {"url": "http://10.0.0.2:8080"}]}
    }
    assert found.origins[("routers", "default-site-api-example-com-v1")] == "Ingress default/site"


def test_other_classes_are_ignored_and_the_annotation_counts() -> None:
    found = Found()
    theirs = ingress("theirs", ingress_class="nginx", default_backend=("web", 80))
    annotated = ingress("old", ingress_class=None, default_backend=("web", 80))
    annotated["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "a3s-gateway"}
    translate_ingresses(
        found, cluster(*BACKEND, ("ingresses", theirs), ("ingresses", annotated)), "a3s-gateway", []
    )
    assert list(found.tree["routers"]) == ["default-old-default-backend"]
    assert found.tree["routers"]["default-old-default-backend"]["rule"] == "PathPrefix(`/`)"


def test_wildcard_host_and_tls_secret() -> None:
    found = Found()
    item = ingress(
        "tls", tls=[{"hosts": ["*.example.com"], "secretName": "cert"}],
        rules=[{"host": "*.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
        ]}}],
    )  # fmt: skip
    certs = translate_ingresses(
        found, cluster(*BACKEND, ("ingresses", item), ("secrets", secret("cert"))), "a3s-gateway", []
    )
    assert [(c.origin, c.cert_pem, c.key_pem) for c in certs] == [("Secret default/cert", CERT_PEM, KEY_PEM)]
    (router,) = found.tree["routers"].values()
    assert router["rule"] == "HostRegexp(`^[a-zA-Z0-9-]+\\.example\\.com$`) && PathPrefix(`/`)"


def test_malformed_ingresses_are_problems_naming_them() -> None:
    found = Found()
    no_backend = ingress("empty")
    bad_path = ingress("bad", rules=[{"http": {"paths": [{"path": "/x", "pathType": "Prefix"}]}}])
    resource = ingress(
        "res", rules=[{"http": {"paths": [{"path": "/", "backend": {"resource": {"kind": "Bucket"}}}]}}]
    )
    missing = ingress("missing", default_backend=("nope", 80), tls=[{"secretName": "gone"}])
    wrong_port = ingress("port", default_backend=("web", 81))
    objects = [("ingresses", i) for i in (no_backend, bad_path, resource, missing, wrong_port)]
    translate_ingresses(found, cluster(*BACKEND, *objects), "a3s-gateway", [])
    assert sorted(found.problems) == [
        ("Ingress default/bad path /x", "no backend: give backend.service with a name and a port"),
        (
            "Ingress default/empty",
            "the Ingress has no backend: neither rules with paths nor a defaultBackend",
        ),
        ("Ingress default/missing", "Service default/nope does not exist"),
        ("Ingress default/missing", "TLS Secret default/gone does not exist"),
        ("Ingress default/port", "Service default/web has no port 81"),
        ("Ingress default/res path /", "resource backends are not supported: give backend.service"),
    ]
    assert "routers" not in found.tree


def test_fields_of_the_wrong_shape_are_problems_or_skipped_never_exceptions() -> None:
    # What the API server would never send, but a translator must not raise on: an exception
    # here would end the watch as a "lost source" and re-list in a loop, naming no object.
    found = Found()
    shapeless = ingress("shapeless", default_backend=("odd", 80))
    shapeless["spec"].update(tls=True, rules=[{"http": {"paths": 3}}, 7])
    odd_service = service("odd", ports=7)  # type: ignore[arg-type]
    ports = ingress("ports", default_backend=("weird", "http"), tls=[{"secretName": "numbers"}])
    weird = service("weird", ports=[{"name": "http", "port": {"x": 1}}])
    odd_slice = endpoint_slice("weird-1", "weird", ["10.0.0.9"], port=8080, name="http")
    odd_slice["ports"] = [{"name": "http", "port": {}}]
    odd_slice["endpoints"] = [5, {"addresses": [None, 3]}]
    numbers = secret("numbers", data={"tls.crt": 1, "tls.key": ["x"]})  # type: ignore[dict-item]
    external = ingress("external", default_backend=("ext", 80))
    ext = {**service("ext", ports=[]), "spec": {"type": "ExternalName"}}
    objects = [("ingresses", shapeless), ("ingresses", ports), ("ingresses", external), ("services", ext)]
    objects += [("services", odd_service), ("services", weird), ("endpointslices", odd_slice)]
    translate_ingresses(found, cluster(*objects, ("secrets", numbers)), "a3s-gateway", [])
    assert sorted(found.problems) == [
        ("Ingress default/external", "ExternalName Service default/ext has no spec.externalName"),
        ("Ingress default/ports", "TLS Secret default/numbers: tls.crt or tls.key is not base64 PEM"),
        ("Ingress default/shapeless", "Service default/odd has no port 80"),
    ]
    # The port that is not a number gives no servers (an empty pool: 503), not an exception.
    assert found.tree["services"]["default-weird-http"] == {"load_balancer": {"servers": []}}


def test_not_ready_and_terminating_endpoints_are_left_out() -> None:
    found = Found()
    slices = endpoint_slice("web-x", "web", ["10.0.0.1"], port=8080, name="http")
    slices["endpoints"] += [
        {"addresses": ["10.0.0.9"], "conditions": {"ready": False}},
        {"addresses": ["fd00::7"], "conditions": {"ready": True, "terminating": True}},
        {"addresses": ["fd00::8"], "conditions": {"ready": True}},
    ]
    translate_ingresses(
        found, cluster(BACKEND[0], ("endpointslices", slices), ("ingresses", ingress("i", default_backend=("web", "http")))),
        "a3s-gateway", [],
    )  # fmt: skip
    servers = found.tree["services"]["default-web-http"]["load_balancer"]["servers"]
    assert servers == [{"url": "http://10.0.0.1:8080"}, {"url": "http://[fd00::8]:8080"}]


def route(**spec: Any) -> dict[str, Any]:
    return obj("traefik.io/v1alpha1", "IngressRoute", "api", spec)


def test_ingressroute_with_middlewares_and_weighted_services() -> None:
    found = Found()
    other = ("services", service("canary", ports=[{"port": 80, "targetPort": 9000}]))
    other_slice = ("endpointslices", endpoint_slice("canary-1", "canary", ["10.0.1.1"], port=9000))
    strip = obj("traefik.io/v1alpha1", "Middleware", "strip", {"stripPrefix": {"prefixes": ["/api"]}})
    limit = obj(
        "traefik.io/v1alpha1",
        "Middleware",
        "limit",
        {"rateLimit": {"average": 10, "burst": 20, "period": "1s"}},
    )
    retry = obj(
        "traefik.io/v1alpha1", "Middleware", "again", {"retry": {"attempts": 3, "initialInterval": "100ms"}}
    )
    ir = route(
        entryPoints=["websecure"],
        routes=[{"match": "Host(`a.test`) && PathPrefix(`/api`)", "kind": "Rule", "priority": 50,
                 "middlewares": [{"name": "strip"}, {"name": "limit"}, {"name": "auth@file"}],
                 "services": [{"name": "web", "port": 80, "weight": 3}, {"name": "canary", "port": 80, "weight": 1}]},
                {"match": "Host(`b.test`)", "services": [{"name": "web", "port": "http"}]}],
        tls={"secretName": "cert"},
    )  # fmt: skip
    objects = [("middlewares", strip), ("middlewares", limit), ("middlewares", retry), ("ingressroutes", ir)]
    certs = translate_crds(
        found, cluster(*BACKEND, other, other_slice, ("secrets", secret("cert")), *objects), [], False
    )
    assert found.problems == [] and len(certs) == 1
    routers = found.tree["routers"]
    assert routers["default-api-0"] == {
        "rule": "Host(`a.test`) && PathPrefix(`/api`)",
        "service": "default-web-80-default-canary-80",
        "middlewares": ["default-strip", "default-limit", "auth@file"],
        "priority": 50,
        "entrypoints": ["websecure"],
    }
    revisions = found.tree["services"]["default-web-80-default-canary-80"]["revisions"]
    assert [(r["name"], r["traffic_percent"]) for r in revisions] == [
        ("default-web-80", 75.0),
        ("default-canary-80", 25.0),
    ]
    assert revisions[1]["servers"] == [{"url": "http://10.0.1.1:9000"}]
    assert found.tree["middlewares"] == {
        "default-again": {"type": "retry", "max_retries": 2, "retry_interval_ms": 100},
        "default-limit": {"type": "rate-limit", "rate": 10, "period": "1s", "burst": 20},
        "default-strip": {"type": "strip-prefix", "prefixes": ["/api"]},
    }


def test_basic_auth_reads_its_secret() -> None:
    found = Found()
    users = secret("users", data={"users": base64.b64encode(b"alice:$2y$05$abc\nbob:$2y$05$def\n").decode()})
    mw = obj(
        "traefik.io/v1alpha1", "Middleware", "auth", {"basicAuth": {"secret": "users", "removeHeader": True}}
    )
    translate_crds(found, cluster(("secrets", users), ("middlewares", mw)), [], False)
    assert found.tree["middlewares"]["default-auth"] == {
        "type": "basic-auth", "users": ["alice:$2y$05$abc", "bob:$2y$05$def"], "remove_header": True,
    }  # fmt: skip


def test_malformed_crds_are_problems_naming_the_object_and_field() -> None:
    found = Found()
    unknown_field = route(
        routes=[{"match": "Host(`x`)", "services": [{"name": "web", "port": 80, "nativeLB": True}]}]
    )
    typo = obj("traefik.io/v1alpha1", "Middleware", "typo", {"stripPrefix": {"prefixs": ["/a"]}})
    unknown_type = obj("traefik.io/v1alpha1", "Middleware", "chain", {"chain": {"middlewares": []}})
    cross = obj("traefik.io/v1alpha1", "IngressRoute", "cross",
                {"routes": [{"match": "Host(`y`)", "services": [{"name": "db", "namespace": "prod", "port": 80}]}]})  # fmt: skip
    option = obj(
        "traefik.io/v1alpha1",
        "TLSOption",
        "strict",
        {"minVersion": "VersionTLS13", "disableSessionTickets": True},
    )
    uses_option = obj("traefik.io/v1alpha1", "IngressRoute", "opt",
                      {"routes": [{"match": "Host(`z`)", "services": [{"name": "web", "port": 80}]}],
                       "tls": {"options": {"name": "strict"}}})  # fmt: skip
    objects = [("ingressroutes", unknown_field), ("middlewares", typo), ("middlewares", unknown_type),
               ("ingressroutes", cross), ("tlsoptions", option), ("ingressroutes", uses_option)]  # fmt: skip
    translate_crds(found, cluster(*BACKEND, *objects), [], False)
    problems = dict(found.problems)
    assert problems["IngressRoute default/api"] == "spec.routes.0.services.0.nativeLB: unknown field"
    assert problems["Middleware default/typo"] == "spec.prefixs: unknown field"
    assert "exactly one middleware type" in problems["Middleware default/chain"]
    assert "another namespace" in problems["IngressRoute default/cross"]
    assert problems["TLSOption default/strict"] == "spec.disableSessionTickets: unknown field"
    # The route names the TLSOption that is there (its own problem rejects the fragment).
    assert "IngressRoute default/opt" not in problems
    assert found.tree["routers"]["default-opt-0"]["tls"] == {"options": "default-strict"}
    missing = Found()
    translate_crds(missing, cluster(*BACKEND, ("ingressroutes", uses_option)), [], False)
    assert missing.problems == [
        ("IngressRoute default/opt", "tls.options names TLSOption default/strict, which does not exist")
    ]


def test_tls_options_become_tls_options_that_routes_name() -> None:
    found = Found()
    modern = obj(
        "traefik.io/v1alpha1",
        "TLSOption",
        "modern",
        {"minVersion": "VersionTLS13", "alpnProtocols": ["h2"], "sniStrict": True},
        namespace="tls",
    )
    old = obj("traefik.io/v1alpha1", "TLSOption", "old", {
        "maxVersion": "VersionTLS12", "cipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]})  # fmt: skip
    curves = obj("traefik.io/v1alpha1", "TLSOption", "curves", {"curvePreferences": ["CurveP521", "X25519"]})
    uses = route(routes=[{"match": "Host(`a.test`)", "services": [{"name": "web", "port": 80}]}],
                 tls={"options": {"name": "modern", "namespace": "tls"}})  # fmt: skip
    objects = [("tlsoptions", modern), ("tlsoptions", old), ("tlsoptions", curves), ("ingressroutes", uses)]
    translate_crds(found, cluster(*BACKEND, *objects), [], False)
    assert found.tree["tls_options"] == {
        "tls-modern": {"min_version": "1.3", "alpn_protocols": ["h2"], "sni_strict": True},
        "default-old": {"max_version": "1.2", "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]},
        "default-curves": {"curve_preferences": ["CurveP521", "X25519"]},
    }
    assert found.tree["routers"]["default-api-0"]["tls"] == {"options": "tls-modern"}
    assert found.problems == []


def test_route_service_scheme_and_pass_host_header_reach_the_service() -> None:
    # Traefik's `scheme: h2c` is HTTP/2 with prior knowledge (gRPC backends): an h2c:// upstream,
    # not plain HTTP/1.1; `passHostHeader: false` sends the backend's own Host. A route to the
    # same Service read another way is another service, not the first one's.
    found = Found()
    ir = route(
        routes=[{"match": "Host(`g.test`)", "services": [{"name": "web", "port": 80, "scheme": "h2c"}]},
                {"match": "Host(`h.test`)", "services": [{"name": "web", "port": 80, "passHostHeader": False}]},
                {"match": "Host(`i.test`)", "services": [{"name": "web", "port": 80, "scheme": "h2c"}]}],
    )  # fmt: skip
    translate_crds(found, cluster(*BACKEND, ("ingressroutes", ir)), [], False)
    assert found.problems == []
    routers, services = found.tree["routers"], found.tree["services"]
    h2c = services[routers["default-api-0"]["service"]]
    assert h2c == {
        "load_balancer": {"servers": [{"url": "h2c://10.0.0.1:8080"}, {"url": "h2c://10.0.0.2:8080"}]}
    }
    own_host = services[routers["default-api-1"]["service"]]["load_balancer"]
    assert own_host["pass_host_header"] is False
    assert own_host["servers"] == [{"url": "http://10.0.0.1:8080"}, {"url": "http://10.0.0.2:8080"}]
    assert routers["default-api-2"]["service"] == routers["default-api-0"]["service"]


def test_weighted_services_disagreeing_on_pass_host_header_are_a_problem() -> None:
    found = Found()
    other = ("services", service("canary", ports=[{"port": 80, "targetPort": 9000}]))
    ir = route(
        routes=[{"match": "Host(`a.test`)", "services": [{"name": "web", "port": 80, "passHostHeader": False},
                                                         {"name": "canary", "port": 80}]},
                {"match": "Host(`b.test`)", "services": [{"name": "web", "port": 80, "passHostHeader": False},
                                                         {"name": "canary", "port": 80, "passHostHeader": True}]}],
    )  # fmt: skip
    translate_crds(found, cluster(*BACKEND, other, ("ingressroutes", ir)), [], False)
    shared = found.tree["services"][found.tree["routers"]["default-api-0"]["service"]]
    assert shared["load_balancer"] == {"pass_host_header": False} and len(shared["revisions"]) == 2
    assert found.problems == [
        ("IngressRoute default/api", "the weighted Services disagree on passHostHeader: a route has one Host")
    ]


def test_a_basic_auth_secret_password_is_plain_text_whatever_it_looks_like() -> None:
    found = Found()
    pair = {"username": b"ops", "password": b"$apr1$not-a-hash"}
    users = secret("pair", data={k: base64.b64encode(v).decode() for k, v in pair.items()})
    mw = obj("traefik.io/v1alpha1", "Middleware", "auth", {"basicAuth": {"secret": "pair"}})
    translate_crds(found, cluster(("secrets", users), ("middlewares", mw)), [], False)
    body = found.tree["middlewares"]["default-auth"]
    assert body == {"type": "basic-auth", "users": ["ops:{PLAIN}$apr1$not-a-hash"]}
    kind = lookup("middleware", "basic-auth")
    assert kind is not None
    kind.config.model_validate({"users": body["users"]})  # an MD5 hash would be refused here


def test_client_auth_reads_the_ca_of_each_secret(tmp_path: Path) -> None:
    # Traefik reads each Secret's tls.ca, else its ca.crt, from the TLSOption's namespace.
    first, second = (Path(client_identity(tmp_path, name)[0]).read_text() for name in ("alice", "bob"))
    b64 = {name: base64.b64encode(pem.encode()).decode() for name, pem in (("a", first), ("b", second))}
    secrets = [
        ("secrets", secret("ca-a", {"tls.ca": b64["a"], "ca.crt": b64["b"]}, namespace="tls")),
        ("secrets", secret("ca-b", {"ca.crt": b64["b"]}, namespace="tls")),
        ("secrets", secret("other", {"tls.crt": b64["a"]}, namespace="tls")),
        ("secrets", secret("garbled", {"ca.crt": base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()}, namespace="tls")),
    ]  # fmt: skip

    def option(name: str, client_auth: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "tlsoptions", obj("traefik.io/v1alpha1", "TLSOption", name, {"clientAuth": client_auth}, namespace="tls")  # fmt: skip

    found = Found()
    objects = [
        *secrets,
        option("mtls", {"secretNames": ["ca-a", "ca-b"], "clientAuthType": "VerifyClientCertIfGiven"}),
        option("missing", {"secretNames": ["nope"]}),
        option("nokey", {"secretNames": ["other"]}),
        option("garbled", {"secretNames": ["garbled"]}),
        option("unverified", {"secretNames": ["ca-a"], "clientAuthType": "RequireAnyClientCert"}),
    ]
    translate_crds(found, cluster(*objects), [], False)
    assert found.tree["tls_options"] == {
        "tls-mtls": {
            "client_auth": {"ca_files": [first, second], "client_auth_type": "VerifyClientCertIfGiven"}
        }
    }
    problems = dict(found.problems)
    assert problems.pop("TLSOption tls/missing") == "clientAuth Secret tls/nope does not exist"
    assert (
        problems.pop("TLSOption tls/nokey")
        == "clientAuth Secret tls/other contains neither tls.ca nor ca.crt"
    )
    assert (
        problems.pop("TLSOption tls/garbled")
        == "clientAuth Secret tls/garbled: ca.crt is not a PEM CA certificate"
    )
    assert "RequireAnyClientCert asks for a certificate it does not verify" in problems.pop(
        "TLSOption tls/unverified"
    )
    assert problems == {}
