"""The `weighted` balancer's configuration (its implementation: balancers/weighted.py)."""

from __future__ import annotations

from ...base import ConfigModel
from ...registry import declare
from . import L4_TOO


class WeightedConfig(ConfigModel):
    """No options: weights come from each server's `weight`."""


declare(
    "balancer",
    "weighted",
    config=WeightedConfig,
    impl="balancers.weighted",
    aliases=("wrr",),
    protocols=L4_TOO,
)
