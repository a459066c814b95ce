"""An LLM API request as the model router sees it: its body and its `model` field (which API
the client speaks is read from its path by stdlib/common/llm_usage.py's `api_format`, as
llm-keys reads it).

- `parse_object(data)`: the body as a JSON object (json.loads, one C call).
- `find_model(text)`: where the top-level `model` value is, so that renaming the model changes
  those bytes only (a body whose model is kept is forwarded byte for byte). Duplicate keys
  resolve as `json.loads` does (the last wins).
- `error_response(api, status, message)`: an error body in the client's own format, which its
  SDK parses (the shapes of stdlib/llm/errors.py), with headers (a 429's Retry-After).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from ...runtime.api import Response
from ..llm.exchange import Api
from ..llm.exchange import error_response as llm_error_response

__all__ = [
    "Api",
    "NotAJsonObject",
    "error_response",
    "find_model",
    "parse_object",
    "with_model",
]


_SPACE_CHARS = " \t\n\r"  # JSON's whitespace (RFC 8259 §2)
_SPACE = frozenset(_SPACE_CHARS)
# The C scanners json.loads runs on, one string or one value at a time (typeshed omits them).
scanstring: Callable[[str, int], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009
_scan_value: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009


class NotAJsonObject(ValueError):
    """The body is not one JSON object."""


def parse_object(data: bytes) -> tuple[dict[str, Any], str]:
    """The body as a JSON object, and its text; NotAJsonObject when it is not one.

    One C call (json.loads) on the common path: the text is walked for the model's place
    (`find_model`) only when the model is to be renamed."""
    try:
        text = data.decode()
        value = json.loads(text)
    except UnicodeDecodeError:
        raise NotAJsonObject("the request body is not UTF-8") from None
    except ValueError:
        raise NotAJsonObject("the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise NotAJsonObject("the request body is not a JSON object")
    return value, text


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
    # The top level only: each member's value is skipped by the C scanner in one call, and
    # whitespace by inline loops (JSON bodies have little of it; a call per gap would cost more).
    # Running off the end of a truncated text raises IndexError: the caller's "not valid JSON".
    i = 0
    while text[i] in _SPACE:
        i += 1
    if text[i] != "{":
        json.loads(text)  # the error path only: say "not valid JSON" when it is not
        raise NotAJsonObject("the request body is not a JSON object")
    i += 1
    while text[i] in _SPACE:
        i += 1
    found = None
    if text[i] == "}":
        i += 1
    else:
        while True:
            if text[i] != '"':
                raise ValueError
            key, i = scanstring(text, i + 1)
            while text[i] in _SPACE:
                i += 1
            if text[i] != ":":
                raise ValueError
            i += 1
            while text[i] in _SPACE:
                i += 1
            start = i
            value, i = _scan_value(text, start)
            if key == "model":
                found = (value, start, i)
            while text[i] in _SPACE:
                i += 1
            separator = text[i]
            i += 1
            if separator == "}":
                break
            if separator != ",":
                raise ValueError
            while text[i] in _SPACE:
                i += 1
    if text[i:].strip(_SPACE_CHARS):
        raise ValueError
    return found


# Upstream model names as JSON strings: a handful per configuration, encoded once.
_ENCODED: dict[str, str] = {}


def with_model(text: str, span: tuple[int, int] | None, model: str) -> bytes:
    """The JSON object `text` with its `model` value (at `span`) replaced by the string `model`;
    without a span, `model` is added as the object's first member."""
    value = _ENCODED.get(model)
    if value is None:
        if len(_ENCODED) >= 1024:
            _ENCODED.clear()
        value = _ENCODED[model] = json.dumps(model, ensure_ascii=False)
    if span is not None:
        return (text[: span[0]] + value + text[span[1] :]).encode()
    brace = text.index("{") + 1
    rest = text[brace:]
    separator = "" if rest.lstrip().startswith("}") else ","
    return (text[:brace] + '"model":' + value + separator + rest).encode()


def error_response(
    api: Api,
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """An error the client's SDK reads as one of its own API's errors (stdlib/llm's shapes)."""
    if status == 429 and code is None:
        code = "rate_limit_exceeded"  # what OpenAI says for a rate limit
    response = llm_error_response(api, status, message, param=param, code=code)
    for name, value in headers:
        response.headers.set(name, value)
    return response
