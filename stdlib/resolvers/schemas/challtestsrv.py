"""The `challtestsrv` DNS-01 provider's configuration (its implementation: resolvers/challtestsrv.py)."""

from __future__ import annotations

from pydantic import Field

from ...base import ConfigModel
from ...registry import declare


class ChalltestsrvConfig(ConfigModel):
    management_url: str = Field(
        default="http://127.0.0.1:8055", description="pebble-challtestsrv's management API."
    )


declare("dns_provider", "challtestsrv", config=ChalltestsrvConfig, impl="resolvers.challtestsrv")
