"""What the authentication middlewares share: the 401 error, challenges and secret sources.

`Unauthorized` (defined in runtime/errors.py, re-exported here) is a `GatewayError`, so the
pipeline turns it into the usual JSON error (or gRPC status 16, UNAUTHENTICATED) at its one
boundary; the challenge travels in its headers.

Secrets may come from the config itself, an environment variable or a file. Files are checked at
compile time (the validator reads them) and read again when the middleware's state is built, so
a missing file is a config error with a position, not a failing request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote_plus

from ...runtime.api import Request
from ...runtime.errors import Unauthorized

__all__ = ["Unauthorized", "challenge", "env_value", "quote", "read_lines", "read_text", "take_query_param"]


def quote(text: str) -> str:
    """An RFC 9110 §5.6.4 quoted-string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(scheme: str, **params: str) -> str:
    """`Bearer realm="api", error="invalid_token"`: a WWW-Authenticate value with quoted params."""
    if not params:
        return scheme
    return scheme + " " + ", ".join(f"{key}={quote(value)}" for key, value in params.items())


def read_text(path: str) -> str:
    """The text of `path`, or ValueError naming the file (for validators and state builders)."""
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path!r} is not UTF-8 text") from None


def read_lines(path: str) -> list[str]:
    """Non-empty lines of `path`, stripped, without `#` comment lines."""
    lines = (line.strip() for line in read_text(path).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def env_value(name: str, env: Mapping[str, str]) -> str | None:
    """`name` from the build context's environment, falling back to the process environment."""
    value = env.get(name)
    return value if value is not None else os.environ.get(name)


def take_query_param(request: Request, name: str, *, remove: bool) -> str | None:
    """The first non-empty value of query parameter `name`; with `remove`, it leaves the target.

    The other parameters are kept byte for byte (no re-encoding), so signatures over the query
    string and the backend's own parsing are unaffected.
    """
    query = request.query
    if not query:
        return None
    parts = query.split("&")
    for index, part in enumerate(parts):
        key, _, value = part.partition("=")
        if value and unquote_plus(key) == name:
            if remove:
                rest = "&".join(parts[:index] + parts[index + 1 :])
                request.target = request.path + ("?" + rest if rest else "")
            return unquote_plus(value)
    return None
