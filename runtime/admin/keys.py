"""/api/gateway/keys: the virtual keys of the `llm-keys` middlewares (stdlib/middlewares/llm_keys.py).

    GET    /api/gateway/keys          every key, without secrets or digests, with what it spent
    POST   /api/gateway/keys          {"name", "models", "rpm", "tpm", "budget", ...} -> 201 with
                                      the new key's secret, shown this once and never again
    DELETE /api/gateway/keys/{name}   revoke a key created here (config keys live in the config)

A middleware offers its keys through its `keys_admin` attribute (`KeyAdmin` below). With more
than one `llm-keys` middleware, `?middleware=<name>` says which; with one, it is the default.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote

from ..api import Request, Response
from .host import AdminHost
from .responses import error, json_response

if TYPE_CHECKING:
    from ..graph import LiveGraph

MAX_BODY = 64 * 1024
Answer = tuple[int, dict[str, Any]]


class KeyAdmin(Protocol):
    async def list_keys(self) -> Answer: ...

    async def create_key(self, body: dict[str, Any]) -> Answer: ...

    async def revoke_key(self, name: str) -> Answer: ...


def _admin(graph: LiveGraph, request: Request) -> KeyAdmin | Response:
    found: dict[str, KeyAdmin] = {}
    for name, middleware in graph.middlewares.items():
        offered: KeyAdmin | None = getattr(middleware, "keys_admin", None)
        if offered is not None:
            found[name] = offered
    wanted = parse_qs(request.query).get("middleware", [None])[-1]
    if wanted is not None:
        if wanted not in found:
            return error(404, "not_found", f"no llm-keys middleware {wanted!r}")
        return found[wanted]
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        return error(404, "not_found", "no llm-keys middleware in the configuration")
    return error(400, "bad_request", f"several llm-keys middlewares: add ?middleware= one of {sorted(found)}")


def _answer(answer: Answer) -> Response:
    return json_response(*answer)


async def keys(graph: LiveGraph, _host: AdminHost | None, request: Request) -> Response:
    admin = _admin(graph, request)
    if isinstance(admin, Response):
        return admin
    if request.method == "POST":
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        return _answer(await admin.create_key(body))
    return _answer(await admin.list_keys())


async def key(graph: LiveGraph, _host: AdminHost | None, request: Request, *, item: str) -> Response:
    admin = _admin(graph, request)
    if isinstance(admin, Response):
        return admin
    return _answer(await admin.revoke_key(unquote(item)))


async def _json_body(request: Request) -> dict[str, Any] | Response:
    data = bytearray()
    async for chunk in request.body:
        data += chunk
        if len(data) > MAX_BODY:
            return error(413, "payload_too_large", f"request body over {MAX_BODY} bytes")
    try:
        payload = json.loads(data or b"{}")
    except (UnicodeDecodeError, ValueError) as exc:
        return error(400, "bad_request", f"request body is not JSON: {exc}")
    if not isinstance(payload, dict):
        return error(400, "bad_request", "request body must be a JSON object")
    return payload
