"""The `Recorder` node kinds report events to (runtime/api.py): cold starts and rollbacks.

One per gateway, for its whole life: a kept object (a scaler) built while metrics were off
still reports once a reload turns them on, because the recorder reads the gateway's current
registry at each event (events are rare: no per-request cost).
"""

from __future__ import annotations

from collections.abc import Callable

from .metric_names import ROLLOUT_ROLLBACKS, SCALER_COLD_START_DURATION, SCALER_COLD_STARTS
from .metrics import GatewayMetrics

__all__ = ["MetricsRecorder"]


class MetricsRecorder:
    def __init__(self, current: Callable[[], GatewayMetrics | None]) -> None:
        self._current = current

    def cold_start(self, scaler: str, seconds: float) -> None:
        metrics = self._current()
        if metrics is not None:
            metrics.metric(SCALER_COLD_STARTS).labels(scaler).inc()
            metrics.metric(SCALER_COLD_START_DURATION).labels(scaler).observe(seconds)

    def rollback(self, service: str) -> None:
        metrics = self._current()
        if metrics is not None:
            metrics.metric(ROLLOUT_ROLLBACKS).labels(service).inc()
