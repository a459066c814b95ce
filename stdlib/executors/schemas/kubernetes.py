"""The `kubernetes` executor's configuration (its implementation: executors/kubernetes.py)."""

from __future__ import annotations

from typing import Literal

from ...base import ConfigModel, Duration
from ...registry import declare


class KubernetesConfig(ConfigModel):
    deployment: str
    namespace: str | None = None
    service: str | None = None
    port: int | str | None = None
    scheme: Literal["http", "https"] = "http"
    api_server: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    poll_interval: Duration = 2.0
    fast_poll_interval: Duration = 0.5
    timeout: Duration = 10.0


declare("executor", "kubernetes", config=KubernetesConfig, impl="executors.kubernetes", creates_replicas=True)
