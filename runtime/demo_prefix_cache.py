"""The demo backend's simulated prefix cache: what vLLM's automatic prefix caching does, in small.

A model server computes the keys and values of every prompt token before its first output token
(the prefill), and keeps them in fixed-size blocks; a block is reused when the whole prompt up to
its end is the same as before (each block is hashed together with its parent's hash). The demo
renders the request's prompt as a chat template would (the system prompt, then each message's
role and text), cuts it into `BLOCK`-byte blocks (about 16 tokens, vLLM's block size), and keeps
the chains it has seen in an LRU of `capacity` blocks. A request's prefill costs
`prefill_delay` seconds per block that is not cached, so the first token comes sooner on a hit.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

__all__ = ["BLOCK", "PrefixCacheSim", "render_prompt"]

BLOCK = 64


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return ""


def render_prompt(request: dict[str, Any]) -> bytes:
    """The prompt as a chat template renders it: the system prompt, then the messages."""
    parts = []
    system = request.get("system")  # Anthropic
    if system is not None:
        parts.append(f"<|system|>{_text(system)}")
    messages = request.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            parts.append(f"<|{message.get('role', '')}|>{_text(message.get('content'))}")
    return "".join(parts).encode()


class PrefixCacheSim:
    """Block chains seen, least recently used first, `capacity` blocks at most."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    def admit(self, prompt: bytes) -> tuple[int, int]:
        """(blocks already cached, blocks in the prompt); the prompt's blocks are cached after."""
        hasher = hashlib.blake2b(digest_size=16)
        chains = []
        for start in range(0, len(prompt), BLOCK):
            hasher.update(prompt[start : start + BLOCK])
            chains.append(hasher.digest())
        hits = 0
        while hits < len(chains) and chains[hits] in self._blocks:
            hits += 1
        for chain in chains:
            self._blocks[chain] = None
            self._blocks.move_to_end(chain)
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
        return hits, len(chains)
