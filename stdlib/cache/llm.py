"""Which completions are cached and under which key.

A request to OpenAI's chat/completions or Anthropic's messages is keyed by its body in canonical
form (parsed JSON, keys sorted, no insignificant whitespace, `0.0` and `0` alike), the API,
the route (host and path), the model, the headers that change the answer (`anthropic-version`,
`anthropic-beta`) and the caller's scope, so two tenants never share an entry unless the
configuration says `llm_scope = "shared"`. Only deterministic requests (temperature 0) are
cached, unless `llm_sampled` opts into caching the others too (as LiteLLM does). The request body
is read up to a bound to build the key, and handed on whole (`chained`) either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from ...runtime.api import BodyStream, Request

__all__ = [
    "canonical_body",
    "completion_api",
    "completion_key",
    "deterministic",
    "scope_of",
    "stream_finished",
]


def completion_api(path: str) -> str | None:
    """ "openai" or "anthropic" for a completion endpoint's path, else None."""
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    return None


def canonical_body(body: bytes) -> tuple[str, dict[str, Any]] | None:
    """The body's canonical text and its parsed object, or None when it is not a JSON object."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(parsed, dict):
        return None
    text = json.dumps(_normal(parsed), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text, parsed


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def deterministic(body: dict[str, Any]) -> bool:
    """Temperature 0 sent explicitly: both APIs default to sampling (temperature 1)."""
    temperature = body.get("temperature")
    return isinstance(temperature, int | float) and not isinstance(temperature, bool) and temperature == 0


def scope_of(request: Request, scope: str) -> str | None:
    """Whose entries this request may see; None when the configured identity is missing
    (such a request is proxied uncached rather than put in a shared bucket)."""
    if scope == "shared":
        return ""
    if scope == "key":
        # Behind llm-keys the credential is gone from the request: the key it checked names the caller.
        checked = request.state.get("llm_key")
        if isinstance(checked, str):
            return "n:" + checked
        credential = request.headers.get("authorization") or request.headers.get("x-api-key")
        if credential is None:
            return None
        return "k:" + hashlib.sha256(credential.strip().encode()).hexdigest()
    kind, _, name = scope.partition(":")
    if kind == "header":
        value = request.headers.get(name)
        return None if value is None else "h:" + value
    claims = request.state.get("jwt_claims")
    if isinstance(claims, dict) and claims.get(name) is not None:
        return f"j:{claims[name]}"
    return None


def completion_key(api: str, request: Request, scope: str, canonical: str, body: dict[str, Any]) -> str:
    parts = [
        api,
        request.host,
        request.path,
        scope,
        str(body.get("model", "")),
        request.headers.get("anthropic-version") or "",
        request.headers.get_joined("anthropic-beta") or "",
        canonical,
    ]
    return "c:" + hashlib.blake2b("\0".join(parts).encode(), digest_size=20).hexdigest()


def stream_finished(api: str, events: list[bytes]) -> bool:
    """Whether a completion stream reached its own end (not just the connection's): OpenAI's
    `data: [DONE]`, Anthropic's `message_stop`. An error event anywhere means it did not."""
    if not events or any(e.startswith(b"event: error") or b'"error"' in e[:64] for e in events):
        return False
    last = events[-1]
    return b"[DONE]" in last if api == "openai" else b"message_stop" in last


async def read_up_to(body: BodyStream, limit: int) -> tuple[list[bytes], bool]:
    """The body's first chunks up to `limit` bytes, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return chunks, False
    return chunks, True


async def chained(head: list[bytes], rest: BodyStream | None) -> AsyncGenerator[bytes, None]:
    """The chunks already read, then (if the body was not read to its end) the rest of it."""
    for chunk in head:
        yield chunk
    if rest is not None:
        async for chunk in rest:
            yield chunk
