"""`channel-webchat`: the gateway's own web chat channel, for a widget or an app of yours.

```hcl
middlewares "webchat" {
  type       = "channel-webchat"
  jwt_secret = "${WEBCHAT_JWT_SECRET}"      # HS256 tokens your login issues to the widget
  # jwt_public_key = file("...")           # or RS256/ES256/EdDSA tokens (PEM)
  # audience = "webchat"
  # api_keys = ["${WEBCHAT_SERVER_KEY}"]   # server-side clients, with X-API-Key
}
```

Verification: `Authorization: Bearer <JWT>`, checked with pyjwt against `jwt_secret` (HS256/384/
512) or `jwt_public_key` (the algorithms that key verifies, by its type: never the token's
choice); `exp` is required and checked on the gateway's clock, `issuer` and `audience` when
set. Or an API key in `api_key_header`, compared in constant time against the SHA-256 of each
of `api_keys`. A missing, expired or wrong credential is a 401; the credential is removed
before forwarding.

The body is the client's message, as JSON: `message_id` (the dedup key: a retried send is not
forwarded twice), `conversation_id` (or `channel_id`), `text`, `attachments` (a list of objects,
kept as sent), `reply_to` and `timestamp` (Unix seconds; the gateway's time when absent). With a
token, `user_id` is the token's `sub` and never the body's; with an API key (a trusted server)
it is the body's `user_id`. WebChat has no handshake.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt

from ...runtime.api import Request
from ..common.jose_keys import HMAC_ALGORITHMS, key_algorithms, load_public_key
from ..registry import register
from ._event import ChannelEvent, Rejected, Verdict, as_id, number
from ._webhook import ChannelKind, json_object
from .schemas.webchat import WebChatChannelConfig

__all__ = ["WebChatChannel", "WebChatChannelConfig", "normalise"]


@dataclass(frozen=True, slots=True)
class _Keys:
    secret: bytes | None
    public_key: Any
    public_algorithms: tuple[str, ...]
    api_keys: tuple[bytes, ...]  # SHA-256 of each


def normalise(message: dict[str, Any], user_id: str | None, now: float) -> ChannelEvent:
    ident = as_id(message.get("message_id"))
    text = message.get("text", "")
    attachments = message.get("attachments", [])
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise ValueError("attachments must be a list of objects")
    timestamp = number(message.get("timestamp"))
    return ChannelEvent(
        platform="webchat",
        type=str(message.get("type") or "message"),
        channel_id=as_id(message.get("conversation_id")) or as_id(message.get("channel_id")),
        user_id=user_id,
        message_id=ident,
        text=text,
        raw=message,
        attachments=attachments,
        reply_to=as_id(message.get("reply_to")),
        timestamp=timestamp if timestamp is not None else now,
        delivery_id=f"{user_id}:{ident}" if ident is not None else None,
    )


@register("middleware", "channel-webchat")
class WebChatChannel(ChannelKind[WebChatChannelConfig]):
    platform = "webchat"
    keys: _Keys

    @classmethod
    def unset_secret(cls, config: WebChatChannelConfig) -> str | None:
        usable = config.jwt_secret or config.jwt_public_key or config.api_keys
        return None if usable else "jwt_secret, jwt_public_key or api_keys"

    def prepare(self) -> None:
        config = self.config
        self.credentials = (b"authorization", config.api_key_header.lower().encode())
        public = load_public_key(config.jwt_public_key) if config.jwt_public_key else None
        self.keys = _Keys(
            secret=config.jwt_secret.encode() if config.jwt_secret else None,
            public_key=public,
            public_algorithms=key_algorithms(public) if public is not None else (),
            api_keys=tuple(hashlib.sha256(k.encode()).digest() for k in config.api_keys),
        )

    def verify(self, request: Request, body: bytes, now: float) -> Verdict:
        authorization = request.headers.get("authorization") or ""
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            claims = self._claims(token.strip(), now)
            return normalise(json_object(body), as_id(claims.get("sub")), now)
        presented = request.headers.get(self.config.api_key_header)
        if presented and self._known_key(presented.strip()):
            message = json_object(body)
            return normalise(message, as_id(message.get("user_id")), now)
        raise Rejected("missing or wrong credentials")

    def _claims(self, token: str, now: float) -> dict[str, Any]:
        keys, cfg = self.keys, self.config
        try:
            alg = pyjwt.get_unverified_header(token).get("alg")
            if alg in HMAC_ALGORITHMS and keys.secret is not None:
                key: Any = keys.secret
            elif alg in keys.public_algorithms:
                key = keys.public_key
            else:
                raise Rejected(f"token algorithm {alg!r} not accepted")
            options: Any = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["exp"]}
            options["verify_aud"] = bool(cfg.audience)
            claims: dict[str, Any] = pyjwt.decode(
                token,
                key,
                algorithms=[alg],
                options=options,
                audience=cfg.audience or None,
                issuer=cfg.issuer or None,
            )
        except pyjwt.PyJWTError as exc:
            raise Rejected(f"invalid token ({exc})") from None
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
            raise Rejected("token expired")
        if isinstance(nbf, int | float) and nbf > now:
            raise Rejected("token not yet valid")
        return claims

    def _known_key(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        found = False
        for expected in self.keys.api_keys:  # every key, no early exit: constant time
            found |= hmac.compare_digest(digest, expected)
        return found
