"""`conversation-affinity`: the requests of one conversation go to the same backend, so the prompt
or KV cache it built there is reused; consistent hashing with bounded loads keeps it fair.

```hcl
services "model-servers" {
  load_balancer {
    strategy = "conversation-affinity"
    servers  = [{ url = "http://gpu-1:8000" }, { url = "http://gpu-2:8000" }, { url = "http://gpu-3:8000" }]
    conversation-affinity {
      key         = ["header:X-Conversation-Id", "body:metadata.conversation_id", "jwt:sub"]
      load_factor = 1.25    # no backend holds more than ceil(1.25 x the average) in flight
      ttl         = "30m"   # a conversation idle this long is forgotten
      max_entries = 100000  # conversations remembered (LRU)
    }
  }
}
```

**The conversation** is named by the first of `key`'s sources that the request has: a header
(`header:X-Conversation-Id`), a cookie (`cookie:conv`), a field of the JSON body
(`body:metadata.conversation_id`, `body:user`; dots reach into objects, numbers into arrays), or
a claim of the token a `jwt` middleware in front verified (`jwt:sub`, `jwt:org.id`). The body is
read only when no header, cookie or claim source gave an id (up to `max_body`, else 413) and is
forwarded unchanged. A request naming no conversation goes to the least-loaded backend.

**The backend** is found on a consistent-hash ring (160 points per unit of server weight, as
nginx's `hash ... consistent`): the first backend clockwise from the conversation's hash. Each
backend may hold at most `ceil(load_factor × (in flight + 1) / n)` requests in flight (weighted by
its share of the total weight): a full one is passed over for the next one along the ring
(Mirrokni, Thorup and Zadimoghaddam's consistent hashing with bounded loads). Some backend always
has room, so a request is never refused for load.

**The memory**: each conversation is pinned to the backend that took it, for `ttl` after its last
request, `max_entries` conversations at most (the least recent go first). A pinned conversation
stays where its cache is while that backend is available, even when the ring changes: a new
backend takes new conversations only. A request finding its backend full is served by the next
one along the ring, and the pin stays. A backend that leaves (unhealthy, draining, removed) is
off the ring: only its own conversations move, each to the backend after it on the ring, and they
are pinned there. Weight 0 takes no traffic.

The pins live in the gateway worker, in memory: they survive a reload that keeps the service,
and each worker keeps its own (the ring places a new conversation identically in all of them).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...runtime.api import Backend, Request
from ..base import BuildContext
from ..common.expiring_lru import ExpiringLru
from ..registry import register
from ._base import BalancerKind, Cursor, candidates
from ._body import json_body, json_path, parse_path, parsed_body
from ._bounded import LoadBound, least_loaded
from ._ring import HashRing, hash64
from .schemas.affinity import AffinityConfig

__all__ = ["AffinityState", "ConversationAffinity", "conversation_source"]

Source = Callable[[Request], str | None]


@dataclass(slots=True, eq=False)
class AffinityState:
    """Kept across reloads: the pins, the ring of the last backend set, the tie-break cursor."""

    pins: ExpiringLru[str, str] = field(default_factory=ExpiringLru)
    ring: HashRing | None = None
    cursor: Cursor = field(default_factory=Cursor)

    def ring_for(self, cands: Sequence[Backend], points: int) -> HashRing:
        """The ring of `cands`, rebuilt only when the set, a weight or `points` changed."""
        owners = tuple((b.key, b.weight) for b in cands)
        ring = self.ring
        if ring is None or ring.signature != (owners, points):
            ring = self.ring = HashRing(owners, points)
        return ring


def _text(value: Any) -> str | None:
    """An id as text: strings and numbers (not booleans, objects, arrays or empty strings)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _cookie(request: Request, name: str) -> str | None:
    for header in request.headers.get_all("cookie"):
        for pair in header.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"') or None
    return None


def conversation_source(spec: str) -> tuple[Source, bool]:
    """The function reading one `key` source (validated by the config), and whether it reads the body."""
    kind, _, name = spec.partition(":")
    if kind == "header":
        return (lambda request: request.headers.get(name) or None), False
    if kind == "cookie":
        return (lambda request: _cookie(request, name)), False
    path = parse_path(name)
    if kind == "jwt":

        def claim(request: Request) -> str | None:
            claims = request.state.get("jwt_claims")
            if not isinstance(claims, dict):
                return None
            return _text(claims.get(name)) or _text(json_path(claims, path))

        return claim, False
    return (lambda request: _text(json_path(parsed_body(request), path))), True


@register("balancer", "conversation-affinity")
class ConversationAffinity(BalancerKind[AffinityConfig]):
    state: AffinityState

    def __init__(
        self, config: AffinityConfig, state: Any, ctx: BuildContext, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(config, state, ctx, rng=rng)
        sources = [conversation_source(spec) for spec in config.key]
        self._sources = [read for read, _ in sources]
        # The sources before the first body one: when one of them names the conversation, the
        # body need not be read at all.
        first_body = next((i for i, (_, body) in enumerate(sources) if body), len(sources))
        self._head_sources = self._sources[:first_body]
        self.reads_body = first_body < len(sources)

    @classmethod
    def new_state(cls, config: AffinityConfig, ctx: BuildContext) -> AffinityState:
        return AffinityState()

    async def inspect(self, request: Request) -> None:
        if not any(read(request) for read in self._head_sources):
            await json_body(request, self.config.max_body)

    def conversation(self, request: Request | None) -> str | None:
        """The conversation `request` belongs to, or None."""
        if request is None:
            return None
        for read in self._sources:
            found = read(request)
            if found is not None:
                return found
        return None

    def pick(self, backends: Sequence[Backend], request: Request | None) -> Backend | None:
        cands = [b for b in candidates(backends) if b.weight > 0]
        if not cands:
            return None
        conversation = self.conversation(request)
        if conversation is None:
            return least_loaded(cands, self.state.cursor)
        return self.place(conversation, cands, self.ctx.clock.now())

    def place(self, conversation: str, cands: Sequence[Backend], now: float) -> Backend:
        """The backend for `conversation` among `cands` (available, weight > 0), pinning it."""
        cfg, state = self.config, self.state
        bound = LoadBound(cands, cfg.load_factor, weighted=True)
        pinned_key = state.pins.get(conversation, now)
        pinned = next((b for b in cands if b.key == pinned_key), None) if pinned_key else None
        if pinned is not None and bound.has_room(pinned):
            state.pins.put(conversation, pinned.key, now, cfg.ttl, cfg.max_entries)
            return pinned
        chosen = self.along_ring(conversation, cands, bound)
        # A full pinned backend lends this one request to the next along the ring; the pin
        # stays where the conversation's cache is. Otherwise the conversation is (re)pinned.
        if pinned is None:
            state.pins.put(conversation, chosen.key, now, cfg.ttl, cfg.max_entries)
        return chosen

    def along_ring(self, conversation: str, cands: Sequence[Backend], bound: LoadBound) -> Backend:
        """The first backend with room clockwise from the conversation's point on the ring."""
        by_key = {b.key: b for b in cands}
        ring = self.state.ring_for(cands, self.config.points)
        for key in ring.walk(hash64(conversation.encode())):
            backend = by_key[key]
            if bound.has_room(backend):
                return backend
        return least_loaded(cands, self.state.cursor)  # unreachable: some backend has room
