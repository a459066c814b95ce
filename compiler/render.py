"""Graphviz DOT of the IR: entrypoints → routers → middleware chain → service → scaler → backends.

Deterministic output (sorted), so it can be diffed in CI and rendered with `dot -Tsvg`. When some
nodes came from a provider (`api@etcd`, docs/providers.md), every node's label says which
(`from etcd`, `from file`).
"""

from __future__ import annotations

import itertools

from .fragment import FILE_PROVIDER, provider_of
from .internal import is_internal
from .ir import IRGraph, Node
from .schema import ServiceConfig

_STYLE = {
    "entrypoint": 'shape=cds, style=filled, fillcolor="#dbeafe"',
    "router": 'shape=box, style="rounded,filled", fillcolor="#fef3c7"',
    "tcp_router": 'shape=box, style="rounded,filled", fillcolor="#fde68a"',
    "udp_router": 'shape=box, style="rounded,filled", fillcolor="#fde68a"',
    "middleware": 'shape=box, style=filled, fillcolor="#ede9fe"',
    "service": 'shape=box3d, style=filled, fillcolor="#dcfce7"',
    "scaler": 'shape=hexagon, style=filled, fillcolor="#fee2e2"',
    "internal": 'shape=box3d, style=filled, fillcolor="#e0f2fe"',
    "backend": 'shape=ellipse, style=filled, fillcolor="#f3f4f6"',
}


def _q(text: str) -> str:
    """A DOT string: backslashes and quotes escaped, then each newline as DOT's `\\n` line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def _label(node: Node) -> str:
    if node.kind in ("router", "tcp_router"):
        return f"{node.kind.replace('_', ' ')}: {node.name}\n{node.attrs.get('rule', '')}\npriority {node.attrs.get('priority')}"
    if node.kind == "middleware":
        return f"middleware: {node.name}\n({node.attrs.get('type')})"
    if node.kind == "entrypoint":
        return f"entrypoint: {node.name}\n{getattr(node.config, 'address', '')}"
    if is_internal(node):
        return f"service: {node.name}\n(built in)"
    if node.kind == "scaler":
        return f"scaler: {node.name}\nexecutor {node.attrs.get('executor')}"
    return f"{node.kind}: {node.name}"


def _provider(node: Node) -> str:
    if is_internal(node):
        return "built in"
    return provider_of(str(node.attrs.get("service", node.name)) if node.kind == "scaler" else node.name)


def to_dot(graph: IRGraph) -> str:
    lines = ["digraph a3s_gateway {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    providers = {_provider(n) for n in graph.nodes} - {"built in"}
    for node in sorted(graph.nodes, key=lambda n: n.id):
        if node.kind == "proxy":
            continue  # the proxy is an implementation detail of its service
        style = _STYLE["internal"] if is_internal(node) else _STYLE.get(node.kind, "")
        label = _label(node)
        if providers - {FILE_PROVIDER} and not is_internal(node):
            label += f"\nfrom {_provider(node)}"
        lines.append(f"  {_q(node.id)} [label={_q(label)}, {style}];")
    edges: list[str] = []
    for node in sorted(graph.nodes, key=lambda n: n.id):
        if node.kind in ("router", "tcp_router", "udp_router"):
            edges.extend(_router_edges(graph, node))
        elif node.kind == "service" and not is_internal(node):
            edges.extend(_service_edges(graph, node, lines))
    lines.extend(sorted(set(edges)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _router_edges(graph: IRGraph, router: Node) -> list[str]:
    out = [f"  {_q('entrypoint:' + ep)} -> {_q(router.id)};" for ep in router.attrs.get("entrypoints", [])]
    chain = [router.id] + [f"middleware:{m}" for m in getattr(router.config, "middlewares", [])]
    chain.append(f"service:{getattr(router.config, 'service', '')}")
    for index, (src, dst) in enumerate(itertools.pairwise(chain)):
        out.append(f"  {_q(src)} -> {_q(dst)} [label={_q(str(index + 1))}, color={_q('#6b7280')}];")
    return out


def _service_edges(graph: IRGraph, service: Node, lines: list[str]) -> list[str]:
    config = service.config
    assert isinstance(config, ServiceConfig)
    out: list[str] = []
    # The service's scaler (key "") or each scaled revision's, by revision name.
    scalers = {
        str(n.attrs.get("revision", "")): n.id
        for n in graph.by_kind("scaler")
        if n.attrs.get("service") == service.name
    }
    for scaler_id in scalers.values():
        out.append(f"  {_q(service.id)} -> {_q(scaler_id)};")
    backends: list[tuple[str, str]] = []
    if config.load_balancer is not None:
        backends += [("", s.url or s.address or "") for s in config.load_balancer.servers]
    for revision in config.revisions:
        backends += [(revision.name, s.url or s.address or "") for s in revision.servers]
    for revision_name, target in backends:
        backend_id = f"backend:{service.name}:{target}"
        lines.append(f"  {_q(backend_id)} [label={_q(target)}, {_STYLE['backend']}];")
        label = f" [label={_q(revision_name)}]" if revision_name else ""
        source = scalers.get(revision_name, service.id)
        out.append(f"  {_q(source)} -> {_q(backend_id)}{label};")
    if config.mirror is not None:
        out.append(
            f"  {_q(service.id)} -> {_q('service:' + config.mirror.service)} "
            f"[label={_q(f'mirror {config.mirror.percentage:g}%')}, style=dashed];"
        )
    if config.failover is not None:
        out.append(
            f"  {_q(service.id)} -> {_q('service:' + config.failover.service)} "
            f"[label={_q('failover')}, style=dotted];"
        )
    return out
