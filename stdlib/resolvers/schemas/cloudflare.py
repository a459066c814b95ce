"""The `cloudflare` DNS-01 provider's configuration (its implementation: resolvers/cloudflare.py)."""

from __future__ import annotations

from pydantic import Field

from ....compiler.model import SECRET
from ...base import ConfigModel
from ...registry import declare


class CloudflareConfig(ConfigModel):
    api_token: str = Field(
        description="An API token with Zone:DNS:Edit on the zone (not the global API key).",
        json_schema_extra=SECRET,
    )
    zone_id: str | None = Field(default=None, description="The zone's id; found by name when not given.")
    api_url: str = Field(default="https://api.cloudflare.com/client/v4", description="The API's base URL.")
    ttl: int = Field(default=120, ge=60, description="The TXT record's TTL in seconds.")


declare("dns_provider", "cloudflare", config=CloudflareConfig, impl="resolvers.cloudflare")
