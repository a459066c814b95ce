"""The providers' state series: when each provider last failed, read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .metric_names import PROVIDER_LAST_ERROR
from .metrics import state_gauges

if TYPE_CHECKING:
    from ..providers import ProviderSet

__all__ = ["ProviderCollector"]


class ProviderCollector:
    """`a3s_gateway_provider_last_error_timestamp_seconds{provider}` from the running providers."""

    def __init__(self, providers: Callable[[], ProviderSet | None]) -> None:
        self._providers = providers

    def collect(self) -> Iterator[Any]:
        providers = self._providers()
        errors = providers.last_errors() if providers is not None else []
        yield state_gauges(PROVIDER_LAST_ERROR)(((name,), at) for name, at in errors)
