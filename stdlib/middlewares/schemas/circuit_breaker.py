"""The `circuit-breaker` middleware's configuration (its implementation: middlewares/circuit_breaker.py)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from ...base import ConfigModel, Duration
from ...common.breaker import BreakerPolicy
from ...registry import declare


class CircuitBreakerConfig(ConfigModel):
    failure_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open the circuit.")
    cooldown_secs: Duration = Field(default=30.0, description="How long the circuit stays open.")
    success_threshold: int = Field(default=1, ge=1, description="Successful trials that close it again.")
    half_open_max_requests: int | None = Field(default=None, ge=1, description="Trials in flight at once.")
    failure_ratio: float | None = Field(
        default=None, gt=0, le=1, description="Also trip at this failure ratio."
    )
    window: Duration = Field(default=10.0, description="The time the failure ratio is measured over.")
    min_requests: int = Field(default=10, ge=1, description="Fewest requests in the window to judge a ratio.")
    failure_statuses: tuple[int | str, ...] = Field(
        default=("5xx",), description='Statuses or classes ("5xx").'
    )
    per_backend: bool = False

    @field_validator("failure_statuses")
    @classmethod
    def _statuses(cls, value: tuple[int | str, ...]) -> tuple[int | str, ...]:
        for item in value:
            if isinstance(item, int) and not 100 <= item <= 599:
                raise ValueError(f"{item} is not an HTTP status")
            if isinstance(item, str) and not (
                len(item) == 3 and item[0] in "12345" and item[1:].lower() == "xx"
            ):
                raise ValueError(f'{item!r} is not a status class: use "5xx" or a number such as 503')
        return value

    @model_validator(mode="after")
    def _window_positive(self) -> Any:
        if self.window <= 0:
            raise ValueError("window must be longer than zero")
        return self

    def policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            failure_threshold=self.failure_threshold,
            cooldown=self.cooldown_secs,
            success_threshold=self.success_threshold,
            half_open_max_requests=self.half_open_max_requests or self.success_threshold,
            failure_ratio=self.failure_ratio,
            window=self.window,
            min_requests=self.min_requests,
        )

    def is_failure(self, status: int) -> bool:
        return any(
            status == item if isinstance(item, int) else str(status)[0] == item[0]
            for item in self.failure_statuses
        )


declare("middleware", "circuit-breaker", config=CircuitBreakerConfig, impl="middlewares.circuit_breaker")
