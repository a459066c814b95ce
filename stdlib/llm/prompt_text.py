"""Where the prompt text is in a request body: OpenAI chat completions, completions, embeddings
and Responses, Anthropic messages, and the channel-normalised event (`{platform, ..., text}`).

A `Slot` is a (container, key) pair holding one text string, so a caller can read every text
of a body in document order and write a changed text back in place (privacy redaction). Only
text is collected: images, audio, tool definitions and the like are not prompt text.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Slot", "json_object", "last_user_text", "text_slots"]

Slot = tuple[Any, Any]
"""(a dict or list of the parsed body, the key or index of a string in it)"""

# Top-level members holding text: the system prompt (Anthropic `system`, Responses
# `instructions`), completions' `prompt`, embeddings' and Responses' `input`, the channel
# event's `text`; then the conversation (`messages`).
_TOP = ("system", "instructions", "prompt", "input", "text", "messages")


def text_slots(body: dict[str, Any]) -> list[Slot]:
    """Every prompt text string of `body`, in document order of the members above."""
    out: list[Slot] = []
    for key in _TOP:
        if key in body:
            _collect(body, key, out, 0)
    return out


def _collect(container: Any, key: Any, out: list[Slot], depth: int) -> None:
    value = container[key]
    if isinstance(value, str):
        out.append((container, key))
    elif isinstance(value, list) and depth < 3:
        for index, item in enumerate(value):
            if isinstance(item, str):
                out.append((value, index))
            elif isinstance(item, dict):
                _collect_part(item, out, depth + 1)


def _collect_part(part: dict[str, Any], out: list[Slot], depth: int) -> None:
    """A message (`content`), a content part or block (`text`), or an Anthropic tool result
    (`content`, itself a string or blocks)."""
    for key in ("text", "content"):
        if key in part:
            _collect(part, key, out, depth)


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the conversation's last user message; without messages, every prompt text
    of the body (a completion's prompt, a channel event's text) joined by newlines."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                slots: list[Slot] = []
                _collect_part(message, slots, 1)
                return "\n".join(container[key] for container, key in slots)
    return "\n".join(container[key] for container, key in text_slots(body))


def json_object(data: bytes) -> dict[str, Any] | None:
    """`data` parsed, when it is a JSON object; None otherwise (not JSON, not UTF-8, an array)."""
    try:
        value = json.loads(data)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return None
    return value if isinstance(value, dict) else None
