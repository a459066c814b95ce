"""The `random` balancer's configuration (its implementation: balancers/random.py)."""

from __future__ import annotations

from ...base import ConfigModel
from ...registry import declare
from . import L4_TOO


class RandomConfig(ConfigModel):
    weighted: bool = False
    """Draw in proportion to each server's `weight` instead of uniformly."""


declare("balancer", "random", config=RandomConfig, impl="balancers.random", protocols=L4_TOO)
