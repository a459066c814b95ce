"""`jwt`: let a request through only with a valid JSON Web Token (RFC 7519), checked with pyjwt.

```hcl
middlewares "auth-jwt" {
  type  = "jwt"
  value = "${JWT_SECRET}"                 # A3S: the HS256 shared secret
}

middlewares "auth-oidc" {
  type       = "jwt"
  jwks_url   = "https://idp.example.com/.well-known/jwks.json"
  algorithms = ["RS256", "ES256"]
  issuer     = "https://idp.example.com/"
  audience   = "llm-api"
  leeway     = "30s"
  claims_to_headers = { sub = "X-User-Id", "org.id" = "X-Org-Id" }
}
```

Keys. `value` is a shared secret for HS256, HS384 and HS512. `public_key` (PEM text, a public key
or a certificate) or `public_key_file` verifies RS256/384/512, PS256/384/512, ES256/384/512 and
EdDSA, whichever fits the key. `jwks_url` fetches a JSON Web Key Set (RFC 7517) with httpx; it is
cached for `jwks_cache_ttl`, fetched again at once when a token names an unknown `kid` (key
rotation), and never more often than `jwks_min_refresh_interval`, so forged `kid`s cannot turn
the gateway into a load generator against the identity provider. A failed refresh keeps the keys
already known. Key material is checked at compile time: a malformed PEM or secret is a config error.
`public_key_file` is read when the middleware is built, so a reload picks up a replaced file only
when this middleware's config changed too.

Algorithms. `algorithms` is the allowlist; by default every algorithm the configured keys can
verify. `none` is refused at compile time, and the key is chosen by the algorithm's family, never
by the token: an HS token is checked only against `value`, an RS token only against an RSA key,
so an RSA public key can never be used as an HMAC secret (the "alg confusion" attack). A JWK that
names its own `alg` only verifies that algorithm; symmetric (`oct`) JWKs are ignored.

Claims. `exp` is required (as in A3S; `required_claims` changes that) and `exp`/`nbf` are checked
against the gateway clock with `leeway`. `issuer` and `audience` (a string or a list) are checked
when set; with no `audience` configured a token's `aud` is not checked (as A3S does).
The verified claims go to `request.state["jwt_claims"]` for later middlewares (rate-limit keys
such as `"jwt:sub"`), and `claims_to_headers` copies chosen claims (dotted paths reach nested
ones) to request headers; by default `sub` becomes `X-JWT-Subject`, as in A3S. Those headers are
always removed from the incoming request first, so a client cannot forge them.

The token is read from the `header` (default `Authorization`, after the `scheme`, default
`Bearer`; a bare token is accepted as in A3S), then from `cookie` and `query_param` when set.
`forward_token = false` removes it from the header or query before forwarding.

Failures are 401 with `WWW-Authenticate: Bearer realm="..."` (RFC 6750 §3): without an error code
when no token was sent, with `error="invalid_token"` and a short `error_description` otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt as pyjwt

from ...runtime.api import Handler, Request, Response
from ..base import BuildContext, MiddlewareKind
from ..common.auth import Unauthorized, challenge, take_query_param
from ..common.jose import JwksCache
from ..common.jose_keys import HMAC_ALGORITHMS, key_algorithms, load_public_key
from ..registry import register
from .schemas.jwt import JwtConfig

if TYPE_CHECKING:
    from ..common.jose_keys import PublicKey

__all__ = ["Jwt", "JwtConfig", "check_times"]


@dataclass(slots=True)
class JwtState:
    allowed: frozenset[str]
    secret: bytes | None
    public_key: PublicKey | None
    jwks: JwksCache | None


@register("middleware", "jwt")
class Jwt(MiddlewareKind[JwtConfig]):
    state: JwtState

    @classmethod
    def new_state(cls, config: JwtConfig, ctx: BuildContext) -> JwtState:
        pem = config.pem()
        jwks = None
        if config.jwks_url is not None:
            jwks = JwksCache(
                config.jwks_url,
                ttl=config.jwks_cache_ttl,
                min_interval=config.jwks_min_refresh_interval,
                timeout=config.jwks_timeout,
                logger=ctx.logger,
            )
        if config.value is not None and len(config.value.encode()) < 32:
            ctx.logger.warning("jwt %s: the HMAC secret is shorter than 32 bytes (RFC 7518 §3.2)", ctx.name)
        return JwtState(
            allowed=frozenset(config.allowed_algorithms()),
            secret=config.value.encode() if config.value is not None else None,
            public_key=load_public_key(pem) if pem is not None else None,
            jwks=jwks,
        )

    @classmethod
    async def close_state(cls, state: JwtState) -> None:
        if state.jwks is not None:
            await state.jwks.aclose()

    async def __call__(self, request: Request, next: Handler) -> Response:
        token = self._take_token(request)
        if token is None:
            raise Unauthorized("missing bearer token", headers=[self._challenge()])
        try:
            claims = await self.verify(token)
        except pyjwt.PyJWTError as exc:
            message = _describe(exc)
            raise Unauthorized(message, headers=[self._challenge(message)]) from None
        request.state["jwt_claims"] = claims
        for claim, header in self.config.claims_to_headers.items():
            request.headers.remove(header)
            value = _claim(claims, claim)
            if value is not None:
                request.headers.set(header, value)
        return await next(request)

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of `token` once its signature, algorithm and claims are checked."""
        header = pyjwt.get_unverified_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.state.allowed:
            raise pyjwt.InvalidAlgorithmError(f"algorithm {alg!r} is not allowed")
        keys = await self._keys_for(alg, kid if isinstance(kid, str) else None)
        if not keys:
            raise pyjwt.InvalidKeyError("no key matches the token's kid and algorithm")
        cfg = self.config
        options: Any = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
        options |= {"verify_aud": bool(cfg.audience), "require": cfg.required_claims}
        error: pyjwt.PyJWTError = pyjwt.InvalidSignatureError("signature verification failed")
        for key in keys:
            try:
                claims: dict[str, Any] = pyjwt.decode(
                    token, key, algorithms=[alg], options=options,
                    audience=cfg.audience or None, issuer=cfg.issuer or None,
                )  # fmt: skip
            except pyjwt.InvalidSignatureError as exc:
                error = exc  # another key of the set may have signed it
                continue
            check_times(claims, self.ctx.clock.wall(), cfg.leeway)
            return claims
        raise error

    async def _keys_for(self, alg: str, kid: str | None) -> Sequence[Any]:
        state = self.state
        if alg in HMAC_ALGORITHMS:
            return [state.secret] if state.secret is not None else []
        if state.public_key is not None and alg in key_algorithms(state.public_key):
            return [state.public_key]
        if state.jwks is not None:
            return await state.jwks.find(kid, alg, self.ctx.clock.now())
        return []

    def _take_token(self, request: Request) -> str | None:
        cfg = self.config
        raw = request.headers.get(cfg.header)
        if raw is not None and (token := _from_header(raw, cfg.scheme)):
            if not cfg.forward_token:
                request.headers.remove(cfg.header)
            return token
        if cfg.cookie is not None and (token := _cookie(request, cfg.cookie)):
            return token
        if cfg.query_param is not None:
            return take_query_param(request, cfg.query_param, remove=not cfg.forward_token)
        return None

    def _challenge(self, description: str | None = None) -> tuple[str, str]:
        if description is None:  # RFC 6750 §3.1: no error code when no credentials were sent
            return ("www-authenticate", challenge("Bearer", realm=self.config.realm))
        value = challenge(
            "Bearer", realm=self.config.realm, error="invalid_token", error_description=description
        )
        return ("www-authenticate", value)


def check_times(claims: dict[str, Any], now: float, leeway: float) -> None:
    """RFC 7519 §4.1.4-5: `exp` and `nbf` against `now` (Unix seconds) with `leeway`."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise pyjwt.DecodeError(f"the {name} claim must be a number")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is not None and exp <= now - leeway:
        raise pyjwt.ExpiredSignatureError("token expired")
    if nbf is not None and nbf > now + leeway:
        raise pyjwt.ImmatureSignatureError("token not yet valid")


def _describe(exc: pyjwt.PyJWTError) -> str:
    if isinstance(exc, pyjwt.ExpiredSignatureError | pyjwt.ImmatureSignatureError):
        return str(exc)
    if isinstance(exc, pyjwt.InvalidAudienceError):
        return "audience not accepted"
    if isinstance(exc, pyjwt.InvalidIssuerError):
        return "issuer not accepted"
    if isinstance(exc, pyjwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    if isinstance(exc, pyjwt.InvalidAlgorithmError | pyjwt.InvalidKeyError):
        return str(exc)
    if isinstance(exc, pyjwt.InvalidSignatureError):
        return "signature verification failed"
    return "malformed token"


def _from_header(raw: str, scheme: str) -> str | None:
    raw = raw.strip()
    if scheme:
        head, _, rest = raw.partition(" ")
        if head.lower() == scheme.lower():
            return rest.strip() or None
    # A bare token, as A3S accepts: three base64url parts, no scheme.
    return raw if raw and " " not in raw and raw.count(".") == 2 else None


def _cookie(request: Request, name: str) -> str | None:
    for line in request.headers.get_all("cookie"):
        for part in line.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name and value:
                return value.strip('"')
    return None


def _claim(claims: dict[str, Any], path: str) -> str | None:
    """The claim at `path` (`a.b` reaches nested objects) as header text, or None when absent."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            value = claims.get(path)  # a claim whose own name holds a dot
            break
        value = value[part]
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = ",".join(v if isinstance(v, str) else json.dumps(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    else:
        text = str(value)
    # Never let a claim break the header block: control characters become spaces, and non-latin-1
    # text travels as its UTF-8 bytes (what backends decode it as).
    text = "".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)
    return text.encode().decode("latin-1")
