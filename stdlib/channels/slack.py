"""`channel-slack`: Slack's Events API, slash commands and interactivity, verified and normalised.

```hcl
middlewares "slack" {
  type           = "channel-slack"
  signing_secret = "${SLACK_SIGNING_SECRET}"
  # max_age        = "5m"        # oldest request timestamp accepted
  # dedup_window   = "10m"       # a retried event_id within it is not forwarded again
  # forward_path   = "/events"   # where the agent gets the event (default: the same path)
  # max_body_bytes = "1MiB"
}
```

Verification (Slack's "Verifying requests from Slack"): `X-Slack-Signature` must be `v0=` and
the hex HMAC-SHA256, keyed with the signing secret, of `v0:<X-Slack-Request-Timestamp>:<body>`,
compared in constant time; a timestamp more than `max_age` (5 minutes) from the gateway's clock
is refused, so a captured request cannot be replayed later. Either failure is a 401.

Handshake: a verified `url_verification` is answered `{"challenge": ...}` by the gateway.

Events: an `event_callback` becomes `type` = the event's type (`message`, `app_mention` ...),
`channel_id` = `event.channel`, `user_id` = `event.user`, `message_id` = `event.ts`, `reply_to` =
`event.thread_ts` (when it is a reply in a thread), `timestamp` = `event.ts`, and its `files` the
attachments. A slash command (a form body) becomes `type = "command"` with the command line as
`text`; an interactive `payload` becomes its own type (`block_actions` ...) with the first
action's value as `text`. Slack retries an event it got no 2xx for, with the same `event_id`:
that is the dedup key (a command's or action's `trigger_id`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl

from ...runtime.api import Request
from ..registry import register
from ._event import ChannelEvent, Rejected, Reply, Verdict, as_id, attachment, number, obj, seq, string
from ._webhook import ChannelKind, fresh, header, json_object
from .schemas.slack import SlackChannelConfig

__all__ = ["SlackChannel", "SlackChannelConfig", "normalise", "signature"]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature of `body` sent at `timestamp`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def check(secret: str, timestamp: str, presented: str, body: bytes, now: float, max_age: float) -> None:
    """Rejected unless `presented` signs `body` and `timestamp` is within `max_age` of `now`."""
    fresh(timestamp, now, max_age)
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), presented.encode()):
        raise Rejected("signature mismatch")


def parse(body: bytes, content_type: str) -> dict[str, Any]:
    """A JSON body, a slash command's form, or an interactive form's `payload`."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        if "payload" in form:
            return json_object(form["payload"].encode())
        return form
    return json_object(body)


def normalise(payload: dict[str, Any]) -> Verdict:
    kind = payload.get("type")
    if kind == "url_verification":
        return Reply.json({"challenge": payload.get("challenge", "")})
    if kind == "event_callback":
        return _event(payload)
    if "command" in payload:
        return _command(payload)
    if isinstance(kind, str):
        return _interaction(kind, payload)
    raise ValueError("neither an event, a command nor an interaction")


def _event(payload: dict[str, Any]) -> ChannelEvent:
    event = payload.get("event")
    if not isinstance(event, dict):
        raise ValueError("event_callback without an event")
    item = obj(event, "item")
    ts, thread = as_id(event.get("ts")), as_id(event.get("thread_ts"))
    files = seq(event, "files")
    return ChannelEvent(
        platform="slack",
        type=str(event.get("type") or "event"),
        channel_id=as_id(event.get("channel")) or as_id(item.get("channel")),
        user_id=as_id(event.get("user")),
        message_id=ts,
        text=string(event, "text"),
        raw=payload,
        attachments=[_file(f) for f in files if isinstance(f, dict)],
        reply_to=thread if thread != ts else None,
        timestamp=number(ts) if ts is not None else number(payload.get("event_time")),
        delivery_id=as_id(payload.get("event_id")),
    )


def _file(info: dict[str, Any]) -> dict[str, Any]:
    return attachment(
        "file",
        info.get("id"),
        name=info.get("name"),
        mime_type=info.get("mimetype"),
        url=info.get("url_private"),
        size=info.get("size"),
    )


def _command(form: dict[str, Any]) -> ChannelEvent:
    line = " ".join(part for part in (string(form, "command"), string(form, "text")) if part)
    return ChannelEvent(
        platform="slack",
        type="command",
        channel_id=as_id(form.get("channel_id")),
        user_id=as_id(form.get("user_id")),
        message_id=as_id(form.get("trigger_id")),
        text=line,
        raw=form,
        delivery_id=as_id(form.get("trigger_id")),
    )


def _interaction(kind: str, payload: dict[str, Any]) -> ChannelEvent:
    channel, user = payload.get("channel"), payload.get("user")
    message = obj(payload, "message")
    actions = seq(payload, "actions")
    first = actions[0] if actions and isinstance(actions[0], dict) else {}
    return ChannelEvent(
        platform="slack",
        type=kind,
        channel_id=as_id(channel.get("id")) if isinstance(channel, dict) else None,
        user_id=as_id(user.get("id")) if isinstance(user, dict) else None,
        message_id=as_id(payload.get("trigger_id")),
        text=string(first, "value"),
        raw=payload,
        reply_to=as_id(message.get("ts")),
        delivery_id=as_id(payload.get("trigger_id")),
    )


@register("middleware", "channel-slack")
class SlackChannel(ChannelKind[SlackChannelConfig]):
    platform = "slack"
    secrets = ("signing_secret",)

    def verify(self, request: Request, body: bytes, now: float) -> Verdict:
        cfg = self.config
        timestamp = header(request, "x-slack-request-timestamp")
        check(cfg.signing_secret, timestamp, header(request, "x-slack-signature"), body, now, cfg.max_age)
        return normalise(parse(body, request.headers.get("content-type") or ""))
