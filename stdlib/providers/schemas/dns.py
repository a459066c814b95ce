"""The `dns` provider's configuration (its implementation: providers/dns.py)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ...base import ConfigModel, Duration
from ...registry import declare


class DnsServer(ConfigModel):
    """One server of a dns service: a URL whose host is re-resolved, or an SRV name."""

    url: str | None = Field(
        default=None, description="`http://llm.internal:8000`: one backend per A/AAAA address."
    )
    srv: str | None = Field(
        default=None, description="`_http._tcp.llm.internal`: one backend per target address, on its port."
    )
    scheme: Literal["http", "https"] = Field(default="http", description="SRV servers: the backends' scheme.")
    weight: int = Field(
        default=1, ge=0, description="URL servers: each address's weight (SRV: the record's)."
    )

    @model_validator(mode="after")
    def _one(self) -> DnsServer:
        if (self.url is None) == (self.srv is None):
            raise ValueError("a dns server needs exactly one of url or srv")
        # Each key acts for one form only: set on the other it would be read and then ignored.
        if self.url is not None and "scheme" in self.model_fields_set:
            raise ValueError("scheme is for srv servers: a url server's scheme is its url's")
        if self.srv is not None and "weight" in self.model_fields_set:
            raise ValueError("weight is for url servers: an srv server's weights are its records'")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"url must be http(s)://host[:port], got {self.url!r}")
        return self


class DnsService(ConfigModel):
    """A service whose servers come from DNS; the other keys go to its load_balancer as written."""

    servers: list[DnsServer] = Field(min_length=1)
    strategy: str | None = None
    health_check: dict[str, Any] | None = None
    passive_health: dict[str, Any] | None = None
    pass_host_header: bool | None = None


class DnsProviderConfig(ConfigModel):
    resolvers: list[str] = Field(
        default=[],
        description='Nameservers, "host:port" (default port 53); empty: the system\'s (resolv.conf).',
    )
    min_ttl: Duration = Field(
        default=5.0, gt=0, description="Re-resolve no sooner than this, whatever the TTL."
    )
    max_ttl: Duration = Field(default=300.0, gt=0, description="Re-resolve at least this often.")
    timeout: Duration = Field(default=5.0, gt=0, description="How long one lookup may take (all resolvers).")
    max_records: int = Field(
        default=1000, ge=1, description="An answer with more records than this is refused (a diagnostic)."
    )
    services: dict[str, DnsService] = Field(
        min_length=1, description="The services to resolve, by name (`llm` is `llm@dns` elsewhere)."
    )

    @field_validator("max_ttl")
    @classmethod
    def _bounds(cls, value: float, info: Any) -> float:
        if value < info.data.get("min_ttl", 0):
            raise ValueError("max_ttl must not be below min_ttl")
        return value


declare("provider", "dns", config=DnsProviderConfig, impl="providers.dns")
