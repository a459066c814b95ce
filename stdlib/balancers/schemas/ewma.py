"""The `ewma` balancer's configuration (its implementation: balancers/ewma.py)."""

from __future__ import annotations

from pydantic import Field

from ...base import ConfigModel, Duration
from ...registry import declare
from . import L4_TOO


class EwmaConfig(ConfigModel):
    decay: Duration = Field(default=10.0, gt=0)
    """Time constant of the moving average (and of its decay while a backend is idle)."""


declare(
    "balancer", "ewma", config=EwmaConfig, impl="balancers.ewma", aliases=("peak-ewma",), protocols=L4_TOO
)
