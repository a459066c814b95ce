"""The active configuration and the IR, with every secret redacted.

Redaction is the IR's own (`compiler/model.py: redacted_dump`), the one `compile --emit ir`
uses: fields a kind marks `SECRET` (basic-auth users, JWT secrets, API keys, Redis URLs) and the
credential-named entries of free-form maps marked `SECRET_ENTRIES` (a header set to a bearer
token, an executor's environment variable) become `<redacted:hash>`, so a changed secret still
shows in a diff.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...compiler.internal import is_internal
from ...compiler.model import redacted_dump
from ...compiler.render import to_dot

if TYPE_CHECKING:
    from ..graph import LiveGraph
    from .host import AdminHost

_SECTIONS = {
    "entrypoint": "entrypoints",
    "router": "routers",
    "tcp_router": "tcp_routers",
    "udp_router": "udp_routers",
    "middleware": "middlewares",
    "service": "services",
}


def active_config(graph: LiveGraph, _host: AdminHost | None = None) -> dict[str, Any]:
    """The configuration the generation runs, by section and name (internal services left out)."""
    ir = graph.ir
    out: dict[str, Any] = {"generation": graph.generation, "sources": list(ir.sources)}
    out["settings"] = redacted_dump(ir.settings)
    for node in ir.nodes:
        section = _SECTIONS.get(node.kind)
        if section is None or is_internal(node):
            continue
        body = redacted_dump(node.config)
        if node.kind == "middleware":
            body = {"type": node.attrs.get("type"), **body}
        out.setdefault(section, {})[node.name] = body
    return out


def graph_json(graph: LiveGraph) -> Any:
    doc = json.loads(graph.ir.to_json())
    doc["generation"] = graph.generation
    return doc


def graph_dot(graph: LiveGraph) -> str:
    return to_dot(graph.ir)
