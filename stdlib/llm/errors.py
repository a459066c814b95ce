"""Errors in each API's own format, and the mapping of one format's errors onto the other's.

OpenAI:    `{"error": {"message", "type", "param", "code"}}`, the HTTP status carries the class.
Anthropic: `{"type": "error", "error": {"type", "message"}}`, one `type` per status
           (invalid_request_error 400 ... overloaded_error 529).

Each side's SDK picks its exception class from the status, so the status is mapped too: an
Anthropic `overloaded_error` (529, a status OpenAI clients do not know) becomes OpenAI's 503
`server_error` / `overloaded` (what OpenAI answers when its engines are overloaded), and an
OpenAI 503 becomes Anthropic's 529.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConversionError",
    "anthropic_error",
    "anthropic_error_from_openai",
    "anthropic_type_for_status",
    "openai_error",
    "openai_error_from_anthropic",
    "openai_type_for_status",
]


class ConversionError(Exception):
    """A request the converter cannot carry to the other side: malformed, or asking for
    something the other API cannot express (`n > 1` to Anthropic, `top_k` to OpenAI ...).
    Answered 400 in the client's format, naming the parameter."""

    def __init__(
        self, message: str, *, param: str | None = None, code: str = "unsupported_parameter"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


# ------------------------------------------------------------------ the two shapes


def openai_error(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic_error(message: str, type_: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_type_for_status(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def openai_type_for_status(status: int) -> str:
    if status >= 500:
        return "server_error"
    return {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error"
    )


# ------------------------------------------------------------------ Anthropic -> OpenAI

# Anthropic error type -> (OpenAI status, type, code).
_TO_OPENAI: dict[str, tuple[int, str, str | None]] = {
    "invalid_request_error": (400, "invalid_request_error", None),
    "authentication_error": (401, "invalid_request_error", "invalid_api_key"),
    "permission_error": (403, "permission_error", None),
    "not_found_error": (404, "invalid_request_error", "not_found"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit_error": (429, "rate_limit_error", "rate_limit_exceeded"),
    "billing_error": (429, "insufficient_quota", "insufficient_quota"),
    "api_error": (500, "server_error", None),
    "timeout_error": (504, "server_error", "timeout"),
    "overloaded_error": (503, "server_error", "overloaded"),
}


def openai_error_from_anthropic(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    """An Anthropic error response (status and parsed body, or None) as an OpenAI one."""
    type_, message = _anthropic_parts(body)
    type_ = type_ or anthropic_type_for_status(status)
    mapped = _TO_OPENAI.get(type_)
    if mapped is None:
        return status, openai_error(message or f"upstream error {status}", openai_type_for_status(status))
    new_status, new_type, code = mapped
    return new_status, openai_error(message or type_.replace("_", " "), new_type, code=code)


def _anthropic_parts(body: Any) -> tuple[str | None, str | None]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    type_, message = error.get("type"), error.get("message")
    return (type_ if isinstance(type_, str) else None), (message if isinstance(message, str) else None)


# ------------------------------------------------------------------ OpenAI -> Anthropic


def anthropic_error_from_openai(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    """An OpenAI error response (status and parsed body, or None) as an Anthropic one."""
    message, code = _openai_parts(body)
    if status == 503 or code == "overloaded":
        status = 529
    elif status == 429 and code == "insufficient_quota":
        status = 402
    return status, anthropic_error(message or f"upstream error {status}", anthropic_type_for_status(status))


def _openai_parts(body: Any) -> tuple[str | None, str | None]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # some OpenAI-compatible servers answer {"error": "text"}
        return error, None
    if not isinstance(error, dict):
        message = body.get("message") if isinstance(body, dict) else None  # vLLM/TGI variants
        return (message if isinstance(message, str) else None), None
    message, code = error.get("message"), error.get("code")
    return (message if isinstance(message, str) else None), (code if isinstance(code, str) else None)
