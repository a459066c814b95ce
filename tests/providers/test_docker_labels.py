"""Docker labels to a fragment (a pure function), on containers in the engine's inspect shape."""

from __future__ import annotations

from a3s_gateway.stdlib.providers._docker_labels import DockerOptions, translate_containers
from a3s_gateway.stdlib.providers._found import Found

from ..docker_shapes import inspect

OPTIONS = DockerOptions()


def translate(*containers: dict[str, object], options: DockerOptions = OPTIONS) -> Found:
    found = Found()
    translate_containers(found, list(containers), options)
    return found


def test_traefik_style_labels() -> None:
    labels = {
        "a3s.http.routers.api.rule": "Host(`api.test`) && PathPrefix(`/v1`)",
        "a3s.http.routers.api.entrypoints": "web, websecure",
        "a3s.http.routers.api.middlewares": "strip,auth@file",
        "a3s.http.routers.api.priority": "10",
        "a3s.http.services.llm.loadbalancer.server.port": "8000",
        "a3s.http.services.llm.loadbalancer.strategy": "p2c",
        "a3s.http.services.llm.loadbalancer.healthcheck.path": "/health",
        "a3s.http.middlewares.strip.strip-prefix.prefixes": "/v1,/v2",
        "a3s.http.middlewares.limit.rate-limit.rate": "10",
        "a3s.http.middlewares.ips.ip-allow.ip_strategy.depth": "1",
        "a3s.http.middlewares.ips.ip-allow.allowed_ips": "10.0.0.0/8",
        "com.docker.compose.project": "llm",  # not ours
    }
    found = translate(inspect("llm-1", labels, ip="172.18.0.5", exposed=(8000, 9090)))
    assert found.problems == []
    assert found.tree["routers"] == {
        "api": {
            "rule": "Host(`api.test`) && PathPrefix(`/v1`)",
            "entrypoints": ["web", "websecure"],
            "middlewares": ["strip", "auth@file"],
            "priority": "10",
            "service": "llm",
        }
    }
    assert found.tree["services"] == {
        "llm": {"load_balancer": {"strategy": "p2c", "health_check": {"path": "/health"},
                                  "servers": [{"url": "http://172.18.0.5:8000"}]}}
    }  # fmt: skip
    assert found.tree["middlewares"] == {
        "ips": {"type": "ip-allow", "allowed_ips": ["10.0.0.0/8"], "ip_strategy": {"depth": "1"}},
        "limit": {"type": "rate-limit", "rate": "10"},
        "strip": {"type": "strip-prefix", "prefixes": ["/v1", "/v2"]},
    }
    assert found.origins[("routers", "api")] == "container llm-1"


def test_defaults_replicas_and_what_is_left_out() -> None:
    web = {
        "a3s.http.routers.web.rule": "Host(`web.test`)",
        "a3s.http.services.web.loadbalancer.server.port": "80",
    }
    found = translate(
        inspect("plain", {}, ip="172.17.0.9", exposed=(3000,)),
        inspect("web-1", web, ip="172.17.0.2"),
        inspect("web-2", web, ip="172.17.0.3"),
        inspect("off", {"a3s.enable": "false"}),
        inspect("stopped", {}, running=False),
        inspect("sick", {}, health="unhealthy"),
        inspect("fine", {}, health="healthy", ip="172.17.0.7"),
    )
    assert found.problems == []
    assert found.tree["routers"] == {
        "fine": {"rule": "Host(`fine`)", "service": "fine"},
        "plain": {"rule": "Host(`plain`)", "service": "plain"},
        "web": {"rule": "Host(`web.test`)", "service": "web"},
    }
    assert found.tree["services"]["web"]["load_balancer"]["servers"] == [
        {"url": "http://172.17.0.2:80"},
        {"url": "http://172.17.0.3:80"},
    ]
    assert found.tree["services"]["plain"]["load_balancer"]["servers"] == [{"url": "http://172.17.0.9:3000"}]
    opt_in = translate(
        inspect("a", {}),
        inspect("b", {"a3s.enable": "true"}),
        options=DockerOptions(exposed_by_default=False),
    )
    assert list(opt_in.tree["routers"]) == ["b"]


def test_malformed_labels_are_problems_naming_the_container_and_label() -> None:
    found = translate(
        inspect(
            "bad",
            {
                "a3s.http.routers.x.rul": "Host(`x`)",
                "a3s.http.middlewares.m.nope.a": "1",
                "a3s.http.routers": "?",
            },
            exposed=(80, 81),
        ),
        inspect("one", {"a3s.http.routers.r.rule": "Host(`a`)"}),
        inspect("two", {"a3s.http.routers.r.rule": "Host(`b`)"}),
    )
    problems = sorted(found.problems)
    assert problems == [
        ("container bad", "the container exposes 2 ports: give <prefix>.http.services.<name>.loadbalancer.server.port"),
        ("container bad label a3s.http.middlewares.m.nope.a", "unknown middleware type 'nope'"),
        ("container bad label a3s.http.routers", "expected a3s.http.routers|services|middlewares.<name>.<key>"),
        ("container bad label a3s.http.routers.x.rul",
         "a router label ends in one of: entrypoints, middlewares, priority, rule, service, tls"),
        ("container two", "router 'r' is also defined, differently, by container one"),
    ]  # fmt: skip


def test_a_key_set_both_as_a_value_and_as_a_table_is_a_problem_not_an_exception() -> None:
    # Labels are read in sorted order, so `x` comes before `x.y`: each pairing is a problem
    # naming the second label (before, a TypeError ended the watch as a lost source).
    labels = {
        "a3s.http.services.s.loadbalancer": "x",
        "a3s.http.services.s.loadbalancer.strategy": "p2c",
        "a3s.http.middlewares.m.headers.request_headers": "x",
        "a3s.http.middlewares.m.headers.request_headers.X-A": "b",
    }
    found = translate(inspect("web", labels, ip="172.18.0.5", exposed=(80,)))
    assert found.problems == [
        (
            "container web label a3s.http.middlewares.m.headers.request_headers.X-A",
            "'request_headers' is set to a value by another label: it cannot have keys too",
        ),
        (
            "container web label a3s.http.services.s.loadbalancer",
            "a load balancer label names a key: loadbalancer.<key>",
        ),
    ]
    assert found.tree["services"]["s"]["load_balancer"]["strategy"] == "p2c"
