"""`prefix-cache`: each LLM request goes to the replica most likely to hold its prompt's prefix in
its cache (vLLM's automatic prefix caching, SGLang's radix cache, llama.cpp's prompt cache), so
its first token comes sooner; a replica that is too busy is passed over.

```hcl
services "replicas" {
  load_balancer {
    strategy = "prefix-cache"
    servers  = [{ url = "http://vllm-1:8000" }, { url = "http://vllm-2:8000" }, { url = "http://vllm-3:8000" }]
    prefix-cache {
      block_size  = 256      # bytes of prompt per hashed block
      max_blocks  = 256      # only the first 256 blocks (64 KiB) are matched
      max_entries = 200000   # block chains remembered (LRU)
      ttl         = "10m"
      load_factor = 1.25     # the holder is passed over at ceil(1.25 x the average) in flight
    }
  }
}
```

**The prompt** of an OpenAI (chat completions, completions, Responses) or Anthropic (messages)
request is read from its JSON body (up to `max_body`, else 413; forwarded unchanged) and
serialized as a model server renders it: the system prompt, the tools, then the messages in
order. It is cut into `block_size`-byte blocks, and each block is named by a hash of everything
up to its end, so two prompts share the names of exactly the blocks they share from the start
(the same system prompt, the same earlier turns of a conversation).

**The memory**: after each pick, every block chain of the prompt is remembered as held by the
chosen replica (up to 8 replicas per chain, the most recent first), for `ttl` after its last use,
`max_entries` chains at most (the least recently used go first).

**The pick**: the longest chain of the prompt that some available replica holds names the
replica (the least loaded of its holders); that replica gets the request unless it is full: the
bound is `ceil(load_factor × (in flight + 1) / n)` requests in flight, as in consistent hashing
with bounded loads. A full holder, a prompt no replica holds, or a request with no prompt (not
JSON, another API) goes to the least-loaded replica, which then holds the prompt. Weights are
ignored. The memory is per gateway worker and survives a reload that keeps the service.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...runtime.api import Backend, Request
from ..base import BuildContext
from ..common.expiring_lru import ExpiringLru
from ..registry import register
from ._base import BalancerKind, Cursor, candidates
from ._body import json_body
from ._bounded import LoadBound, least_loaded
from ._prompt import chain_hashes, prompt_bytes
from .schemas.prefix_cache import PrefixCacheConfig

__all__ = ["PrefixCacheBalancer", "PrefixIndex"]

_CHAINS = "balancer.prefix_chains"
_HOLDERS = 8  # replicas remembered per chain


@dataclass(slots=True, eq=False)
class PrefixIndex:
    """Kept across reloads: block chain hash -> the replicas that served it, most recent first."""

    chains: ExpiringLru[int, tuple[str, ...]] = field(default_factory=ExpiringLru)
    cursor: Cursor = field(default_factory=Cursor)

    def holders(self, chains: Sequence[int], now: float) -> list[tuple[str, ...]]:
        """The holders of the prompt's chains from the first, up to the first chain nobody holds.

        A chain is remembered with every shorter one of the same prompt, at the same moment, so
        the remembered chains of a prompt are always a prefix of its chains."""
        found: list[tuple[str, ...]] = []
        for chain in chains:
            holders = self.chains.get(chain, now)
            if holders is None:
                break
            found.append(holders)
        return found

    def remember(self, chains: Sequence[int], key: str, now: float, ttl: float, max_entries: int) -> None:
        for chain in chains:
            held = self.chains.get(chain, now) or ()
            if held[:1] != (key,):
                held = (key, *(k for k in held if k != key))[:_HOLDERS]
            self.chains.put(chain, held, now, ttl, max_entries)


@register("balancer", "prefix-cache")
class PrefixCacheBalancer(BalancerKind[PrefixCacheConfig]):
    state: PrefixIndex
    reads_body = True

    def __init__(
        self, config: PrefixCacheConfig, state: Any, ctx: BuildContext, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(config, state, ctx, rng=rng)
        self._prompt_limit = config.block_size * config.max_blocks

    @classmethod
    def new_state(cls, config: PrefixCacheConfig, ctx: BuildContext) -> PrefixIndex:
        return PrefixIndex()

    async def inspect(self, request: Request) -> None:
        body = await json_body(request, self.config.max_body)
        prompt = prompt_bytes(body, self._prompt_limit)
        request.state[_CHAINS] = chain_hashes(prompt, self.config.block_size)

    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        cands = candidates(backends)
        if not cands:
            return None
        chains: list[int] = request.state.get(_CHAINS, []) if request is not None else []
        if not chains:
            return least_loaded(cands, self.state.cursor)
        now = self.ctx.clock.now()
        chosen = self.choose(chains, cands, now)
        self.state.remember(chains, chosen.key, now, self.config.ttl, self.config.max_entries)
        return chosen

    def choose(self, chains: Sequence[int], cands: Sequence[Backend], now: float) -> Backend:
        """The least-loaded available holder of the longest held chain, if it has room; else the
        least-loaded replica."""
        by_key = {b.key: b for b in cands}
        for holders in reversed(self.state.holders(chains, now)):
            available = [by_key[k] for k in holders if k in by_key]
            if available:
                best = min(available, key=lambda b: b.in_flight)
                if LoadBound(cands, self.config.load_factor).has_room(best):
                    return best
                break
        return least_loaded(cands, self.state.cursor)
