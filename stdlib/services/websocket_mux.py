"""`websocket_mux`: named logical channels over one client WebSocket, each bound to its own service.

```hcl
services "chat"      { load_balancer { servers = [{ url = "http://127.0.0.1:9001" }] } }
services "tools-api" { load_balancer { servers = [{ url = "http://127.0.0.1:9100" }] } }

services "agents" {
  websocket_mux {
    buffer       = 64         # messages queued per channel and direction
    max_channels = 256        # open at once on one socket
    max_message  = "1MiB"

    channel "chat-*" {        # exact names first, then globs in order
      service = "chat"        # a service whose servers speak WebSocket
      path    = "/ws"
    }
    channel "tools" {
      service        = "tools-api"
      mode           = "http"           # each message is POSTed, the answer comes back
      path           = "/v1/call"
      allow_users    = ["alice"]        # basic-auth user or JWT `sub`
      require_claims = { scope = "tools" }
    }
  }
}
```

The client opens one WebSocket to a router whose service is the mux, then speaks envelopes, as
JSON text messages `{"channel": "chat-1", "type": "open" | "data" | "close", "payload": ...}` or
in the binary form for byte payloads (byte 0: the type, 1 open, 2 data, 3 close; byte 1: the
channel name's length N; then the name in UTF-8; then the payload):

- `open` binds the channel name to the first `channel` block that matches it, checks that the
  upgrade request may open it, and connects its backend; the mux answers `open` (payload null)
  once the backend is connected. The check reads what the router's authentication middlewares
  left on the upgrade request: `allow_users` the basic-auth user or the JWT `sub`,
  `allow_api_keys` the api-key middleware's key id, `require_claims` the JWT's claims; every list
  or map that is set must be satisfied.
- `data` goes to the channel's backend: a string payload as a text message, bytes (binary form)
  as a binary message, any other JSON value as its JSON text. The backend's messages come back as
  `data`: text as a string payload, binary in the binary form. With `mode = "http"`, each data
  payload is POSTed to the service (`content-type` text/plain, application/json or
  application/octet-stream, header `x-a3s-channel`) and the response body is the `data` back.
- `close` from the client ends the channel (its backend WebSocket gets a 1000 close) and is
  answered with `close`. The mux sends `close` when a channel ends otherwise, with a payload
  saying why: `{"code": 1000, "reason": ...}` when the backend closed, or `{"error": ..., "reason":
  ...}` with error `backend_failed` (connect failure, lost connection, a 5xx, no healthy server),
  `backend_refused` (the backend did not accept the upgrade), `forbidden`, `unknown_channel`,
  `already_open`, `not_open`, `too_many_channels`, `overflow`, `bad_envelope`, `too_big` (an HTTP
  answer past `max_message`) or `internal_error`
  (a fault of the gateway's, logged).

A channel's envelopes arrive in order; when its backend ends it, the `close` comes behind the data
the backend sent before (a close for any other reason goes out at once, dropping undelivered data).
Only the channel closes: the socket and the other channels go on. The socket itself ends with the
client's close (or the relay's idle timeout, docs/dataplane.md), which ends every channel.

Backpressure is per channel. Client to backend: each channel has an inbox of `buffer` messages;
the mux never waits on a channel's inbox (that would stall every channel behind it), so a client
that sends into a full inbox gets that channel closed with `overflow` (a client that wants no
overflow waits for answers before sending more than `buffer` messages). Backend to client: each
channel has an outbox of `buffer` messages, written to the socket one message per channel in
turn; a full outbox stops reading that channel's backend until the client catches up, and the
other channels' messages keep going out.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import anyio
from wsproto.utilities import generate_accept_token

from ...runtime.api import Handler, Headers, Request, Response, Upgraded
from ..base import BuildContext, ServiceKind
from ..registry import register
from ._mux_channels import Channel, ChannelEnded
from ._mux_envelope import CLOSE, DATA, OPEN, Envelope, EnvelopeError, decode, encode
from ._mux_socket import MuxSocket, Outbox
from .schemas.websocket_mux import ChannelRoute, WebSocketMuxConfig

__all__ = ["MuxCounts", "WebSocketMux", "authorized"]

_log = logging.getLogger("a3s_gateway.websocket_mux")


def authorized(route: ChannelRoute, state: Mapping[str, Any]) -> bool:
    """Whether the upgrade request's identity (what the auth middlewares left in its state) may
    open a channel of `route`."""
    claims = state.get("jwt_claims") or {}
    if route.allow_users:
        user = state.get("basic_auth_user") or claims.get("sub")
        if user not in route.allow_users:
            return False
    if route.allow_api_keys and state.get("api_key_id") not in route.allow_api_keys:
        return False
    for name, want in route.require_claims.items():
        have = claims.get(name)
        if not (have == want or (isinstance(have, list) and want in have)):
            return False
    return True


@dataclass(slots=True)
class MuxCounts:
    """Sockets and channels open now (the admin API's `statistics` of the service)."""

    sockets: int = 0
    channels: int = 0


class _Session:
    """One client socket's channels."""

    def __init__(self, mux: WebSocketMux, request: Request) -> None:
        config = mux.config
        self.mux = mux
        self.counts: MuxCounts = mux.state
        self.request = request
        self.socket = MuxSocket(self._message, self._end, config.max_message)
        self.channels: dict[str, Channel] = {}
        self._scope = anyio.CancelScope()
        self._tg: anyio.abc.TaskGroup | None = None
        self._pending: list[Channel] = []

    async def run(self) -> None:
        self.counts.sockets += 1
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    for channel in self._pending:
                        tg.start_soon(self._serve, channel)
                    self._pending.clear()
                    await anyio.sleep_forever()
        finally:
            self.counts.sockets -= 1

    def _end(self) -> None:
        self._scope.cancel()

    def _tell(self, channel: str | None, kind: str, payload: Any = None) -> None:
        self.socket.control(encode(Envelope(channel, kind, payload)))

    def _message(self, message: str | bytes) -> None:
        try:
            envelope = decode(message)
        except EnvelopeError as exc:
            if exc.channel is not None and exc.channel in self.channels:
                self._close(self.channels[exc.channel], {"error": "bad_envelope", "reason": exc.message})
            else:
                self._tell(exc.channel, CLOSE, {"error": "bad_envelope", "reason": exc.message})
            return
        name = envelope.channel
        channel = None if name is None else self.channels.get(name)
        if envelope.type == OPEN and name is not None:
            self._open(name, channel)
        elif channel is None:
            self._tell(envelope.channel, CLOSE, {"error": "not_open", "reason": "open the channel first"})
        elif envelope.type == DATA:
            if not channel.deliver(envelope):
                self._close(channel, {"error": "overflow", "reason": "the channel's buffer is full"})
        else:
            self._close(channel, {"reason": "closed by the client"})

    def _open(self, name: str, existing: Channel | None) -> None:
        if existing is not None:
            self._close(existing, {"error": "already_open", "reason": f"channel {name!r} was already open"})
            return
        route = self.mux.route(name)
        if route is None:
            self._tell(
                name, CLOSE, {"error": "unknown_channel", "reason": f"no channel block matches {name!r}"}
            )
        elif not authorized(route, self.request.state):
            self._tell(name, CLOSE, {"error": "forbidden", "reason": f"this client may not open {name!r}"})
        elif len(self.channels) >= self.mux.config.max_channels:
            self._tell(name, CLOSE, {"error": "too_many_channels", "reason": "max_channels are open"})
        else:
            config = self.mux.config
            outbox = Outbox(self.socket, config.buffer)
            channel = Channel(name, route, outbox, config.buffer, config.max_message, self.request)
            self.channels[name] = channel
            if self._tg is None:
                self._pending.append(channel)
            else:
                self._tg.start_soon(self._serve, channel)

    def _close(self, channel: Channel, payload: dict[str, Any], *, backend: bool = False) -> None:
        """End `channel` and tell the client, once. A close of the `backend`'s goes behind the
        channel's data (its last messages arrive first); any other goes out at once, before the
        answers to what the client sends next, and the channel's undelivered data is dropped."""
        if self.channels.get(channel.name) is channel:
            del self.channels[channel.name]
            envelope = encode(Envelope(channel.name, CLOSE, payload))
            if backend:
                channel.outbox.put_last(envelope)
            else:
                channel.outbox.frames.clear()
                self.socket.control(envelope)
        channel.scope.cancel()

    async def _serve(self, channel: Channel) -> None:
        self.counts.channels += 1
        try:
            await self._serve_channel(channel)
        finally:
            self.counts.channels -= 1

    async def _serve_channel(self, channel: Channel) -> None:
        with channel.scope:
            service = self.mux.services.get(channel.route.service)
            try:
                if service is None:  # removed by a reload since the socket opened
                    raise ChannelEnded({"error": "backend_failed", "reason": "the service is gone"})
                await channel.serve(service, lambda: self._tell(channel.name, OPEN))
                self._close(channel, {"reason": "ended"}, backend=True)
            except ChannelEnded as ended:
                self._close(channel, ended.payload, backend=True)
            except Exception:
                # The session's task runs in the gateway's task group: nothing may escape it.
                _log.exception("websocket_mux %s: channel %r failed", self.mux.ctx.name, channel.name)
                self._close(channel, {"error": "internal_error", "reason": "the gateway failed this channel"})


@register("service", "websocket_mux")
class WebSocketMux(ServiceKind[WebSocketMuxConfig]):
    def __init__(
        self, config: WebSocketMuxConfig, state: Any, ctx: BuildContext, services: Mapping[str, Handler]
    ) -> None:
        super().__init__(config, state, ctx, services)
        self._exact = {name: route for name, route in config.channels.items() if not _is_glob(name)}
        self._globs = [(name, route) for name, route in config.channels.items() if _is_glob(name)]

    @classmethod
    def new_state(cls, config: WebSocketMuxConfig, ctx: BuildContext) -> MuxCounts:
        return MuxCounts()

    def statistics(self) -> dict[str, int]:
        return asdict(self.state)

    def route(self, channel: str) -> ChannelRoute | None:
        """The block a channel name binds to: an exact name, else the first glob that matches."""
        route = self._exact.get(channel)
        if route is not None:
            return route
        return next((r for pattern, r in self._globs if fnmatch.fnmatchcase(channel, pattern)), None)

    async def __call__(self, request: Request) -> Response:
        key = request.headers.get("sec-websocket-key")
        upgrade = (request.headers.get("upgrade") or "").lower()
        if request.method != "GET" or upgrade != "websocket" or not key:
            return _error(400, "a multiplexed WebSocket is opened with a WebSocket upgrade (RFC 6455 §4.1)")
        if request.headers.get("sec-websocket-version") != "13":
            return _error(426, "WebSocket version 13 only", [("sec-websocket-version", "13")])
        if self.ctx.tasks is None:
            return _error(503, "websocket_mux runs only inside a gateway")
        session = _Session(self, request)
        self.ctx.tasks.start_soon(session.run, name=f"websocket_mux {self.ctx.name}")
        headers = Headers.from_pairs(
            [
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-accept", generate_accept_token(key.encode("latin-1")).decode()),
            ]
        )
        body = _SessionEnd(session.socket)
        return Response(101, headers, body, upgrade=Upgraded(session.socket), generated=True)


class _SessionEnd:
    """The 101's (empty) body. The connection closes it once done with the response, relayed or
    not (a client gone before the 101 was written), so closing it ends the session: its task
    never outlives the client connection."""

    def __init__(self, socket: MuxSocket) -> None:
        self._socket = socket

    def __aiter__(self) -> _SessionEnd:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        await self._socket.aclose()


def _is_glob(name: str) -> bool:
    return any(c in name for c in "*?[")


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    reason = {400: "bad_request", 426: "upgrade_required", 503: "unavailable"}[status]
    return Response.json(status, {"error": {"type": reason, "message": message}}, headers or [])
