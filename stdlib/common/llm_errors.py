"""Error responses in the client's own API format, so its SDK raises the error it knows.

OpenAI: `{"error": {"message", "type", "param", "code"}}`; the SDKs pick the exception from the
status (401 AuthenticationError, 403 PermissionDeniedError, 429 RateLimitError ...).
Anthropic: `{"type": "error", "error": {"type", "message"}}` with its fixed set of types
(`authentication_error`, `permission_error`, `rate_limit_error`, `invalid_request_error`,
`request_too_large`, `api_error`, `overloaded_error`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ...runtime.api import Response
from .llm_usage import ApiFormat

__all__ = ["llm_error"]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


def llm_error(
    fmt: ApiFormat, status: int, message: str, code: str, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """A gateway-made error response; `code` is OpenAI's machine-readable code (e.g. invalid_api_key)."""
    if fmt == "anthropic":
        payload: object = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message},
        }
    else:
        kind = (
            "insufficient_quota" if code == "insufficient_quota" else _OPENAI_TYPES.get(status, "api_error")
        )
        payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Response.json(status, payload, headers)
