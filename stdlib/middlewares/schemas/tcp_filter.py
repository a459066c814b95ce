"""The `tcp-filter` middleware's configuration (its implementation: middlewares/tcp_filter.py)."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from ...base import ConfigModel
from ...registry import declare

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TcpFilterConfig(ConfigModel):
    max_connections: int | None = Field(
        default=None, ge=1, description="Connections open at once (none: no limit)."
    )
    allowed_ips: tuple[str, ...] = Field(
        default=(), alias="tcp_allowed_ips", description="CIDRs or addresses allowed to connect (empty: all)."
    )

    @field_validator("allowed_ips")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)") from None
        return value

    def networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in self.allowed_ips)


declare(
    "middleware",
    "tcp-filter",
    config=TcpFilterConfig,
    impl="middlewares.tcp_filter",
    protocols=frozenset({"tcp"}),
)
