"""acme-http@internal: answers `GET /.well-known/acme-challenge/<token>` (RFC 8555 §8.3).

Its router (compiler/lower.py) sits above every router of the challenge entrypoint, as
Traefik's does, so neither a catch-all router nor a redirect middleware can shadow it. A token
this process does not hold is looked up on the board of the other workers (solvers.py), in a
thread: that read only happens on a miss, which is rare.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio.to_thread

from ..api import Request, Response
from .solvers import HttpTokens

__all__ = ["PREFIX", "AcmeHttpService"]

PREFIX = "/.well-known/acme-challenge/"


class AcmeHttpService:
    def __init__(self, tokens: Callable[[], HttpTokens | None]) -> None:
        self._tokens = tokens  # the gateway's manager's, read per request (there may be none yet)

    async def __call__(self, request: Request) -> Response:
        path = request.path
        tokens = self._tokens()
        if request.method not in ("GET", "HEAD") or not path.startswith(PREFIX) or tokens is None:
            return Response.text(404, "no such challenge\n")
        token = path[len(PREFIX) :]
        answer = tokens.known(token)
        if answer is None and tokens.boards:
            answer = await anyio.to_thread.run_sync(tokens.find, token)
        if answer is None:
            return Response.text(404, "no such challenge\n")
        return Response.text(200, answer, [("content-type", "application/octet-stream")])
