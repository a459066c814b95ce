"""The active configuration and the IR, with every secret redacted.

Two nets. Fields a kind marks `SECRET` (basic-auth users, JWT secrets, API keys, Redis URLs)
are replaced by `<redacted:hash>` by the IR's own dump, so a changed secret still shows in a
diff. Then any string under a key whose name says it holds a secret (password, token, secret,
`*_key`, authorization, cookie ...) is replaced too, for options a kind did not mark, such as a
header set to a bearer token or an environment variable of an executor.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...compiler.model import redacted_dump
from ...compiler.render import to_dot

if TYPE_CHECKING:
    from ..graph import LiveGraph
    from .host import AdminHost

REDACTED = "<redacted>"
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "authorization", "cookie", "htpasswd")
_SECRET_NAMES = frozenset({"users", "keys", "key", "apikey", "api_key", "private_key", "x-api-key"})
_NOT_SECRET_ENDINGS = ("_file", "_path", "_header", "_name", "_source")

_SECTIONS = {
    "entrypoint": "entrypoints",
    "router": "routers",
    "tcp_router": "tcp_routers",
    "udp_router": "udp_routers",
    "middleware": "middlewares",
    "service": "services",
}


def looks_secret(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    if lowered.endswith(_NOT_SECRET_ENDINGS):
        return False
    return (
        lowered in _SECRET_NAMES
        or lowered.endswith(("_key", "_keys", "apikey"))
        or any(word in lowered for word in _SECRET_WORDS)
    )


def redact(value: Any, key: str = "") -> Any:
    """`value` with every string (or list of strings) under a secret-looking key replaced."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if key and looks_secret(key) and _holds_text(value):
        return value if str(value).startswith("<redacted") else REDACTED
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _holds_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and any(isinstance(v, str) for v in value)


def active_config(graph: LiveGraph, _host: AdminHost | None = None) -> dict[str, Any]:
    """The configuration the generation runs, by section and name (internal services left out)."""
    ir = graph.ir
    out: dict[str, Any] = {"generation": graph.generation, "sources": list(ir.sources)}
    out["settings"] = redact(redacted_dump(ir.settings))
    for node in ir.nodes:
        section = _SECTIONS.get(node.kind)
        if section is None or ("internal" in node.attrs and node.kind == "service"):
            continue
        body = redact(redacted_dump(node.config))
        if node.kind == "middleware":
            body = {"type": node.attrs.get("type"), **body}
        out.setdefault(section, {})[node.name] = body
    return out


def graph_json(graph: LiveGraph) -> Any:
    doc = json.loads(graph.ir.to_json())
    for node in doc["nodes"]:
        node["config"] = redact(node["config"])
    doc["generation"] = graph.generation
    return doc


def graph_dot(graph: LiveGraph) -> str:
    return to_dot(graph.ir)
