"""The `p2c` balancer's configuration (its implementation: balancers/p2c.py)."""

from __future__ import annotations

from ...base import ConfigModel
from ...registry import declare
from . import L4_TOO


class P2CConfig(ConfigModel):
    """No options."""


declare(
    "balancer",
    "p2c",
    config=P2CConfig,
    impl="balancers.p2c",
    aliases=("power-of-two-choices",),
    protocols=L4_TOO,
)
