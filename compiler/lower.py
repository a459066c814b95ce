"""Lowering: the merged config tree becomes IR nodes and edges.

Every block is validated on its own (see validate.py), then turned into nodes:

    entrypoint:<name>   EntrypointConfig
    router:<name>       RouterConfig        attrs: priority, entrypoints, rule (canonical text)
    tcp_router:<name>   TcpRouterConfig     attrs: priority, entrypoints, rule
    udp_router:<name>   UdpRouterConfig     attrs: entrypoints
    middleware:<name>   the kind's model    attrs: type
    service:<name>      ServiceConfig       attrs: protocol
    proxy:<service>     ProxyConfig         attrs: service
    scaler:<service>    ScalingConfig       attrs: service, executor
    scaler:<svc>/<rev>  ScalingConfig       attrs: service, executor, revision (a scaled revision)
    service:<x>@internal InternalServiceConfig attrs: protocol, internal (see internal.py)

The `api { }` block lowers to an entrypoint `api` and routers `api@internal`, `ping@internal`
(and `dashboard@internal` with `dashboard = true`): internal.py.

A `routers` block whose entrypoints are all TCP entrypoints is a TCP router, as the A3S docs
write them (`routers "db" { rule = "HostSNI(`*`)" ... }` on a `protocol = "tcp"` entrypoint).
Reference checks that need the whole graph live in check.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ..stdlib import registry
from . import internal
from .acme import check_acme
from .diagnostics import Diagnostics, did_you_mean
from .ir import Edge, Node, NodeKind
from .keys import TOP_LEVEL
from .merge import LoadedConfig, SpanMap
from .model import ConfigModel
from .rules import parse_rule, to_text
from .rules.ast import iter_matchers
from .rules.priority import default_priority
from .schema import (
    ApiConfig,
    EntrypointConfig,
    ProxyConfig,
    RouterConfig,
    RouterTls,
    ScalingConfig,
    ServiceConfig,
    Settings,
    TcpRouterConfig,
    UdpRouterConfig,
)
from .tls_options import check_tls_options
from .unavailable import check_unavailable
from .validate import Path, validate_block

# The blocks of compiler/keys.py (`providers` is a setting), and middlewares, whose keys are
# those of their kind's model.
TOP_LEVEL_BLOCKS = ("middlewares", *(path.removesuffix(".*") for path in TOP_LEVEL if path))


@dataclass
class Lowered:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    # Where each node's block is in the config tree, for diagnostics that point at one key.
    paths: dict[str, Path] = field(default_factory=dict)
    # Ids of blocks that are declared but failed validation: references to them are not
    # reported again as "unknown" (the block's own errors already say what is wrong).
    invalid: set[str] = field(default_factory=set)
    # Entrypoints that routers naming no entrypoint do not attach to (the admin `api` one).
    not_default: set[str] = field(default_factory=set)

    def add(self, node: Node, path: Path) -> None:
        self.nodes[node.id] = node
        self.paths[node.id] = path

    def link(self, src: str, dst: str, label: str) -> None:
        self.edges.append(Edge(src=src, dst=dst, label=label))


def lower(loaded: LoadedConfig, diags: Diagnostics) -> Lowered:
    tree, spans = loaded.tree, loaded.spans
    out = Lowered()
    _check_top_level(tree, spans, diags)
    check_unavailable(tree, spans, diags)
    out.settings = internal.with_dashboard_metrics(tree, settings_of(tree, spans, diags))
    entrypoints = _entrypoints(_blocks(tree, "entrypoints", spans, diags), spans, diags, out)
    _middlewares(_blocks(tree, "middlewares", spans, diags), spans, diags, out)
    _services(_blocks(tree, "services", spans, diags), spans, diags, out)
    api = internal.api_block(tree, spans, diags, out.settings.metrics)
    if api is not None:
        _api_entrypoint(api[0], spans, diags, out, entrypoints)
    _routers(tree, spans, diags, out, entrypoints)
    if api is not None:
        for name, body in api[1]:
            if f"router:{name}" in out.nodes:
                diags.error(
                    f"router '{name}' is declared by the api block; give this router another name",
                    spans.find(("routers", name)),
                )
                continue
            _router(name, body, ("api",), "router", RouterConfig, spans, diags, out, entrypoints)
    _acme_http_router(out, spans, diags, entrypoints)
    routers = [n for n in out.nodes.values() if n.kind == "router"]
    all_routers = [
        (n.name, n.config, list(n.attrs["entrypoints"]), out.paths[n.id])
        for n in out.nodes.values()
        if isinstance(n.config, RouterConfig | TcpRouterConfig)
    ]
    check_acme(out.settings, entrypoints, all_routers, spans, diags)
    check_tls_options(out.settings, entrypoints, all_routers, spans, diags)
    for node in internal.internal_service_nodes(
        routers, out.paths, spans, diags, out.invalid, out.settings.metrics
    ):
        out.add(node, ())
    return out


def _acme_http_router(
    out: Lowered, spans: SpanMap, diags: Diagnostics, entrypoints: dict[str, EntrypointConfig]
) -> None:
    """Traefik's `acme-http@internal`: the HTTP-01 challenge path answered on the resolvers'
    challenge entrypoints above every router, so a catch-all router or a redirect cannot shadow it."""
    names = sorted(
        {
            r.acme.http_challenge.entrypoint
            for r in out.settings.certificate_resolvers.values()
            if r.acme.http_challenge is not None and r.acme.http_challenge.entrypoint in entrypoints
        }
    )
    if names:
        body = {**internal.ACME_HTTP_ROUTER, "entrypoints": names}
        _router(internal.ACME_HTTP, body, (), "router", RouterConfig, spans, diags, out, entrypoints)


def _api_entrypoint(
    config: ApiConfig,
    spans: SpanMap,
    diags: Diagnostics,
    out: Lowered,
    entrypoints: dict[str, EntrypointConfig],
) -> None:
    name = internal.API_ENTRYPOINT
    if name in entrypoints or f"entrypoint:{name}" in out.invalid:
        diags.error(
            f"entrypoint '{name}' is declared by the api block; give this entrypoint another name",
            spans.find(("entrypoints", name)),
        )
        return
    entrypoint = internal.api_entrypoint(config)
    entrypoints[name] = entrypoint
    out.not_default.add(name)
    attrs = {"protocol": entrypoint.protocol}
    out.add(Node.build("entrypoint", name, entrypoint, attrs, spans.find(("api",))), ("api",))


# Gateway-wide settings are top-level attributes (`drain_timeout = "30s"`), by name or alias.
_SETTINGS_KEYS = frozenset(
    {f.alias or name for name, f in Settings.model_fields.items()} | set(Settings.model_fields)
)


def _check_top_level(tree: Mapping[str, Any], spans: SpanMap, diags: Diagnostics) -> None:
    for key in tree:
        if key not in TOP_LEVEL_BLOCKS and key not in _SETTINGS_KEYS:
            hint = did_you_mean(key, [*TOP_LEVEL_BLOCKS, *_SETTINGS_KEYS])
            if hint is None and isinstance(tree[key], dict):
                hint = 'gateway-wide settings are top-level attributes, e.g. drain_timeout = "30s"'
            diags.error(f"unknown top-level block or setting '{key}'", spans.find((key,)), hint=hint)


def _blocks(tree: Mapping[str, Any], key: str, spans: SpanMap, diags: Diagnostics) -> dict[str, Any]:
    value = tree.get(key, {})
    if not isinstance(value, dict):
        diags.error(f"'{key}' must be labeled blocks, e.g. {key} \"name\" {{ ... }}", spans.find((key,)))
        return {}
    return value


def settings_of(tree: Mapping[str, Any], spans: SpanMap, diags: Diagnostics) -> Settings:
    """The top-level settings of the merged tree, validated (their errors reported)."""
    # Unknown keys were reported by _check_top_level; reporting them again here would be noise.
    data = {k: v for k, v in tree.items() if k in _SETTINGS_KEYS}
    if isinstance(data.get("providers"), dict):
        data["providers"] = _provider_kinds(data["providers"], spans, diags)
    settings = validate_block(Settings, data, (), spans, diags, what="settings")
    return settings or Settings()


def _provider_kinds(block: dict[str, Any], spans: SpanMap, diags: Diagnostics) -> dict[str, Any]:
    """The `providers` block with each registered provider kind's block (`etcd { ... }`)
    validated by its kind's model and moved to `kinds` (stdlib/providers/)."""
    out = dict(block)
    if "kinds" in out:
        diags.error(
            "unknown key 'kinds' in providers",
            spans.find(("providers", "kinds")),
            hint="a provider is configured by its block: " + ", ".join(registry.names("provider")),
        )
        del out["kinds"]
    kinds: dict[str, Any] = {}
    for name in [key for key in out if registry.lookup("provider", key) is not None]:
        kind = registry.lookup("provider", name)
        assert kind is not None
        options = out.pop(name)
        path: Path = ("providers", name)
        config = validate_block(kind.config, options, path, spans, diags, what=f"provider '{name}'")
        if config is not None:
            # What was written, not the defaults as well: the provider validates this again when
            # it starts (runtime/providers.py), and a check that reads which keys were set
            # (model_fields_set) must see the same ones there.
            kinds[kind.name] = config.model_dump(mode="json", exclude_unset=True)
    if kinds:
        out["kinds"] = kinds
    return out


def _entrypoints(
    blocks: dict[str, Any], spans: SpanMap, diags: Diagnostics, out: Lowered
) -> dict[str, EntrypointConfig]:
    found: dict[str, EntrypointConfig] = {}
    for name, body in blocks.items():
        path: Path = ("entrypoints", name)
        config = validate_block(EntrypointConfig, body, path, spans, diags, what=f"entrypoint '{name}'")
        if config is None:
            out.invalid.add(f"entrypoint:{name}")
        else:
            _check_entrypoint_keys(config, path, spans, diags, f"entrypoint '{name}'")
            found[name] = config
            out.add(
                Node.build("entrypoint", name, config, {"protocol": config.protocol}, spans.find(path)), path
            )
    return found


def _middlewares(blocks: dict[str, Any], spans: SpanMap, diags: Diagnostics, out: Lowered) -> None:
    for name, body in blocks.items():
        path: Path = ("middlewares", name)
        what = f"middleware '{name}'"
        out.invalid.add(f"middleware:{name}")  # until it validates
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            diags.error(f'{what} needs a type, e.g. type = "rate-limit"', spans.find(path))
            continue
        type_name = body["type"]
        kind = registry.lookup("middleware", type_name)
        if kind is None:
            known = registry.names("middleware")
            hint = did_you_mean(type_name, known) or "known types: " + ", ".join(known)
            diags.error(
                f"{what}: unknown middleware type '{type_name}'", spans.find((*path, "type")), hint=hint
            )
            continue
        options = {k: v for k, v in body.items() if k != "type"}
        config = validate_block(kind.config, options, path, spans, diags, what=f"{what} ({kind.name})")
        if isinstance(config, ConfigModel):
            out.invalid.discard(f"middleware:{name}")
            attrs = {"type": kind.name, "protocols": sorted(kind.protocols)}
            out.add(Node.build("middleware", name, config, attrs, spans.find(path)), path)


def _services(blocks: dict[str, Any], spans: SpanMap, diags: Diagnostics, out: Lowered) -> None:
    for name, body in blocks.items():
        path: Path = ("services", name)
        what = f"service '{name}'"
        if internal.internal_name(name) is not None:
            diags.error(
                f"{what}: names ending in {internal.INTERNAL_SUFFIX} are the gateway's own services",
                spans.find(path),
                hint="choose another name",
            )
            out.invalid.add(f"service:{name}")
            continue
        body, references = _service_kind(body, path, spans, diags, what)
        body = _extract_kind_options(body, path, spans, diags, what)
        config = (
            validate_block(ServiceConfig, body, path, spans, diags, what=what) if body is not None else None
        )
        if config is None:
            out.invalid.add(f"service:{name}")
            continue
        protocol = _service_protocol(config)
        _check_protocol_keys(config, protocol, path, spans, diags, what)
        service_id = f"service:{name}"
        out.add(Node.build("service", name, config, {"protocol": protocol}, spans.find(path)), path)
        if config.kind is not None:
            # It sends requests to other services (whose proxies it uses): no proxy of its own.
            for target in sorted(set(references)):
                out.link(service_id, f"service:{target}", "routes")
            continue
        lb = config.load_balancer
        proxy = ProxyConfig(
            pass_host_header=lb.pass_host_header if lb else True,
            timeouts=config.timeouts,
            max_idle_connections=lb.max_idle_connections if lb else 64,
            max_connections=lb.max_connections if lb else None,
        )
        out.add(Node.build("proxy", name, proxy, {"service": name}, spans.find(path)), path)
        out.link(service_id, f"proxy:{name}", "proxy")
        # One scaler node per scaled unit: the service, or each revision that scales on its own.
        units: list[tuple[str, ScalingConfig, Path, dict[str, str]]] = []
        if config.revisions:
            for index, revision in enumerate(config.revisions):
                if revision.scaling is not None:
                    rpath: Path = (*path, "revisions", index)
                    units.append(
                        (f"{name}/{revision.name}", revision.scaling, rpath, {"revision": revision.name})
                    )
        elif config.scaling is not None:
            units.append((name, config.scaling, (*path, "scaling"), {}))
        for unit, scaling, spath, extra in units:
            attrs = {"service": name, "executor": scaling.executor, **extra}
            out.add(Node.build("scaler", unit, scaling, attrs, spans.find(spath)), spath)
            out.link(service_id, f"scaler:{unit}", "scaler")
        if config.mirror is not None:
            out.link(service_id, f"service:{config.mirror.service}", "mirror")
        if config.failover is not None:
            out.link(service_id, f"service:{config.failover.service}", "failover")


# What a service of a kind (`model_router { ... }`) cannot have: it has no servers of its own.
_POOL_KEYS = ("load_balancer", "revisions", "scaling", "rollout", "mirror", "failover")


def _service_kind(
    body: Any, path: Path, spans: SpanMap, diags: Diagnostics, what: str
) -> tuple[Any, list[str]]:
    """The body with a service kind's block (`model_router { ... }`) validated by the kind's
    model and moved to `kind` / `kind_options`, and the services it names; (None, []) when it
    is invalid (reported here, each problem at its key)."""
    if not isinstance(body, dict):
        return body, []
    for key in ("kind", "kind_options"):
        if key in body:
            kinds = ", ".join(registry.names("service"))
            diags.error(
                f"unknown key '{key}' in {what}",
                spans.find((*path, key)),
                hint=f"a service kind is chosen by writing its block ({kinds})",
            )
            return None, []
    chosen = [key for key in body if registry.lookup("service", key) is not None]
    if not chosen:
        return body, []
    name = chosen[0]
    errors = [
        (f"{what} is a {name} service and cannot also be a {other} service", (*path, other))
        for other in chosen[1:]
    ]
    errors += [
        (f"{what}: a {name} service sends requests to other services; it takes no {key}", (*path, key))
        for key in _POOL_KEYS
        if key in body
    ]
    for message, at in errors:
        diags.error(message, spans.find(at))
    kind = registry.lookup("service", name)
    assert kind is not None
    config = validate_block(kind.config, body[name], (*path, name), spans, diags, what=f"{what}: {name}")
    if config is None or errors:
        return None, []
    problems: list[tuple[Path, str]] = getattr(config, "problems", list)()
    for at, message in problems:
        diags.error(f"{what}: {message}", spans.find((*path, name, *at)))
    if problems:
        return None, []
    references: list[tuple[Path, str]] = getattr(config, "service_references", list)()
    rest = {k: v for k, v in body.items() if k != name}
    options = config.model_dump(mode="json", by_alias=True)
    return {**rest, "kind": kind.name, "kind_options": options}, [target for _, target in references]


def _extract_kind_options(body: Any, path: Path, spans: SpanMap, diags: Diagnostics, what: str) -> Any:
    """Validate the blocks named after a chosen kind, by that kind's model.

    `scaling { executor = "process"; process { ... } }` and
    `load_balancer { strategy = "ewma"; ewma { decay = "5s" } }`: the inner block belongs to the
    kind, so its keys are checked against the model the kind registered.
    """
    if not isinstance(body, dict):
        return body
    body = dict(body)
    sections: tuple[tuple[str, registry.Category, str, str, str], ...] = (
        ("scaling", "executor", "executor", "static", "executor_options"),
        ("load_balancer", "balancer", "strategy", "round-robin", "strategy_options"),
    )
    for block, category, selector, default, options_key in sections:
        if isinstance(body.get(block), dict):
            body[block] = _kind_block(
                dict(body[block]),
                category,
                selector,
                default,
                options_key,
                (*path, block),
                spans,
                diags,
                what,
            )
    if isinstance(body.get("revisions"), list):
        body["revisions"] = _revision_scaling(body, path, spans, diags, what)
    return body


def _revision_scaling(
    body: dict[str, Any], path: Path, spans: SpanMap, diags: Diagnostics, what: str
) -> list[Any]:
    """Each scaled revision's `scaling`: the service's block, overridden key by key by the revision's.

    A revision scales only when it says so with a `scaling` object of its own (`scaling = {}`
    takes the service's block as it is). Inheriting silently would be wrong for most executors:
    the service's webhook, Deployment or command makes *one* set of replicas, and two revisions
    driving it would fight over its size and share its replicas. `revisions = [{ name = "v2",
    scaling = { process = { command = "..." } } }]` keeps the service's autoscaling knobs and
    changes only how v2's replicas are made: its executor block is merged key by key over the
    service's validated executor options, so v2 keeps the service's `health_path`. A revision
    naming another `executor` inherits none of the service's executor options.

    The service's block has been validated by then, and only a valid one is inherited: its
    errors are reported once, where they are written, not again in every revision built on it.
    Over an invalid one a revision keeps only the name of its executor (so the checks still
    know whether it makes replicas), and its own keys are checked once the block is fixed.
    """
    template = body.get("scaling")
    if template is None:
        template = {}
    elif not _valid_scaling(template):
        return [_executor_only(revision, template) for revision in body["revisions"]]
    executors = set(registry.names("executor"))
    revisions: list[Any] = []
    for index, revision in enumerate(body["revisions"]):
        own = revision.get("scaling") if isinstance(revision, dict) else None
        if not isinstance(own, dict):  # not scaled (or not an object: the model reports it)
            revisions.append(revision)
            continue
        merged = {k: v for k, v in template.items() if k != "executor_options"}
        merged.update({k: v for k, v in own.items() if k not in executors})
        kind = registry.lookup("executor", str(merged.get("executor", "static")))
        if kind is not None:
            inherited = template.get("executor_options", {}) if kind.name == template.get("executor") else {}
            block = next((k for k in own if k in executors), kind.name)
            merged[block] = {**inherited, **own.get(block, {})}
        spath: Path = (*path, "revisions", index, "scaling")
        rwhat = f"{what}, revision '{revision.get('name', index)}'"
        section = _kind_block(
            merged, "executor", "executor", "static", "executor_options", spath, spans, diags, rwhat
        )
        revisions.append({**revision, "scaling": section})
    return revisions


def _valid_scaling(section: dict[str, Any]) -> bool:
    """Whether a `scaling` section, its executor block already validated, is valid as a whole."""
    if "executor_options" not in section:  # its executor or executor block was refused
        return False
    try:
        ScalingConfig.model_validate(section)
    except ValidationError:
        return False
    return True


def _executor_only(revision: Any, template: dict[str, Any]) -> Any:
    own = revision.get("scaling") if isinstance(revision, dict) else None
    if not isinstance(own, dict):
        return revision
    return {**revision, "scaling": {"executor": own.get("executor", template.get("executor", "static"))}}


def _kind_block(
    section: dict[str, Any],
    category: registry.Category,
    selector: str,
    default: str,
    options_key: str,
    spath: Path,
    spans: SpanMap,
    diags: Diagnostics,
    what: str,
) -> dict[str, Any]:
    chosen = section.get(selector, default)
    known = registry.names(category)
    kind = registry.lookup(category, chosen) if isinstance(chosen, str) else None
    if kind is None and category == "executor":
        hint = did_you_mean(str(chosen), known) or f"known {category}s: " + ", ".join(known)
        diags.error(f"{what}: unknown {category} '{chosen}'", spans.find((*spath, selector)), hint=hint)
    # Unknown strategies are reported by check.py with the other load-balancer checks.
    blocks = {k: section.pop(k) for k in list(section) if k in known}
    names = (kind.name, *kind.aliases) if kind is not None else ()
    for block_name in blocks:
        if block_name not in names:
            diags.error(
                f"{what}: a '{block_name}' block configures {category} '{block_name}', but {selector} is '{chosen}'",
                spans.find((*spath, block_name)),
            )
    if kind is not None:
        used = next((n for n in blocks if n in names), None)
        options: dict[str, Any] = blocks[used] if used is not None else {}
        opath: Path = (*spath, used or kind.name)
        validated = validate_block(
            kind.config, options, opath, spans, diags, what=f"{what}: {category} '{chosen}'"
        )
        if validated is not None:
            if category == "executor":
                section[selector] = kind.name
            section[options_key] = validated.model_dump(mode="json")
    return section


def _service_protocol(config: ServiceConfig) -> str:
    servers = list(config.load_balancer.servers if config.load_balancer else [])
    for revision in config.revisions:
        servers.extend(revision.servers)
    return "tcp" if servers and all(s.address is not None for s in servers) else "http"


def _routers(
    tree: Mapping[str, Any],
    spans: SpanMap,
    diags: Diagnostics,
    out: Lowered,
    entrypoints: dict[str, EntrypointConfig],
) -> None:
    for name, body in _blocks(tree, "routers", spans, diags).items():
        path: Path = ("routers", name)
        explicit = body.get("entrypoints") if isinstance(body, dict) else None
        protocols = {
            entrypoints[e].protocol for e in explicit or [] if isinstance(e, str) and e in entrypoints
        }
        if protocols == {"tcp"}:
            _router(name, body, path, "tcp_router", TcpRouterConfig, spans, diags, out, entrypoints)
        else:
            _router(name, body, path, "router", RouterConfig, spans, diags, out, entrypoints)
    for name, body in _blocks(tree, "tcp_routers", spans, diags).items():
        _router(
            name, body, ("tcp_routers", name), "tcp_router", TcpRouterConfig, spans, diags, out, entrypoints
        )
    for name, body in _blocks(tree, "udp_routers", spans, diags).items():
        _router(
            name, body, ("udp_routers", name), "udp_router", UdpRouterConfig, spans, diags, out, entrypoints
        )


_PROTOCOL_OF: dict[str, str] = {"router": "http", "tcp_router": "tcp", "udp_router": "udp"}


def _router(
    name: str,
    body: Any,
    path: Path,
    kind: NodeKind,
    model: type[RouterConfig] | type[TcpRouterConfig] | type[UdpRouterConfig],
    spans: SpanMap,
    diags: Diagnostics,
    out: Lowered,
    entrypoints: dict[str, EntrypointConfig],
) -> None:
    label = {"router": "router", "tcp_router": "TCP router", "udp_router": "UDP router"}[kind]
    what = f"{label} '{name}'"
    config = validate_block(model, body, path, spans, diags, what=what)
    if config is None:
        return
    protocol = _PROTOCOL_OF[kind]
    node_id = f"{kind}:{name}"
    attrs: dict[str, Any] = {}
    if not isinstance(config, UdpRouterConfig):
        rule_text = _compile_rule(
            config.rule, "tcp" if kind == "tcp_router" else "http", path, spans, diags, what
        )
        attrs["rule"] = rule_text if rule_text is not None else config.rule
        attrs["priority"] = config.priority if config.priority is not None else default_priority(config.rule)
    # Entrypoints: explicit ones must exist and speak the router's protocol; none = all of that protocol.
    chosen: list[str] = []
    for index, ep in enumerate(config.entrypoints):
        ep_span = spans.find((*path, "entrypoints", index))
        if f"entrypoint:{ep}" in out.invalid:
            continue
        if ep not in entrypoints:
            hint = did_you_mean(ep, entrypoints) or _known("entrypoints", entrypoints)
            diags.error(f"{what} uses unknown entrypoint '{ep}'", ep_span, hint=hint)
        elif entrypoints[ep].protocol != protocol:
            diags.error(
                f"{what} is an {protocol.upper()} router but entrypoint '{ep}' has protocol "
                f"'{entrypoints[ep].protocol}'",
                ep_span,
                hint=f"use {_block_for(entrypoints[ep].protocol)} for {entrypoints[ep].protocol} entrypoints",
            )
        else:
            chosen.append(ep)
    if not config.entrypoints:
        chosen = sorted(
            n for n, e in entrypoints.items() if e.protocol == protocol and n not in out.not_default
        )
    attrs["entrypoints"] = chosen
    if isinstance(config, RouterConfig) and config.tls not in (None, False) and not _resolver_tls(config):
        diags.error(
            f"{what}: tls {{ passthrough }} applies to TCP routers",
            spans.find((*path, "tls")),
            hint="an HTTP router is served with TLS by its entrypoint's tls block",
        )
    if isinstance(config, TcpRouterConfig):
        _check_tcp_router(config, chosen, entrypoints, path, spans, diags, what)
    out.add(Node.build(kind, name, config, attrs, spans.find(path)), path)
    for ep in chosen:
        out.link(node_id, f"entrypoint:{ep}", "entrypoint")
    for index, mw in enumerate(getattr(config, "middlewares", [])):
        out.link(node_id, f"middleware:{mw}", f"middleware[{index}]")
    out.link(node_id, f"service:{config.service}", "service")


def _resolver_tls(config: RouterConfig) -> bool:
    """An HTTP router's `tls { cert_resolver = ..., options = ... }` (what it may set: its
    entrypoint terminates)."""
    tls = config.tls
    return (
        isinstance(tls, RouterTls)
        and not tls.passthrough
        and (tls.cert_resolver is not None or tls.options is not None)
    )


def _check_tcp_router(
    config: TcpRouterConfig,
    chosen: list[str],
    entrypoints: Mapping[str, EntrypointConfig],
    path: Path,
    spans: SpanMap,
    diags: Diagnostics,
    what: str,
) -> None:
    """Traefik's TCP router rules: a server name exists only in a TLS ClientHello, so HostSNI
    other than `*` needs `tls`; terminating TLS needs certificates on the entrypoint."""
    parsed = parse_rule(config.rule, "tcp")
    if config.tls is None and parsed.ast is not None:
        names = [m for m in iter_matchers(parsed.ast) if m.name in ("HostSNI", "HostSNIRegexp", "ALPN")]
        if any(m.args != ("*",) for m in names):
            diags.error(
                f"{what}: its rule reads the TLS ClientHello (HostSNI, HostSNIRegexp, ALPN) but the "
                "router has no tls block",
                spans.find((*path, "rule")),
                hint="add tls { passthrough = true } to forward the TLS bytes, or tls {} to terminate "
                "TLS; without tls only HostSNI(`*`) matches (plaintext connections)",
            )
    if config.tls is not None and not config.tls.passthrough:
        for ep in chosen:
            if entrypoints[ep].tls is None:
                diags.error(
                    f"{what} terminates TLS but entrypoint '{ep}' has no tls block with certificates",
                    spans.find((*path, "tls")),
                    hint="give the entrypoint tls { cert_file = ..., key_file = ... }, or use "
                    "tls { passthrough = true }",
                )


def _check_protocol_keys(
    config: ServiceConfig, protocol: str, path: Path, spans: SpanMap, diags: Diagnostics, what: str
) -> None:
    """A key marked for the other protocol's services (HTTP_ONLY, TCP_ONLY in compiler/schema.py)
    is an error, not a no-op."""
    for at, protocols in _protocol_keys(config):
        if protocol not in protocols:
            diags.error(
                f"{what}: '{at[-1]}' applies to {protocols[0].upper()} services only",
                spans.find((*path, *at)),
                hint="a service whose servers are given by address is a TCP service, by url an HTTP one",
            )


def _check_entrypoint_keys(
    config: EntrypointConfig, path: Path, spans: SpanMap, diags: Diagnostics, what: str
) -> None:
    """An entrypoint key marked for other protocols (a TCP or UDP entrypoint given the HTTP
    limits, a UDP one given timeouts) is an error, not a no-op."""
    for at, protocols in _protocol_keys(config):
        if config.protocol not in protocols:
            diags.error(
                f"{what}: '{'.'.join(map(str, at))}' does not apply to {config.protocol.upper()} entrypoints",
                spans.find((*path, *at)),
                hint="UDP sessions end after udp_session_timeout_secs"
                if config.protocol == "udp" and at[0] == "timeouts"
                else f"it acts on {' and '.join(p.upper() for p in protocols)} entrypoints only",
            )


def _protocol_keys(model: BaseModel, at: Path = ()) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """The keys set in `model`, at any depth, that are marked for some protocols only (`only_for`
    in compiler/model.py), with those protocols."""
    for name, info in type(model).model_fields.items():
        if name not in model.model_fields_set:
            continue
        extra = info.json_schema_extra
        only = extra.get("protocols") if isinstance(extra, dict) else None
        value = getattr(model, name)
        if isinstance(only, tuple):
            yield (*at, info.alias or name), only
        elif isinstance(value, BaseModel):
            yield from _protocol_keys(value, (*at, info.alias or name))


def _block_for(protocol: str) -> str:
    return {"http": "routers", "tcp": "tcp_routers (or routers with HostSNI rules)", "udp": "udp_routers"}[
        protocol
    ]


def _known(what: str, names: Mapping[str, Any]) -> str:
    return f"known {what}: " + (", ".join(sorted(names)) or "none")


def _compile_rule(
    text: str, kind: str, path: Path, spans: SpanMap, diags: Diagnostics, what: str
) -> str | None:
    parsed = parse_rule(text, kind)  # type: ignore[arg-type]
    base = spans.value_span((*path, "rule")) or spans.find((*path, "rule"))
    for problem in parsed.problems:
        # +1: the column inside the rule is relative to the opening quote of the HCL string.
        span = base.shifted(problem.col) if base is not None else None
        if problem.severity == "warning":
            diags.warning(f"{what}: rule: {problem.message}", span, hint=problem.hint, code="rule")
        else:
            diags.error(f"{what}: invalid rule: {problem.message}", span, hint=problem.hint, code="rule")
    return _canonical_text(text, kind) if parsed.ok and parsed.ast is not None else None


@functools.lru_cache(maxsize=1 << 14)
def _canonical_text(text: str, kind: str) -> str:
    """The canonical text of a rule that parses, once per rule text: a reload of 10,000
    routers would print the same rules again (their parses are cached: parse_rule)."""
    ast = parse_rule(text, kind).ast  # type: ignore[arg-type]
    assert ast is not None
    return to_text(ast)
