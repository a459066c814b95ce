"""The request's JSON body for the strategies that pick by it, read once per request.

The body is read whole (up to a bound: past it, 413, as `model_router` does) through the LLM
layer's reader, then put back as it came so the upstream receives every byte, and parsed once:
a second strategy, or a second attempt of a `model_router` fallback, finds it parsed in
`request.state`. A body that is not JSON parses to None: the strategy then has nothing to go
by, and balances by load.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...runtime.api import Request, iter_body
from ..llm.bodies import read_request_body

__all__ = ["json_body", "json_path", "parse_path", "parsed_body"]

_STATE_KEY = "balancer.json_body"
_MISSING = object()


async def json_body(request: Request, limit: int) -> Any:
    """The request's body parsed as JSON (None when it has none or it is not JSON)."""
    parsed = request.state.get(_STATE_KEY, _MISSING)
    if parsed is not _MISSING:
        return parsed
    data = await read_request_body(request, limit)
    if request.has_body:
        request.body = iter_body(data)
    try:
        parsed = json.loads(data) if data else None
    except (ValueError, RecursionError):
        parsed = None
    request.state[_STATE_KEY] = parsed
    return parsed


def parsed_body(request: Request) -> Any:
    """What `json_body` found for this request, or None when it has not been read."""
    return request.state.get(_STATE_KEY)


def parse_path(path: str) -> tuple[str | int, ...]:
    """`metadata.conversation_id` -> ("metadata", "conversation_id"); digits index arrays."""
    return tuple(int(part) if part.isdigit() else part for part in path.split("."))


def json_path(document: Any, path: Sequence[str | int]) -> Any:
    """The value at `path` in `document`, or None when any step is missing."""
    value = document
    for step in path:
        if isinstance(step, int) and isinstance(value, list):
            if step >= len(value):
                return None
            value = value[step]
        elif isinstance(value, dict):
            value = value.get(str(step))
        else:
            return None
    return value
