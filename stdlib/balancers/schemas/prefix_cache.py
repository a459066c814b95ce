"""The `prefix-cache` balancer's configuration (its implementation: balancers/prefix_cache.py)."""

from __future__ import annotations

from pydantic import Field

from ...base import ConfigModel, Duration, Size
from ...registry import declare


class PrefixCacheConfig(ConfigModel):
    block_size: int = Field(
        default=256, ge=16, le=65536, description="Bytes of the serialized prompt per hashed block."
    )
    max_blocks: int = Field(
        default=256, ge=1, le=65536, description="Only the prompt's first blocks are hashed and matched."
    )
    max_entries: int = Field(default=200_000, ge=1, description="Most block chains remembered (LRU).")
    ttl: Duration = Field(
        default=600.0, gt=0, description="A chain no request used for this long is forgotten."
    )
    load_factor: float = Field(
        default=1.25,
        gt=1,
        description="c = 1 + ε: the replica holding the prefix is passed over for the least-loaded one "
        "when it has ceil(c × average) requests in flight.",
    )
    max_body: Size = Field(
        default=8 * 1024 * 1024, description="Largest request body read (a larger one is refused with 413)."
    )


declare(
    "balancer",
    "prefix-cache",
    config=PrefixCacheConfig,
    impl="balancers.prefix_cache",
    aliases=("prefix-aware",),
)
