"""POST /api/gateway/reload: re-read the configuration files, as SIGHUP does.

    200 {"status": "reloaded", "generation": N, "changes": {...}}
    400 the request body is not empty and not a JSON object with known keys
    422 the configuration does not compile: the same diagnostics as `compile --check --format
        json`, each with file, line, col and message; the running graph keeps serving
    409 the gateway is not running (starting, stopping): it cannot reload now
    503 no gateway behind this graph (a graph built by a tool, not served)

The body may be empty or `{}`: the request names no file, it reloads the files the gateway
runs (a configuration that arrives over HTTP would be a provider, not a reload).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ...compiler import CompileError, render_json
from ..api import Request, Response
from ..lifecycle import LifecycleError
from .host import AdminHost
from .responses import error, json_response

if TYPE_CHECKING:
    from ..graph import LiveGraph

MAX_BODY = 64 * 1024
_KNOWN_KEYS: frozenset[str] = frozenset()


async def reload(graph: LiveGraph, host: AdminHost | None, request: Request) -> Response:
    problem = await _body_problem(request)
    if problem is not None:
        return error(400, "bad_request", problem)
    if host is None:
        return error(503, "unavailable", "this graph is not served by a gateway that can reload")
    try:
        plan = await host.reload_all()
    except CompileError as exc:
        report = json.loads(render_json(exc.diagnostics))
        return json_response(422, {"status": "rejected", **report})
    except LifecycleError as exc:
        return error(409, "conflict", f"cannot reload now: {exc}")
    except Exception as exc:  # a port in use, a certificate that does not load...
        return error(500, "reload_failed", f"reload failed, the running configuration keeps serving: {exc}")
    generation = host.health().get("generation")
    changes = {"added": plan.added, "removed": plan.removed, "changed": plan.changed}
    return json_response(200, {"status": "reloaded", "generation": generation, "changes": changes})


async def _body_problem(request: Request) -> str | None:
    data = bytearray()
    async for chunk in request.body:
        data += chunk
        if len(data) > MAX_BODY:
            return f"request body over {MAX_BODY} bytes"
    if not data.strip():
        return None
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"request body is not JSON: {exc}"
    if not isinstance(payload, dict):
        return "request body must be a JSON object (or empty)"
    unknown = sorted(set(payload) - _KNOWN_KEYS)
    if unknown:
        return f"unknown key {unknown[0]!r} in request body: the reload takes no options"
    return None
