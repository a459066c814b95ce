"""What every channel kind does around its platform's verifier: read the body (bounded), verify,
answer a handshake, drop a repeated delivery, and forward the normalised event.

A channel reads the whole request body before anything else, because every platform signs the
exact bytes: webhook bodies are small, and `max_body_bytes` (1 MiB by default) bounds them with
a 413. The verdict of the platform's `verify` is then one of:

- `Rejected`: a 401, and the service behind never sees the request;
- a `Reply` (a handshake the platform expects the endpoint itself to answer);
- a `ChannelEvent`, forwarded as a JSON POST (`Content-Type: application/json`, a fresh
  `Content-Length`) to the service, at `forward_path` or the request's own target, after the
  platform's own credentials (a secret token, a bearer token) are taken out of the headers.
  Middlewares after it find the event in `request.state["channel_event"]`.

A delivery whose id was seen within `dedup_window` is answered 200 `{"ok": true, "duplicate":
true}` at once, as platforms expect of an endpoint that already has the event: Slack and
Telegram retry until they get a 2xx. That table is the node's kept state; what verification
derives from the config (a loaded key) is made by `prepare` when the handler is built.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, TypeVar

from ...runtime.api import Handler, Headers, Request, Response
from ...runtime.errors import BadRequest, Unauthorized
from ..base import BuildContext, MiddlewareKind
from ..llm.bodies import WholeBody, read_request_body
from ._dedup import SeenDeliveries
from ._event import ChannelEvent, Rejected, Reply, Verdict
from .schemas._options import ChannelOptions

__all__ = ["ChannelKind", "fresh", "header", "json_object"]

ConfigT = TypeVar("ConfigT", bound=ChannelOptions)

# The body's framing and encoding are the gateway's to say once it replaces the body.
_BODY_FIELDS = frozenset({b"content-length", b"content-type", b"content-encoding", b"transfer-encoding"})
_DUPLICATE = json.dumps({"ok": True, "duplicate": True}).encode()


class ChannelKind(MiddlewareKind[ConfigT]):
    """A platform's channel: subclasses give `platform`, `methods`, `credentials` and `verify`."""

    platform: ClassVar[str]
    methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    # Headers holding the platform's credentials (a shared secret), never forwarded.
    credentials: tuple[bytes, ...] = ()
    # The config fields holding the secrets its verification needs. One left empty (an unset
    # `${VAR:-}`) closes the channel: every request is refused, none reaches the service.
    secrets: ClassVar[tuple[str, ...]] = ()
    state: SeenDeliveries

    def __init__(self, config: ConfigT, state: Any, ctx: BuildContext) -> None:
        super().__init__(config, state, ctx)
        self.unset = self.unset_secret(config)
        if self.unset is not None:
            ctx.logger.warning("%s: %s is empty: every request is refused (401)", ctx.name, self.unset)
        self.prepare()

    def prepare(self) -> None:
        """Derive what verification needs from the config (a loaded key), once per build."""

    @classmethod
    def unset_secret(cls, config: ConfigT) -> str | None:
        """The name of a needed secret the config leaves empty, or None."""
        return next((name for name in cls.secrets if not getattr(config, name)), None)

    @classmethod
    def new_state(cls, config: ConfigT, ctx: BuildContext) -> SeenDeliveries:
        return SeenDeliveries(config.dedup_window)

    def verify(self, request: Request, body: bytes, now: float) -> Verdict:
        """The platform's verdict on `request` with its whole `body`, at Unix time `now`."""
        raise NotImplementedError

    async def __call__(self, request: Request, next: Handler) -> Response:
        if request.method not in self.methods:
            allow = ", ".join(sorted(self.methods))
            return Response.json(
                405, _error(405, f"{self.platform} webhooks are {allow}"), [("allow", allow)]
            )
        if self.unset is not None:
            raise Unauthorized(f"the {self.platform} channel has no {self.unset} configured")
        body = await read_request_body(request, self.config.max_body_bytes)
        try:
            verdict = self.verify(request, body, self.ctx.clock.wall())
        except Rejected as exc:
            raise Unauthorized(f"{self.platform} webhook rejected: {exc}") from None
        except (ValueError, TypeError, KeyError) as exc:  # verified, but not an event we can read
            raise BadRequest(f"unreadable {self.platform} event: {exc}") from None
        if isinstance(verdict, Reply):
            return _reply(verdict)
        key = verdict.delivery_id
        if key is not None and not self.state.claim(key, self.ctx.clock.now()):
            return _reply(Reply(200, _DUPLICATE))
        self._forward(request, verdict)
        try:
            response = await next(request)
        except BaseException:
            if key is not None:
                self.state.release(key)
            raise
        if key is not None and response.status >= 500:
            self.state.release(key)
        return response

    def _forward(self, request: Request, event: ChannelEvent) -> None:
        data = event.to_json()
        dropped = _BODY_FIELDS.union(self.credentials)
        raw = [(name, value) for name, value in request.headers.raw if name not in dropped]
        raw += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        request.headers = Headers(raw)
        request.method = "POST"
        if self.config.forward_path is not None:
            request.target = self.config.forward_path
        request.body = WholeBody(data)
        request.content_length = len(data)
        request.state["channel_event"] = event


def json_object(body: bytes) -> dict[str, Any]:
    """`body` as a JSON object, or ValueError (a 400 once the request is verified)."""
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    return payload


def header(request: Request, name: str) -> str:
    """The header's value, or Rejected naming it when it is missing."""
    value = request.headers.get(name)
    if not value:
        raise Rejected(f"missing {name}")
    return value


def fresh(timestamp: str, now: float, max_age: float, scale: float = 1.0) -> None:
    """Rejected unless `timestamp` (Unix time, in 1/`scale` seconds) is within `max_age` of `now`."""
    try:
        seconds = int(timestamp) / scale
    except ValueError:
        raise Rejected("malformed timestamp") from None
    if abs(now - seconds) > max_age:
        raise Rejected("stale timestamp")


def _reply(reply: Reply) -> Response:
    return Response(
        reply.status,
        Headers(
            [
                (b"content-type", reply.content_type.encode()),
                (b"content-length", str(len(reply.body)).encode()),
            ]
        ),
        WholeBody(reply.body),
        generated=True,
    )


def _error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"type": "method_not_allowed", "message": message, "status": status}}
