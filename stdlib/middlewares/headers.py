"""`headers`: set, add and remove request and response headers.

```hcl
middlewares "headers" {
  type             = "headers"
  request_headers  = { "X-Forwarded-Proto" = "https", "X-Debug" = "" }   # A3S keys: set ("" removes)
  response_headers = { "Strict-Transport-Security" = "max-age=31536000" }
  # add_request_headers     = { "X-Tag" = ["a", "b"] }    # appended, existing values kept
  # remove_request_headers  = ["X-Internal-Token"]
  # add_response_headers    = { "Link" = "</style.css>; rel=preload" }
  # remove_response_headers = ["Server", "X-Powered-By"]
}
```

`request_headers` and `response_headers` (A3S's keys) *set* a header: every value it had is
replaced by the one given. An empty string removes the header instead, as Traefik's
`customRequestHeaders` / `customResponseHeaders` do. `add_*` appends values (a string or a
list) after any existing ones; `remove_*` deletes every value. On each side removals happen first,
then sets, then additions, whatever the order in the file. Names are case-insensitive.

Request headers are changed before the request goes on; response headers once the response head
comes back (the body streams through untouched). Errors the gateway generates further down (a 502,
a 429 from a later middleware) are not changed. Names and values are checked at compile time: a
value cannot hold a line break, and `Content-Length`, `Transfer-Encoding` and hop-by-hop fields
such as `Connection` cannot be touched, because they frame the message rather than describe it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...runtime.api import Handler, Headers, Request, Response
from ..base import BuildContext, MiddlewareKind
from ..registry import register
from .schemas.headers import HeadersConfig

__all__ = ["HeaderEdits", "HeadersConfig", "HeadersMiddleware"]


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    """One side's edits, in the order they apply: remove, set, add."""

    remove: tuple[str, ...]
    set: tuple[tuple[str, str], ...]
    add: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, sets: dict[str, str], adds: dict[str, str | list[str]], removes: list[str]) -> HeaderEdits:
        return cls(
            remove=tuple(removes) + tuple(name for name, value in sets.items() if value == ""),
            set=tuple((name, value) for name, value in sets.items() if value != ""),
            add=tuple((n, v) for n, vs in adds.items() for v in ([vs] if isinstance(vs, str) else vs)),
        )

    def apply(self, headers: Headers) -> None:
        for name in self.remove:
            headers.remove(name)
        for name, value in self.set:
            headers.set(name, value)
        for name, value in self.add:
            headers.add(name, value)

    def __bool__(self) -> bool:
        return bool(self.remove or self.set or self.add)


@register("middleware", "headers")
class HeadersMiddleware(MiddlewareKind[HeadersConfig]):
    def __init__(self, config: HeadersConfig, state: object, ctx: BuildContext) -> None:
        super().__init__(config, state, ctx)
        c = config
        self.request_edits = HeaderEdits.of(
            c.request_headers, c.add_request_headers, c.remove_request_headers
        )
        self.response_edits = HeaderEdits.of(
            c.response_headers, c.add_response_headers, c.remove_response_headers
        )

    async def __call__(self, request: Request, next: Handler) -> Response:
        self.request_edits.apply(request.headers)
        response = await next(request)
        self.response_edits.apply(response.headers)
        return response
