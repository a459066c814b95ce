"""Docker container labels to routers, services and middlewares, as Traefik's docker provider reads them.

With the default prefix `a3s`:

    a3s.enable=false                                   leave this container out
    a3s.http.routers.<r>.rule=Host(`api.test`)         routers "<r>" { rule = ... }
    a3s.http.routers.<r>.service=<s>                   (default: the container's only service)
    a3s.http.routers.<r>.entrypoints=web,websecure     comma-separated lists
    a3s.http.routers.<r>.middlewares=strip,auth@file
    a3s.http.routers.<r>.priority=10   .tls=true
    a3s.http.services.<s>.loadbalancer.server.port=8080    the container's port (default: its only exposed one)
    a3s.http.services.<s>.loadbalancer.server.scheme=https
    a3s.http.services.<s>.loadbalancer.strategy=p2c   .passhostheader=false
    a3s.http.services.<s>.loadbalancer.healthcheck.path=/health   (.interval, .timeout)
    a3s.http.middlewares.<m>.<type>.<option>=value     a middleware of kind <type>, e.g.
    a3s.http.middlewares.strip.strip-prefix.prefixes=/api,/v1

(`load_balancer` and `health_check` are accepted for Traefik's `loadbalancer` and `healthcheck`.)
A container without service labels has a service named after it on its only exposed port; one
without router labels has a router named after it whose rule is `default_rule` with `{name}`
replaced by the container's name. The server is the container's address on `network` (else its
first network with an address). Containers of the same service (replicas) add servers to one
service; two containers defining the same router differently is a problem. A container that is
not running, or whose health check is not `healthy`, is left out.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..registry import lookup
from ._found import Found, as_dict, safe_name

__all__ = ["DockerOptions", "translate_containers"]

_ROUTER_KEYS = {"rule", "service", "entrypoints", "middlewares", "priority", "tls"}
_LISTS = {"entrypoints", "middlewares"}
_ALIASES = {
    "loadbalancer": "load_balancer",
    "healthcheck": "health_check",
    "passhostheader": "pass_host_header",
}


@dataclass(frozen=True)
class DockerOptions:
    prefix: str = "a3s"
    exposed_by_default: bool = True
    network: str | None = None
    default_rule: str = "Host(`{name}`)"


@dataclass
class _Container:
    name: str
    labels: Mapping[str, str]
    address: str | None
    ports: list[int]

    @property
    def origin(self) -> str:
        return f"container {self.name}"


def _container(info: Mapping[str, Any], network: str | None) -> _Container | None:
    """The parts of a `GET /containers/{id}/json` answer we read (None: not serving)."""
    state = as_dict(info.get("State"))
    health = state.get("Health") if isinstance(state.get("Health"), dict) else None
    if not state.get("Running", False) or (health is not None and health.get("Status") != "healthy"):
        return None
    config = as_dict(info.get("Config"))
    labels = {str(k): str(v) for k, v in as_dict(config.get("Labels")).items()}
    settings = as_dict(info.get("NetworkSettings"))
    networks = as_dict(settings.get("Networks"))
    chosen = [networks[network]] if network in networks else list(networks.values())
    addresses = [n.get("IPAddress") for n in chosen if isinstance(n, dict) and n.get("IPAddress")]
    ports = sorted(
        int(key.split("/")[0]) for key in config.get("ExposedPorts") or {} if key.split("/")[0].isdigit()
    )
    return _Container(
        str(info.get("Name") or "").lstrip("/"), labels, addresses[0] if addresses else None, ports
    )


def translate_containers(
    found: Found, containers: Sequence[Mapping[str, Any]], options: DockerOptions
) -> None:
    """Add the routers, services and middlewares the containers' labels describe."""
    servers: dict[str, list[dict[str, Any]]] = {}
    bodies: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
    for info in containers:
        container = _container(info, options.network)
        if container is None or not _enabled(container, options):
            continue
        for (section, name), body in _one(found, container, options, servers).items():
            known = bodies.get((section, name))
            if known is None:
                bodies[(section, name)] = (body, container.origin)
            elif known[0] != body:
                found.problem(
                    container.origin, f"{section[:-1]} {name!r} is also defined, differently, by {known[1]}"
                )
    for (section, name), (body, origin) in sorted(bodies.items()):
        if section == "services":
            body = {
                **body,
                "load_balancer": {**body.get("load_balancer", {}), "servers": servers.get(name, [])},
            }
        found.add(section, name, body, origin)


def _enabled(container: _Container, options: DockerOptions) -> bool:
    flag = container.labels.get(f"{options.prefix}.enable")
    return flag.lower() == "true" if flag is not None else options.exposed_by_default


def _one(
    found: Found, container: _Container, options: DockerOptions, servers: dict[str, list[dict[str, Any]]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """This container's objects; its servers are added to `servers` by service name."""
    tree: dict[str, dict[str, dict[str, Any]]] = {"routers": {}, "services": {}, "middlewares": {}}
    server_labels: dict[str, dict[str, str]] = {}
    head = f"{options.prefix}.http."
    for label, value in sorted(container.labels.items()):
        if not label.startswith(head):
            continue
        parts = label[len(head) :].split(".")
        origin = f"{container.origin} label {label}"
        if len(parts) < 3 or parts[0] not in tree or not all(parts):
            found.problem(origin, f"expected {head}routers|services|middlewares.<name>.<key>")
            continue
        section, name, keys = parts[0], parts[1], [_ALIASES.get(k, k) for k in parts[2:]]
        if section == "routers":
            _router_label(found, tree["routers"].setdefault(name, {}), keys, value, origin)
        elif section == "services":
            if (
                keys[:2] == ["load_balancer", "server"]
                and len(keys) == 3
                and keys[2] in ("port", "scheme", "weight")
            ):
                server_labels.setdefault(name, {})[keys[2]] = value
            elif keys == ["load_balancer"]:
                found.problem(origin, "a load balancer label names a key: loadbalancer.<key>")
            else:
                _set(found, tree["services"].setdefault(name, {}), keys, value, origin)
        else:
            _middleware_label(found, tree["middlewares"].setdefault(name, {}), keys, value, origin)
    for name in server_labels:
        tree["services"].setdefault(name, {})
    if not tree["services"]:
        tree["services"][safe_name(container.name)] = {}
    for name in tree["services"]:
        server = _server(found, container, server_labels.get(name, {}))
        if server is not None:
            servers.setdefault(name, []).append(server)
    if not tree["routers"]:
        tree["routers"][safe_name(container.name)] = {
            "rule": options.default_rule.replace("{name}", container.name)
        }
    for name, router in tree["routers"].items():
        if "service" not in router:
            if len(tree["services"]) != 1:
                found.problem(
                    container.origin, f"router {name!r} needs a service label: the container has several"
                )
                continue
            router["service"] = next(iter(tree["services"]))
    return {(section, name): body for section, objects in tree.items() for name, body in objects.items()}


def _router_label(found: Found, router: dict[str, Any], keys: list[str], value: str, origin: str) -> None:
    if len(keys) != 1 or keys[0] not in _ROUTER_KEYS:
        found.problem(origin, f"a router label ends in one of: {', '.join(sorted(_ROUTER_KEYS))}")
    elif keys[0] in _LISTS:
        router[keys[0]] = [item.strip() for item in value.split(",") if item.strip()]
    else:
        router[keys[0]] = value


def _middleware_label(
    found: Found, middleware: dict[str, Any], keys: list[str], value: str, origin: str
) -> None:
    kind = lookup("middleware", keys[0])
    if kind is None:
        found.problem(origin, f"unknown middleware type {keys[0]!r}")
        return
    if middleware.setdefault("type", kind.name) != kind.name:
        found.problem(origin, f"the middleware already has type {middleware['type']!r}")
        return
    if len(keys) == 1:
        return  # `a3s.http.middlewares.gz.compress=true`: the type with its defaults
    field = kind.config.model_fields.get(keys[1])
    is_list = field is not None and len(keys) == 2 and typing.get_origin(field.annotation) in (list, tuple)
    _set(found, middleware, keys[1:], [v.strip() for v in value.split(",")] if is_list else value, origin)


def _set(found: Found, body: dict[str, Any], keys: list[str], value: Any, origin: str) -> None:
    # The labels come sorted, so `x` (a value) is set before `x.y` (a key under it) would be.
    for key in keys[:-1]:
        body = body.setdefault(key, {})
        if not isinstance(body, dict):
            found.problem(origin, f"{key!r} is set to a value by another label: it cannot have keys too")
            return
    body[keys[-1]] = value


def _server(found: Found, container: _Container, labels: Mapping[str, str]) -> dict[str, Any] | None:
    if container.address is None:
        found.problem(container.origin, "the container has no network address")
        return None
    port = labels.get("port")
    if port is None:
        if len(container.ports) != 1:
            found.problem(
                container.origin,
                f"the container exposes {len(container.ports) or 'no'} ports: give "
                "<prefix>.http.services.<name>.loadbalancer.server.port",
            )
            return None
        port = str(container.ports[0])
    if not port.isdigit():
        found.problem(container.origin, f"server port {port!r} is not a number")
        return None
    host = f"[{container.address}]" if ":" in container.address else container.address
    server: dict[str, Any] = {"url": f"{labels.get('scheme', 'http')}://{host}:{port}"}
    if "weight" in labels:
        server["weight"] = labels["weight"]
    return server
