"""The `docker` provider's configuration (its implementation: providers/docker.py)."""

from __future__ import annotations

from pydantic import Field

from ...base import ConfigModel, Duration
from ...registry import declare


class DockerProviderConfig(ConfigModel):
    host: str = Field(
        default="unix:///var/run/docker.sock",
        description="The Engine API: `unix:///path` or `http://host:port`.",
    )
    label_prefix: str = Field(
        default="a3s", min_length=1, description="Labels read: `<prefix>.http.routers...`."
    )
    exposed_by_default: bool = Field(
        default=True, description="Serve every container unless `<prefix>.enable=false` (false: only =true)."
    )
    network: str | None = Field(
        default=None, description="The network whose address is used (default: the first)."
    )
    default_rule: str = Field(
        default="Host(`{name}`)",
        description="The rule of a container without router labels; `{name}` is its name.",
    )
    timeout: Duration = Field(default=10.0, gt=0, description="Connecting and reading the container list.")


declare("provider", "docker", config=DockerProviderConfig, impl="providers.docker")
