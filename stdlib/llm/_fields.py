"""Typed reads of a parsed JSON request: a wrong shape is a `ConversionError` naming the field,
never a KeyError or TypeError that would reach the user as a 500."""

from __future__ import annotations

import json
from typing import Any

from .errors import ConversionError

__all__ = ["as_list", "as_object", "as_str", "dumps", "invalid", "loads", "parse_object"]


def invalid(param: str, expected: str) -> ConversionError:
    return ConversionError(
        f"invalid value for '{param}': expected {expected}", param=param, code="invalid_value"
    )


def as_object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(param, "an object")
    return value


def as_list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(param, "an array")
    return value


def as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise invalid(param, "a string")
    return value


# One decoder, called directly: json.loads would first sniff the bytes' encoding (UTF-16 and -32
# too, which neither API accepts) and check its arguments, on every body and every event.
loads = json.JSONDecoder().decode


def parse_object(data: bytes, what: str = "the request body") -> dict[str, Any]:
    """`data` (UTF-8; a BOM is skipped, as json.loads skips it) parsed as a JSON object."""
    try:
        text = data.decode()
        value = loads(text[1:] if text.startswith("\ufeff") else text)
    except ValueError:  # UnicodeDecodeError included
        raise ConversionError(f"{what} is not valid JSON", code="invalid_json") from None
    if not isinstance(value, dict):
        raise ConversionError(f"{what} must be a JSON object", code="invalid_json")
    return value


# One encoder, made once: json.dumps with non-default options builds a new one on every call,
# which would be most of the cost of a streamed token.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """Compact JSON, as both APIs write it (one line: safe as SSE data)."""
    return _ENCODE(value)
