"""An LLM API request as the model router sees it: its API, its body, its `model` field.

- `client_api(path)`: which API the client speaks, from the path it calls. Anthropic's
  endpoints are `/v1/messages` and `/v1/messages/count_tokens`; everything else (chat
  completions, completions, embeddings) is OpenAI's.
- `read_body(request, limit)`: the whole request body, refused past `limit` (413) without
  reading further than that.
- `find_model(text)`: the top-level `model` value of a JSON object body and where it is, so that
  renaming the model changes those bytes only and a body whose model is kept is forwarded
  byte for byte. Duplicate keys resolve as `json.loads` does (the last wins).
- `error_response(api, status, message)`: an error body in the client's own format, which its
  SDK parses (OpenAI: `{"error": {"message", "type", "param", "code"}}`; Anthropic:
  `{"type": "error", "error": {"type", "message"}}`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

from ...runtime.api import Request, Response
from ...runtime.errors import PayloadTooLarge

__all__ = ["Api", "client_api", "error_response", "find_model", "read_body", "with_model"]

Api = Literal["openai", "anthropic"]

_WS = re.compile(r"[ \t\n\r]*")
# The C scanners json.loads runs on, one string or one value at a time (typeshed omits them).
scanstring: Callable[[str, int], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009
_scan_value: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009


def client_api(path: str) -> Api:
    """The API a client speaks, by the endpoint it calls."""
    return "anthropic" if path.endswith(("/messages", "/messages/count_tokens")) else "openai"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body in full; PayloadTooLarge past `limit` bytes (never reading beyond it)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
    if not request.has_body:
        return b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.body:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class NotAJsonObject(ValueError):
    """The body is not one JSON object."""


def find_model(text: str) -> tuple[Any, int, int] | None:
    """(the top-level `model` value, its start, its end) in a JSON object text, or None when it
    has no `model`. NotAJsonObject when `text` is not exactly one JSON object."""
    try:
        return _walk(text)
    except (StopIteration, ValueError, IndexError) as exc:
        if isinstance(exc, NotAJsonObject):
            raise
        raise NotAJsonObject("the request body is not valid JSON") from None


def _walk(text: str) -> tuple[Any, int, int] | None:
    i = _ws(text, 0)
    if text[i : i + 1] != "{":
        json.loads(text)  # the error path only: say "not valid JSON" when it is not
        raise NotAJsonObject("the request body is not a JSON object")
    found = None
    i = _ws(text, i + 1)
    if text[i : i + 1] == "}":
        i += 1
    else:
        while True:
            if text[i : i + 1] != '"':
                raise ValueError
            key, i = scanstring(text, i + 1)
            i = _ws(text, i)
            if text[i : i + 1] != ":":
                raise ValueError
            start = _ws(text, i + 1)
            value, i = _scan_value(text, start)
            if key == "model":
                found = (value, start, i)
            i = _ws(text, i)
            separator = text[i : i + 1]
            i = _ws(text, i + 1)
            if separator == "}":
                break
            if separator != ",":
                raise ValueError
    if _ws(text, i) != len(text):
        raise ValueError
    return found


def _ws(text: str, i: int) -> int:
    return _WS.match(text, i).end()  # type: ignore[union-attr]  # `*` always matches


def with_model(text: str, span: tuple[int, int] | None, model: str) -> bytes:
    """The JSON object `text` with its `model` value (at `span`) replaced by the string `model`;
    without a span, `model` is added as the object's first member."""
    value = json.dumps(model, ensure_ascii=False)
    if span is not None:
        return (text[: span[0]] + value + text[span[1] :]).encode()
    brace = text.index("{") + 1
    rest = text[brace:]
    separator = "" if rest.lstrip().startswith("}") else ","
    return (text[:brace] + '"model":' + value + separator + rest).encode()


_OPENAI_TYPES = {400: "invalid_request_error", 413: "invalid_request_error", 429: "requests"}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_response(
    api: Api,
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """An error the client's SDK reads as one of its own API's errors."""
    payload: dict[str, Any]
    if api == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        payload = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        code = "rate_limit_exceeded" if status == 429 else code
        payload = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Response.json(status, payload, headers)
