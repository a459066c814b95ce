"""The `least-connections` balancer's configuration (its implementation: balancers/least_connections.py)."""

from __future__ import annotations

from ...base import ConfigModel
from ...registry import declare
from . import L4_TOO


class LeastConnectionsConfig(ConfigModel):
    """No options."""


declare(
    "balancer",
    "least-connections",
    config=LeastConnectionsConfig,
    impl="balancers.least_connections",
    aliases=("least-conn",),
    protocols=L4_TOO,
)
