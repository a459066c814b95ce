"""The `round-robin` balancer's configuration (its implementation: balancers/round_robin.py)."""

from __future__ import annotations

from ...base import ConfigModel
from ...registry import declare
from . import L4_TOO


class RoundRobinConfig(ConfigModel):
    """No options."""


declare("balancer", "round-robin", config=RoundRobinConfig, impl="balancers.round_robin", protocols=L4_TOO)
