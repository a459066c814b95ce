"""`cors`: Cross-Origin Resource Sharing (the Fetch standard's CORS protocol) at the gateway.

```hcl
middlewares "cors" {
  type            = "cors"
  allowed_origins = ["https://app.example.com", "https://*.example.com"]   # A3S keys
  allowed_methods = ["GET", "POST"]
  allowed_headers = ["Content-Type", "Authorization"]
  max_age         = 3600
  # expose_headers    = ["X-Request-Id"]
  # allow_credentials = true
}
```

Origins are `"*"` (any), exact origins (`https://app.example.com`, compared case-insensitively),
or patterns with `*` standing for one or more DNS labels or a port: `https://*.example.com`
matches `https://a.example.com` and `https://a.b.example.com` but not `https://example.com`;
`http://localhost:*` matches any port. Methods and headers may be `"*"` too. Left out (or empty,
as A3S treats them), the lists default to A3S's: any origin, `GET, POST, PUT, DELETE, OPTIONS`,
`Content-Type, Authorization`, and `max_age` to 86400 seconds.

A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered by the
gateway and never reaches the backend: 204 with `Access-Control-Allow-Origin`, `-Allow-Methods`,
`-Allow-Headers`, `-Max-Age` (and `-Allow-Credentials`) when the origin is allowed. The browser
compares the requested method and headers with the lists itself. A preflight from an origin that
is not allowed gets 403 with no CORS headers, as in A3S. (Traefik answers such a preflight 200
without the allow headers and Envoy passes it to the backend; for the browser all three are the
same refusal, and a 403 never bothers the backend and is plain in the access log.)

Other requests go to the backend; when their `Origin` is allowed, the response gets
`Access-Control-Allow-Origin`, `-Allow-Credentials` and `-Expose-Headers` (replacing any the
backend set). A disallowed origin gets no CORS headers, so the browser withholds the response.

With `allow_credentials = true` the gateway never answers `*`: it echoes the request's origin,
methods and headers instead, as the standard requires for credentialed requests. Every response
carries `Vary: Origin`, because it depends on it.
"""

from __future__ import annotations

import re

from ...runtime.api import Handler, Headers, Request, Response
from ..base import BuildContext, MiddlewareKind
from ..registry import register
from .schemas.cors import CorsConfig

__all__ = ["Cors", "CorsConfig", "OriginMatcher"]


# What one `*` of a pattern may stand for: labels or port digits, never '/', '@' or ':'.
_WILD = "[a-z0-9-]+(?:\\.[a-z0-9-]+)*"


class OriginMatcher:
    """Exact origins in a set, patterns as one regex; built once at build time."""

    def __init__(self, patterns: list[str]) -> None:
        self.any = "*" in patterns
        self.exact = frozenset(p.lower() for p in patterns if "*" not in p)
        wild = [re.escape(p.lower()).replace("\\*", _WILD) for p in patterns if "*" in p and p != "*"]
        self.regex = re.compile("^(?:" + "|".join(wild) + ")$") if wild else None

    def allows(self, origin: str) -> bool:
        if self.any:
            return True
        lowered = origin.lower()
        return lowered in self.exact or (self.regex is not None and self.regex.fullmatch(lowered) is not None)


@register("middleware", "cors")
class Cors(MiddlewareKind[CorsConfig]):
    def __init__(self, config: CorsConfig, state: object, ctx: BuildContext) -> None:
        super().__init__(config, state, ctx)
        self.origins = OriginMatcher(config.allowed_origins)
        self.methods = ", ".join(m.upper() if m != "*" else m for m in config.allowed_methods)
        self.headers = ", ".join(config.allowed_headers)
        self.expose = ", ".join(config.expose_headers)
        self.max_age = str(int(config.max_age))

    async def __call__(self, request: Request, next: Handler) -> Response:
        origin = request.headers.get("origin")
        requested = request.headers.get("access-control-request-method")
        if request.method == "OPTIONS" and origin is not None and requested is not None:
            return self.preflight(request, origin, requested)
        response = await next(request)
        _vary(response.headers, "Origin")
        if origin is not None and self.origins.allows(origin):
            out = response.headers
            out.set("access-control-allow-origin", self._allow_origin(origin))
            if self.config.allow_credentials:
                out.set("access-control-allow-credentials", "true")
            if self.expose:
                out.set("access-control-expose-headers", self._expose(out))
        return response

    def preflight(self, request: Request, origin: str, method: str) -> Response:
        """Answer a CORS preflight (Fetch §3.2.2) without calling the backend."""
        if not self.origins.allows(origin):
            response = Response.text(403, "CORS origin not allowed\n")
            _vary(response.headers, "Origin")
            return response
        cfg = self.config
        headers = Headers()
        headers.set("access-control-allow-origin", self._allow_origin(origin))
        wildcard_ok = not cfg.allow_credentials  # "*" is a literal name in credentialed responses
        methods = method if self.methods == "*" and not wildcard_ok else self.methods
        headers.set("access-control-allow-methods", methods)
        asked = request.headers.get_joined("access-control-request-headers")
        allowed = self.headers
        if "*" in cfg.allowed_headers and not wildcard_ok:
            allowed = asked or ""
        if allowed:
            headers.set("access-control-allow-headers", allowed)
        headers.set("access-control-max-age", self.max_age)
        if cfg.allow_credentials:
            headers.set("access-control-allow-credentials", "true")
        headers.set("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
        headers.set("content-length", "0")
        return Response(204, headers, generated=True)

    def _allow_origin(self, origin: str) -> str:
        if self.origins.any and not self.config.allow_credentials:
            return "*"
        return origin

    def _expose(self, response: Headers) -> str:
        if self.expose == "*" and self.config.allow_credentials:
            # Credentialed responses cannot use "*": name what this response actually has.
            return ", ".join(dict.fromkeys(name for name, _ in response.items()))
        return self.expose


def _vary(headers: Headers, name: str) -> None:
    """Add `name` to Vary unless it (or `*`) is already listed (RFC 9110 §12.5.5)."""
    present = {v.strip().lower() for line in headers.get_all("vary") for v in line.split(",")}
    if name.lower() not in present and "*" not in present:
        headers.add("vary", name)
