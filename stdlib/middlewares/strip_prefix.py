"""`strip-prefix`: remove a path prefix before forwarding, and tell the backend in `X-Forwarded-Prefix`.

```hcl
middlewares "strip-api" {
  type     = "strip-prefix"
  prefixes = ["/api/v1", "/api"]          # A3S key
}
```

The prefixes are tried in the order written and the first that the path starts with is removed;
the rest are not tried (Traefik's `stripPrefix` semantics, so list longer prefixes first). As in
Traefik the match is on characters, not path segments: `/api` also strips `/apiary` to `/ary`;
end a prefix with `/` to match whole segments only. The result always starts with `/`
(`/api` becomes `/`, `/api/x` becomes `/x`) and the query string is kept as it was.

The removed prefix goes to `X-Forwarded-Prefix`, so a backend can build its links with it. The
header is the gateway's: any value the client sent is replaced, and when several `strip-prefix`
middlewares run in one chain it holds everything they removed together (`/api` then `/v1` gives
`/api/v1`). A path no prefix matches goes on unchanged.

The comparison is on the raw path as sent (still percent-encoded), so `/%61pi` does not match
`/api`; routers match the same raw path.
"""

from __future__ import annotations

from ...runtime.api import Handler, Request, Response
from ..base import MiddlewareKind
from ..registry import register
from .schemas.strip_prefix import StripPrefixConfig

__all__ = ["StripPrefix", "StripPrefixConfig", "strip"]

_STATE_KEY = "forwarded_prefix"


def strip(path: str, prefixes: list[str]) -> tuple[str, str] | None:
    """(new path, removed prefix) for the first prefix `path` starts with, or None."""
    for prefix in prefixes:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            return (rest if rest.startswith("/") else "/" + rest), prefix
    return None


@register("middleware", "strip-prefix")
class StripPrefix(MiddlewareKind[StripPrefixConfig]):
    async def __call__(self, request: Request, next: Handler) -> Response:
        stripped = strip(request.path, self.config.prefixes)
        if stripped is not None:
            path, prefix = stripped
            query = request.query
            request.target = path + ("?" + query if "?" in request.target else "")
            # Earlier strip-prefix middlewares of this request: prefixes accumulate, left to right.
            removed = request.state.get(_STATE_KEY, "").rstrip("/") + prefix
            request.state[_STATE_KEY] = removed
            request.headers.set("x-forwarded-prefix", removed)
        return await next(request)
