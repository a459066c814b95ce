"""The `Recorder` node kinds report events to (runtime/api.py): cold starts, rollbacks, and the
LLM layer's requests, fallbacks and Redis errors, the routing services' decisions.

One per gateway, for its whole life: a kept object (a scaler) built while metrics were off
still reports once a reload turns them on, because the recorder reads the gateway's current
registry at each event. Cold starts and rollbacks are rare; an LLM request is not, but it costs
the gateway milliseconds to seconds of upstream time, so a few dictionary lookups per request
are nothing beside it: the label children are cached per registry (`_child`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..api import LlmExchange
from .metric_names import (
    GEN_AI_FALLBACKS,
    GEN_AI_REQUESTS,
    GEN_AI_TIME_PER_OUTPUT_TOKEN,
    GEN_AI_TIME_TO_FIRST_TOKEN,
    GEN_AI_TOKENS,
    LLM_KEYS_FAILED_OPEN,
    LLM_KEYS_REDIS_ERRORS,
    ROLLOUT_ROLLBACKS,
    ROUTING_DECISIONS,
    SCALER_COLD_START_DURATION,
    SCALER_COLD_STARTS,
    Series,
)
from .metrics import GatewayMetrics

__all__ = ["MetricsRecorder"]


class MetricsRecorder:
    def __init__(self, current: Callable[[], GatewayMetrics | None]) -> None:
        self._current = current
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._cached_for: GatewayMetrics | None = None

    def cold_start(self, scaler: str, seconds: float) -> None:
        metrics = self._current()
        if metrics is not None:
            metrics.metric(SCALER_COLD_STARTS).labels(scaler).inc()
            metrics.metric(SCALER_COLD_START_DURATION).labels(scaler).observe(seconds)

    def rollback(self, service: str) -> None:
        metrics = self._current()
        if metrics is not None:
            metrics.metric(ROLLOUT_ROLLBACKS).labels(service).inc()

    def llm_exchange(self, exchange: LlmExchange) -> None:
        metrics = self._current()
        if metrics is None:
            return
        e = exchange
        self._child(metrics, GEN_AI_REQUESTS, e.service, e.model, e.key, str(e.status)).inc()
        if e.input_tokens:
            self._child(metrics, GEN_AI_TOKENS, e.service, e.model, e.key, "input").inc(e.input_tokens)
        if e.output_tokens:
            self._child(metrics, GEN_AI_TOKENS, e.service, e.model, e.key, "output").inc(e.output_tokens)
        if e.time_to_first_token is not None:
            self._child(metrics, GEN_AI_TIME_TO_FIRST_TOKEN, e.service, e.model).observe(
                e.time_to_first_token
            )
        if e.time_per_output_token is not None:
            self._child(metrics, GEN_AI_TIME_PER_OUTPUT_TOKEN, e.service, e.model).observe(
                e.time_per_output_token
            )

    def llm_fallback(self, service: str, model: str) -> None:
        metrics = self._current()
        if metrics is not None:
            self._child(metrics, GEN_AI_FALLBACKS, service, model).inc()

    def llm_store_error(self, middleware: str, failed_open: bool) -> None:
        metrics = self._current()
        if metrics is not None:
            series = LLM_KEYS_FAILED_OPEN if failed_open else LLM_KEYS_REDIS_ERRORS
            self._child(metrics, series, middleware).inc()

    def routing_decision(self, service: str, target: str, reason: str) -> None:
        metrics = self._current()
        if metrics is not None:
            self._child(metrics, ROUTING_DECISIONS, service, target, reason).inc()

    def _child(self, metrics: GatewayMetrics, series: Series, *labels: str) -> Any:
        """The label child of `series`, made once per registry (a reload may build a new one)."""
        if metrics is not self._cached_for:
            self._children.clear()
            self._cached_for = metrics
        key = (series.name, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metrics.metric(series).labels(*labels)
        return child
