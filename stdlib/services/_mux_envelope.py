"""The envelope of a multiplexed WebSocket (`websocket_mux`): one logical channel's message.

Text form, a JSON object in a text message:

    {"channel": "chat-1", "type": "open" | "data" | "close", "payload": <any JSON value>}

Binary form, a binary message, for payloads that are bytes:

    byte 0       type: 1 open, 2 data, 3 close
    byte 1       N, the channel name's length in bytes (1 to 255)
    bytes 2..N+1 the channel name, UTF-8
    the rest     the payload, raw bytes

An envelope whose channel cannot be read is answered with `{"channel": null, "type": "close",
"payload": {"error": "bad_envelope", ...}}`.

Pure: bytes and text in, `Envelope` out, and back; a malformed envelope raises `EnvelopeError`
naming the channel when it could be read, so only that channel is answered with an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["CLOSE", "DATA", "OPEN", "Envelope", "EnvelopeError", "decode", "encode"]

OPEN, DATA, CLOSE = "open", "data", "close"
_CODES = {1: OPEN, 2: DATA, 3: CLOSE}
_TYPES = {name: code for code, name in _CODES.items()}
_MAX_NAME = 255


class EnvelopeError(ValueError):
    """An envelope that cannot be read; `channel` when its name could be."""

    def __init__(self, message: str, channel: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.channel = channel


@dataclass(frozen=True, slots=True)
class Envelope:
    """`payload` is a JSON value (text form) or bytes (binary form). `channel` is None only in the
    mux's `close` answering an envelope whose channel could not be read."""

    channel: str | None
    type: str
    payload: Any = None

    @property
    def binary(self) -> bool:
        return isinstance(self.payload, bytes | bytearray)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name.encode()) > _MAX_NAME:
        raise EnvelopeError("channel must be a name of 1 to 255 bytes")
    return name


def decode(message: str | bytes) -> Envelope:
    """The envelope in one whole WebSocket message (text: JSON; bytes: the binary form)."""
    if isinstance(message, bytes | bytearray):
        return _decode_binary(bytes(message))
    try:
        doc = json.loads(message)
    except ValueError:
        raise EnvelopeError("an envelope is a JSON object") from None
    if not isinstance(doc, dict):
        raise EnvelopeError("an envelope is a JSON object")
    kind = doc.get("type")
    if doc.get("channel") is None and kind == CLOSE:  # the mux's answer to an unreadable envelope
        return Envelope(None, CLOSE, doc.get("payload"))
    channel = _check_name(doc.get("channel"))
    if kind not in _TYPES:
        raise EnvelopeError("type must be open, data or close", channel)
    return Envelope(channel, kind, doc.get("payload"))


def _decode_binary(data: bytes) -> Envelope:
    if len(data) < 2 or data[0] not in _CODES:
        raise EnvelopeError("a binary envelope starts with its type (1, 2 or 3) and the name's length")
    end = 2 + data[1]
    try:
        channel = _check_name(data[2:end].decode() if len(data) >= end else None)
    except UnicodeDecodeError:
        raise EnvelopeError("a channel name is UTF-8") from None
    return Envelope(channel, _CODES[data[0]], data[end:])


def encode(envelope: Envelope) -> str | bytes:
    """The message carrying `envelope`: binary when its payload is bytes, else JSON text."""
    if envelope.binary and envelope.channel is not None:
        name = envelope.channel.encode()
        return bytes((_TYPES[envelope.type], len(name))) + name + bytes(envelope.payload)
    doc = {"channel": envelope.channel, "type": envelope.type, "payload": envelope.payload}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
