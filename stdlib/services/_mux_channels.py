"""One logical channel of a multiplexed WebSocket, and the backend it is bound to.

A channel runs in a task of its session. Towards the backend it reads its `inbox` (bounded:
the session never waits to put a client's message in, and a full inbox closes the channel with
`overflow`); towards the client it writes to its `Outbox` (bounded: a full one pauses the reads
from this channel's backend only). Two bindings:

- websocket: one upgrade request through the bound service (its balancer, health checks and
  proxy), then messages both ways over the backend's socket. The backend's close, or the loss of
  its connection, ends the channel.
- http: each data message is POSTed to the bound service (`content-type` from the payload: text,
  JSON or bytes); the response body comes back as one data message. A 5xx or a failed exchange
  ends the channel.

A channel that ends for a reason of the backend's raises `ChannelEnded` with what the client is
told in the close envelope.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from wsproto.events import Ping
from wsproto.utilities import generate_accept_token

from ...runtime.api import Handler, Headers, Request, Response, iter_body
from ...runtime.errors import GatewayError
from ._mux_envelope import DATA, Envelope, encode
from ._mux_frames import Closed, FrameError, Frames
from ._mux_socket import Outbox
from .schemas.websocket_mux import ChannelRoute

__all__ = ["Channel", "ChannelEnded"]

_IO_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_CLOSE_WAIT = 1.0  # seconds a backend gets to answer our close before its socket is cut


class ChannelEnded(Exception):
    """The channel is over: `payload` goes to the client in the close envelope."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("reason", ""))
        self.payload = payload


def _failed(error: str, reason: str) -> ChannelEnded:
    return ChannelEnded({"error": error, "reason": reason})


def _body(payload: Any) -> tuple[bytes, str]:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload), "application/octet-stream"
    if isinstance(payload, str):
        return payload.encode(), "text/plain; charset=utf-8"
    return json.dumps(payload, separators=(",", ":")).encode(), "application/json"


class Channel:
    def __init__(
        self,
        name: str,
        route: ChannelRoute,
        outbox: Outbox,
        buffer: int,
        limit: int,
        origin: Request,
    ) -> None:
        self.name = name
        self.route = route
        self.outbox = outbox
        self.limit = limit
        self.origin = origin
        self.scope = anyio.CancelScope()
        self._send: MemoryObjectSendStream[Envelope]
        self._receive: MemoryObjectReceiveStream[Envelope]
        self._send, self._receive = anyio.create_memory_object_stream[Envelope](buffer)

    def deliver(self, envelope: Envelope) -> bool:
        """Queue a client's data message for the backend; False when the inbox is full."""
        try:
            self._send.send_nowait(envelope)
        except anyio.WouldBlock:
            return False
        return True

    async def serve(self, service: Handler, opened: Callable[[], None]) -> None:
        """Run until the backend ends the channel (raises ChannelEnded) or the scope is cancelled."""
        if self.route.mode == "http":
            opened()
            await self._serve_http(service)
        else:
            await self._serve_websocket(service, opened)

    async def _out(self, payload: str | bytes) -> None:
        await self.outbox.put(encode(Envelope(self.name, DATA, payload)))

    # ------------------------------------------------------------------ http

    async def _serve_http(self, service: Handler) -> None:
        async for envelope in self._receive:
            body, content_type = _body(envelope.payload)
            request = self._request("POST", [("content-type", content_type)], body)
            response = await self._exchange(service, request)
            try:
                if response.status >= 500:
                    raise _failed("backend_failed", f"the backend answered {response.status}")
                data = await self._read(response)
            finally:
                await response.aclose()
            media = response.headers.get("content-type") or ""
            text = media.startswith(("text/", "application/json"))
            try:
                await self._out(data.decode() if text else data)
            except UnicodeDecodeError:
                await self._out(data)

    async def _read(self, response: Response) -> bytes:
        chunks, size = [], 0
        async for chunk in response.body:
            chunks.append(chunk)
            size += len(chunk)
            if size > self.limit:
                raise _failed("too_big", "the backend's answer is larger than max_message")
        return b"".join(chunks)

    # ------------------------------------------------------------------ websocket

    async def _serve_websocket(self, service: Handler, opened: Callable[[], None]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        fields = [("upgrade", "websocket"), ("connection", "upgrade")]
        fields += [("sec-websocket-key", key), ("sec-websocket-version", "13")]
        response = await self._exchange(service, self._request("GET", fields, b""))
        try:
            upgraded = response.upgrade
            accepted = (
                response.headers.get("sec-websocket-accept") == generate_accept_token(key.encode()).decode()
            )
            if response.status != 101 or upgraded is None or not accepted:
                raise _failed("backend_refused", f"the backend answered the upgrade with {response.status}")
            try:
                opened()
                await self._relay(upgraded.stream, upgraded.leftover)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.aclose_forcefully(upgraded.stream)
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()  # ends the exchange: the backend's in-flight count drops

    async def _relay(self, stream: anyio.abc.ByteStream, leftover: bytes) -> None:
        frames = Frames(client=True, limit=self.limit)
        ended: ChannelEnded | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._to_backend, stream, frames)
                try:
                    await self._from_backend(stream, frames, leftover)
                except ChannelEnded as exc:  # raised outside the group, not wrapped in one
                    ended = exc
                tg.cancel_scope.cancel()
            if ended is not None:
                raise ended
        finally:
            if frames.open:  # we end it (the client closed the channel, the socket went away)
                with anyio.move_on_after(_CLOSE_WAIT, shield=True):
                    await stream.send(frames.close(1000, "channel closed"))

    async def _to_backend(self, stream: anyio.abc.ByteStream, frames: Frames) -> None:
        async for envelope in self._receive:
            payload = envelope.payload
            message = (
                payload if isinstance(payload, str | bytes) else json.dumps(payload, separators=(",", ":"))
            )
            try:
                await stream.send(frames.message(message))
            except _IO_ERRORS:
                return  # the reading side sees the end and says why

    async def _from_backend(self, stream: anyio.abc.ByteStream, frames: Frames, data: bytes) -> None:
        try:
            await self._read_backend(stream, frames, data)
        except _IO_ERRORS:  # a write of ours (a pong, a close's answer) found it gone
            raise _failed("backend_failed", "the backend's connection was lost") from None

    async def _read_backend(self, stream: anyio.abc.ByteStream, frames: Frames, data: bytes) -> None:
        while True:
            try:
                events = frames.feed(data) if data else []
            except FrameError as exc:
                raise _failed("backend_failed", f"the backend broke the protocol: {exc.reason}") from None
            for event in events:
                if isinstance(event, Ping):
                    await stream.send(frames.pong(event))
                elif isinstance(event, Closed):
                    await self._closed(stream, event)
                else:
                    await self._out(event)
            try:
                data = await stream.receive()
            except _IO_ERRORS:
                data = b""
            if not data:
                events = frames.feed(b"")
                if events:
                    raise _failed("backend_failed", "the backend's connection was lost")
                raise ChannelEnded({"reason": "backend closed"})

    async def _closed(self, stream: anyio.abc.ByteStream, event: Closed) -> None:
        if event.code == 1006:
            raise _failed("backend_failed", "the backend's connection was lost")
        if event.answer:  # complete the backend's handshake; gone already is fine too
            with anyio.move_on_after(_CLOSE_WAIT):
                try:
                    await stream.send(event.answer)
                except _IO_ERRORS:
                    pass
        raise ChannelEnded({"code": event.code, "reason": event.reason or "backend closed"})

    # ------------------------------------------------------------------ both

    def _request(self, method: str, fields: list[tuple[str, str]], body: bytes) -> Request:
        origin = self.origin
        headers = Headers.from_pairs([("host", origin.host), ("x-a3s-channel", self.name), *fields])
        if body:
            headers.set("content-length", str(len(body)))
        return Request(
            method,
            self.route.path,
            headers,
            iter_body(body),
            client_addr=origin.client_addr,
            client_ip=origin.client_ip,
            scheme=origin.scheme,
            request_id=f"{origin.request_id}:{self.name}" if origin.request_id else "",
            content_length=len(body),
            route=origin.route,
            clock=origin.clock,
        )

    async def _exchange(self, service: Handler, request: Request) -> Response:
        try:
            return await service(request)
        except GatewayError as exc:
            raise _failed("backend_failed", exc.message) from None
