"""`basic-auth`: HTTP Basic authentication (RFC 7617) against users with bcrypt or plain passwords.

```hcl
middlewares "admin-auth" {
  type     = "basic-auth"
  username = "admin"                      # A3S keys: one user and its password
  password = "${ADMIN_PASSWORD}"
}

middlewares "team-auth" {
  type  = "basic-auth"
  users = [                               # htpasswd lines, as `htpasswd -nbB user password` prints
    "alice:$2y$10$29t8wydFBFOuQrC.deaU4Ojvj4/uhxX92Na.s3pqbOrdttYRPiLBy",  # alice / wonderland
  ]
  # users_file    = "/etc/gateway/htpasswd"
  # realm         = "a3s-gateway"
  # header_field  = "X-Auth-User"         # forward the user name in this header
  # remove_header = true                  # drop Authorization before forwarding
}
```

Users come from `username`/`password` (A3S's single-user form), from `users` (htpasswd lines
`user:hash`) and from `users_file` (an htpasswd file; `#` comments allowed); a user defined twice
is a config error. A password is a bcrypt hash (`$2y$`, `$2b$`, `$2a$`: what `htpasswd -B` writes)
or plain text (`{PLAIN}secret`, or any value that is not a hash). MD5 (`$apr1$`), SHA-1 (`{SHA}`)
and crypt hashes are refused at compile time with a hint to re-hash with `htpasswd -B`: they are
too fast to brute-force. Passwords longer than 72 bytes are cut at 72, as bcrypt does.
`users_file` is read at compile time (a bad line is a config error) and again when the middleware
is built; a reload picks up an edited file only when this middleware's config changed too.

bcrypt checks are slow on purpose, so they run in a worker thread (at most as many at once as
there are CPUs) and never block the event loop. A successful check is remembered for `cache_ttl`
(default 60s) under a keyed hash of the user and password, so a client sending the same
credentials on every request costs one bcrypt check per minute, not one per request. Unknown users
cost the same bcrypt work as known ones, so response time does not reveal which users exist.
Plain passwords are compared in constant time.

On success the user name goes to `request.state["basic_auth_user"]` and, with `header_field`, to
that request header (removed from the incoming request first, so clients cannot forge it);
`remove_header` drops `Authorization` before forwarding. Failures are 401 with
`WWW-Authenticate: Basic realm="..."`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
import bcrypt

from ...runtime.api import Handler, Request, Response
from ..base import BuildContext, MiddlewareKind
from ..common.auth import Unauthorized, challenge
from ..registry import register
from .schemas.basic_auth import (
    BasicAuthConfig,
    Credential,
    parse_user_line,
)

__all__ = ["BasicAuth", "BasicAuthConfig", "Credential", "parse_user_line"]

_MAX_CACHE = 4096


@dataclass(slots=True)
class BasicAuthState:
    users: dict[str, Credential]
    limiter: anyio.CapacityLimiter
    # keyed hash of (user, password) -> (expiry, bcrypt hash it was checked against)
    cache: OrderedDict[bytes, tuple[float, bytes]] = field(default_factory=OrderedDict)
    cache_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    bcrypt_checks: int = 0

    def decoy(self) -> bytes | None:
        """A real bcrypt hash to spend the same work on for unknown users."""
        return next((c.bcrypt_hash for c in self.users.values() if c.bcrypt_hash), None)


@register("middleware", "basic-auth")
class BasicAuth(MiddlewareKind[BasicAuthConfig]):
    state: BasicAuthState

    @classmethod
    def new_state(cls, config: BasicAuthConfig, ctx: BuildContext) -> BasicAuthState:
        return BasicAuthState(config.load_users(), anyio.CapacityLimiter(max(2, os.cpu_count() or 2)))

    async def __call__(self, request: Request, next: Handler) -> Response:
        credentials = _credentials(request.headers.get("authorization"))
        if credentials is None:
            raise Unauthorized("missing credentials", headers=[self._challenge()])
        user, password = credentials
        if not await self.check(user, password):
            raise Unauthorized("invalid credentials", headers=[self._challenge()])
        request.state["basic_auth_user"] = user
        if self.config.header_field is not None:
            request.headers.set(self.config.header_field, user.encode().decode("latin-1"))
        if self.config.remove_header:
            request.headers.remove("authorization")
        return await next(request)

    async def check(self, user: str, password: bytes) -> bool:
        """Whether `password` is `user`'s (bcrypt off the event loop, cached on success)."""
        state = self.state
        credential = state.users.get(user)
        if credential is not None and credential.plain is not None:
            return hmac.compare_digest(_sha(password), _sha(credential.plain))
        if credential is None or credential.bcrypt_hash is None:
            if (decoy := state.decoy()) is not None:
                await self._bcrypt(password[:72], decoy)  # as much work as for a real user
            return False
        password = password[:72]
        key = hmac.new(state.cache_key, user.encode() + b"\0" + password, hashlib.sha256).digest()
        now = self.ctx.clock.now()
        hit = state.cache.get(key)
        if hit is not None and hit[0] > now and hit[1] == credential.bcrypt_hash:
            return True
        ok = await self._bcrypt(password, credential.bcrypt_hash)
        if ok and self.config.cache_ttl > 0:
            state.cache[key] = (now + self.config.cache_ttl, credential.bcrypt_hash)
            state.cache.move_to_end(key)
            while len(state.cache) > _MAX_CACHE:
                state.cache.popitem(last=False)
        return ok

    async def _bcrypt(self, password: bytes, hashed: bytes) -> bool:
        self.state.bcrypt_checks += 1
        return await anyio.to_thread.run_sync(bcrypt.checkpw, password, hashed, limiter=self.state.limiter)

    def _challenge(self) -> tuple[str, str]:
        return ("www-authenticate", challenge("Basic", realm=self.config.realm))


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from `Authorization: Basic <base64>`, or None when absent or malformed."""
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        name = user.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (name, password) if sep and name else None
