"""The `route53` DNS-01 provider's configuration (its implementation: resolvers/route53.py)."""

from __future__ import annotations

from pydantic import Field

from ....compiler.model import SECRET
from ...base import ConfigModel
from ...registry import declare


class Route53Config(ConfigModel):
    access_key_id: str = Field(description="The IAM access key id.")
    secret_access_key: str = Field(description="The IAM secret access key.", json_schema_extra=SECRET)
    session_token: str | None = Field(
        default=None,
        description="With temporary credentials: the STS session token.",
        json_schema_extra=SECRET,
    )
    hosted_zone_id: str = Field(description='The hosted zone, e.g. "Z0123456789ABCDEFGHIJ".')
    region: str = Field(default="us-east-1", description="The region requests are signed for.")
    endpoint: str = Field(default="https://route53.amazonaws.com", description="The API's base URL.")
    ttl: int = Field(default=60, ge=1, description="The TXT record's TTL in seconds.")


declare("dns_provider", "route53", config=Route53Config, impl="resolvers.route53")
