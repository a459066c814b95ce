"""The prompt of an LLM request as the bytes a model server's prefix cache sees, in order, and
their chained block hashes.

A model server renders the system prompt, the tool definitions and then the messages, oldest
first, into one token sequence, and caches it in blocks: a block is reusable only when every
token before it is the same (vLLM's automatic prefix caching hashes each block together with its
parent's hash; SGLang keeps a radix tree). The gateway cannot tokenize, so it does the same on
the text: the request's prompt is serialized (the system prompt: Anthropic's `system`, OpenAI
Responses' `instructions` or the leading system and developer messages; then `tools`; then each
message's role and content, or a completion's `prompt`),
cut into `block_size`-byte blocks, and block `i` is named by the hash of everything up to its
end. Two prompts share the hashes of exactly the blocks they share from the start.

Parts that do not change what the model reads are left out: Anthropic's `cache_control` markers
move to the newest message at every turn, and would otherwise make each turn a new prefix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

__all__ = ["chain_hashes", "prompt_bytes"]

_SEPARATOR = b"\x1e"  # between segments: "ab" + "c" never reads as "a" + "bc"


def _content(content: Any) -> Iterator[str]:
    """The text of a message's (or a system prompt's) content: a string or a list of parts."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    yield text
                else:  # an image, a tool call or result: as the model receives it
                    yield json.dumps({k: v for k, v in part.items() if k != "cache_control"}, sort_keys=True)
            elif isinstance(part, str):
                yield part
    elif content is not None:
        yield json.dumps(content, sort_keys=True)


_SYSTEM_ROLES = ("system", "developer")


def _message(message: Any) -> Iterator[str]:
    if isinstance(message, dict):
        yield f"{message.get('role', '')}:"
        yield from _content(message.get("content"))
        if "tool_calls" in message:
            yield json.dumps(message["tool_calls"], sort_keys=True)


def _segments(body: dict[str, Any]) -> Iterator[str]:
    for field in ("system", "instructions"):  # Anthropic, OpenAI Responses
        yield from _content(body.get(field))
    messages = body.get("messages")
    if messages is None:
        messages = body.get("input")  # OpenAI Responses
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, list):
        messages = []
    # OpenAI's system prompt is its leading system (or developer) messages.
    lead = 0
    while (
        lead < len(messages)
        and isinstance(messages[lead], dict)
        and messages[lead].get("role") in _SYSTEM_ROLES
    ):
        yield from _message(messages[lead])
        lead += 1
    tools = body.get("tools")
    if tools:
        yield json.dumps(tools, sort_keys=True)
    for message in messages[lead:]:
        yield from _message(message)
    prompt = body.get("prompt")  # completions
    if prompt is not None:
        yield from _content(prompt)


def prompt_bytes(body: Any, limit: int) -> bytes:
    """The first `limit` bytes of the request's serialized prompt (b"" when it has none)."""
    if not isinstance(body, dict):
        return b""
    out = bytearray()
    for segment in _segments(body):
        out += segment.encode("utf-8", "replace")
        out += _SEPARATOR
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def chain_hashes(prompt: bytes, block_size: int) -> list[int]:
    """The hash of each block of `prompt` together with everything before it (the last block may
    be short)."""
    hasher = hashlib.blake2b(digest_size=8)
    hashes: list[int] = []
    for start in range(0, len(prompt), block_size):
        hasher.update(prompt[start : start + block_size])
        hashes.append(int.from_bytes(hasher.digest(), "big"))  # digest() leaves it open
    return hashes
