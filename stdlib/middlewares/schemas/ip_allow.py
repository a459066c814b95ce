"""The `ip-allow` middleware's configuration (its implementation: middlewares/ip_allow.py)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from ...base import ConfigModel
from ...common.ipnet import parse_network
from ...registry import declare


def _check_cidrs(value: list[str]) -> list[str]:
    for entry in value:
        parse_network(entry)
    return value


class IpStrategy(ConfigModel):
    depth: int = Field(default=0, ge=0, description="Take the N-th X-Forwarded-For entry from the right.")
    excluded_ips: list[str] = Field(default=[], description="Skip these proxies, right to left.")

    _cidrs = field_validator("excluded_ips")(_check_cidrs)

    @model_validator(mode="after")
    def _one(self) -> IpStrategy:
        if self.depth == 0 and not self.excluded_ips:
            raise ValueError("ip_strategy needs depth (>= 1) or excluded_ips")
        return self


class IpAllowConfig(ConfigModel):
    allowed_ips: list[str] = Field(min_length=1, description="Allowed addresses and CIDRs (A3S key).")
    ip_strategy: IpStrategy | None = Field(default=None, description="Read the client from X-Forwarded-For.")
    reject_status: int = Field(default=403, ge=400, le=599, description="Status of a refusal.")

    _cidrs = field_validator("allowed_ips")(_check_cidrs)

    @field_validator("ip_strategy", mode="before")
    @classmethod
    def _block(cls, value: Any) -> Any:
        # A repeated-block parse may hand over `[{...}]` for one `ip_strategy {}` block.
        return value[0] if isinstance(value, list) and len(value) == 1 else value


declare("middleware", "ip-allow", config=IpAllowConfig, impl="middlewares.ip_allow")
