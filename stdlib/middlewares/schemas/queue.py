"""The `queue` middleware's configuration (its implementation: middlewares/queue.py)."""

from __future__ import annotations

from pydantic import Field

from ...base import ConfigModel, Duration
from ...registry import declare


class QueueConfig(ConfigModel):
    max_concurrent: int = Field(ge=1, description="Requests in flight at once, per service.")
    max_waiting: int = Field(
        default=100,
        ge=0,
        description="Requests waiting for a slot, per service; beyond it the lowest class is shed.",
    )
    timeout: Duration = Field(default=30.0, gt=0, description="Longest wait for a slot; then 503.")
    retry_after: Duration = Field(
        default=1.0,
        gt=0,
        description="The `Retry-After` of a shed or timed-out request (whole seconds, rounded up).",
    )


declare("middleware", "queue", config=QueueConfig, impl="middlewares.queue")
