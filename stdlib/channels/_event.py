"""The one JSON shape every channel forwards, whatever the platform, and what a verifier returns.

```json
{"platform": "slack", "type": "message", "channel_id": "C123", "user_id": "U456",
 "message_id": "1700000000.000100", "text": "hello", "attachments": [],
 "reply_to": null, "timestamp": 1700000000.0001, "raw": {...the platform's event...}}
```

`timestamp` is Unix seconds (a number) when the platform says when the message was sent; ids are
strings whatever the platform's own type. Attachments are objects with `type`, `id` and, when the
platform gives them, `name`, `mime_type`, `url` and `size`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChannelEvent",
    "Rejected",
    "Reply",
    "Verdict",
    "as_id",
    "attachment",
    "number",
    "obj",
    "seq",
    "string",
]


class Rejected(Exception):
    """The request is not from the platform (a bad or missing signature, a stale timestamp):
    answered 401, never forwarded."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer the channel gives itself (a handshake), without asking the agent."""

    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, payload: Any) -> Reply:
        return cls(200, json.dumps(payload, separators=(",", ":")).encode())


@dataclass(slots=True)
class ChannelEvent:
    platform: str
    type: str
    channel_id: str | None
    user_id: str | None
    message_id: str | None
    text: str
    raw: Any
    attachments: list[dict[str, Any]] = field(default_factory=list)
    reply_to: str | None = None
    timestamp: float | None = None
    # The platform's identity of this delivery (what its retries repeat): the dedup key.
    delivery_id: str | None = None

    def to_json(self) -> bytes:
        payload = {
            "platform": self.platform,
            "type": self.type,
            "channel_id": self.channel_id,
            "user_id": self.user_id,
            "message_id": self.message_id,
            "text": self.text,
            "attachments": self.attachments,
            "reply_to": self.reply_to,
            "timestamp": self.timestamp,
            "raw": self.raw,
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


Verdict = ChannelEvent | Reply


def as_id(value: Any) -> str | None:
    """A platform id (a string or a number) as a string; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        return str(value) if value != "" else None
    return None


def number(value: Any, scale: float = 1.0) -> float | None:
    """A timestamp given as a number or a numeric string, divided by `scale` (1000: milliseconds)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return value / scale if isinstance(value, int | float) else None


def attachment(kind: str, ident: Any, **extra: Any) -> dict[str, Any]:
    """An attachment object: its type and id, plus the given fields that are not None."""
    out: dict[str, Any] = {"type": kind, "id": as_id(ident)}
    out.update((key, value) for key, value in extra.items() if value is not None)
    return out


def obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """`parent[key]` when it is an object, else {} (platform payloads are read defensively)."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def seq(parent: dict[str, Any], key: str) -> list[Any]:
    """`parent[key]` when it is a list, else []."""
    value = parent.get(key)
    return value if isinstance(value, list) else []


def string(parent: dict[str, Any], key: str) -> str:
    """`parent[key]` when it is a string, else ""."""
    value = parent.get(key)
    return value if isinstance(value, str) else ""
