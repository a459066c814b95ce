"""`api-key`: let a request through only when it carries one of the configured API keys.

```hcl
middlewares "auth" {
  type   = "api-key"
  header = "X-API-Key"                       # A3S keys: header and keys
  keys   = ["secret-key-1", "secret-key-2"]
  # keys_env    = "GATEWAY_API_KEYS"         # comma-separated keys in an environment variable
  # keys_file   = "/etc/gateway/api-keys"    # one key per line, '#' comments
  # query_param = "api_key"                  # also accept ?api_key=...
  # scheme      = "Bearer"                   # header value is "Bearer <key>" (OpenAI-style clients)
  # forward_key = false
}
```

The key is read from `header` (default `X-API-Key`; with `scheme` set, the value must be
`<scheme> <key>`, so `header = "Authorization"` with `scheme = "Bearer"` accepts OpenAI-style
clients), and then from `query_param` when set. Keys come from `keys`, from the environment
variable `keys_env` (comma-separated) and from `keys_file` (one per line); all three add up.
The file is checked at compile time; the environment variable and the file are read when the
middleware is built, i.e. at start and whenever its config changes.

Comparison is constant-time: the SHA-256 of the presented key is compared with
`hmac.compare_digest` against the SHA-256 of every configured key, always all of them, so neither
the position of a match nor the length of a key shows in the response time.

The key is removed from the forwarded request (header or query parameter) unless
`forward_key = true`, so backends never see gateway credentials. The matching key's fingerprint
(the first 16 hex digits of its SHA-256) is left in `request.state["api_key_id"]` for later
middlewares and logs. A missing or wrong key is a 401 JSON error.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ...runtime.api import Handler, Request, Response
from ..base import BuildContext, MiddlewareKind
from ..common.auth import Unauthorized, take_query_param
from ..registry import register
from .schemas.api_key import ApiKeyConfig

__all__ = ["ApiKey", "ApiKeyConfig"]


@dataclass(frozen=True, slots=True)
class ApiKeyState:
    digests: tuple[bytes, ...]  # SHA-256 of each accepted key


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


@register("middleware", "api-key")
class ApiKey(MiddlewareKind[ApiKeyConfig]):
    state: ApiKeyState

    @classmethod
    def new_state(cls, config: ApiKeyConfig, ctx: BuildContext) -> ApiKeyState:
        keys = config.load_keys(dict(ctx.env))
        if not keys:
            raise ValueError(
                f"api-key {ctx.name}: no keys (is the environment variable {config.keys_env} set?)"
            )
        return ApiKeyState(tuple(_digest(k) for k in dict.fromkeys(keys)))

    def matches(self, presented: str) -> bool:
        """Constant-time membership: compares against every key, with no early exit."""
        digest = _digest(presented)
        found = False
        for expected in self.state.digests:
            found |= hmac.compare_digest(digest, expected)
        return found

    async def __call__(self, request: Request, next: Handler) -> Response:
        presented = self._take_key(request)
        if presented is None:
            raise Unauthorized("missing API key")
        if not self.matches(presented):
            raise Unauthorized("invalid API key")
        request.state["api_key_id"] = _digest(presented).hex()[:16]
        return await next(request)

    def _take_key(self, request: Request) -> str | None:
        """The presented key (removed from the request unless `forward_key`), or None."""
        cfg = self.config
        raw = request.headers.get(cfg.header)
        if raw is not None:
            key = raw.strip()
            if cfg.scheme is not None:
                head, _, rest = key.partition(" ")
                key = rest.strip() if head.lower() == cfg.scheme.lower() else ""
            if key:
                if not cfg.forward_key:
                    request.headers.remove(cfg.header)
                return key
        if cfg.query_param is not None:
            return take_query_param(request, cfg.query_param, remove=not cfg.forward_key)
        return None
