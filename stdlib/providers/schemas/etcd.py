"""The `etcd` provider's configuration (its implementation: providers/etcd.py)."""

from __future__ import annotations

from pydantic import Field

from ...base import ConfigModel, Duration
from ...registry import declare


class EtcdConfig(ConfigModel):
    endpoints: list[str] = Field(
        default=["127.0.0.1:2379"],
        min_length=1,
        description="etcd members, `host:port` or a URL (`https://...`); tried in turn.",
    )
    root_key: str = Field(default="a3s", min_length=1, description="The prefix of the configuration's keys.")
    timeout: Duration = Field(default=5.0, gt=0, description="Connecting and reading a range.")


declare("provider", "etcd", config=EtcdConfig, impl="providers.etcd")
