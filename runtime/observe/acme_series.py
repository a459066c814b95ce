"""The ACME series, read from the gateway's ACME manager when scraped: each certificate's expiry
and failures in a row, and the orders finished by result (runtime/acme/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .metric_names import ACME_CERTIFICATE_FAILURES, ACME_CERTIFICATE_NOT_AFTER, ACME_ORDERS
from .metrics import state_counters, state_gauges

if TYPE_CHECKING:
    from ..acme import AcmeManager

__all__ = ["AcmeCollector"]


class AcmeCollector:
    def __init__(self, manager: Callable[[], AcmeManager | None]) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Any]:
        manager = self._manager()
        # Without resolvers the families are exported empty, as every other series is.
        runs = manager.runs() if manager is not None else []
        orders = sorted(manager.orders.items()) if manager is not None else []
        states = [(run.plan.name, state) for run in runs for state in run.states.values()]
        yield state_gauges(ACME_CERTIFICATE_NOT_AFTER)(
            ((name, ",".join(s.names)), s.not_after.timestamp())
            for name, s in states
            if s.not_after is not None
        )
        yield state_gauges(ACME_CERTIFICATE_FAILURES)(
            ((name, ",".join(s.names)), float(s.failures)) for name, s in states
        )
        yield state_counters(ACME_ORDERS)(((r, result), float(n)) for (r, result), n in orders)
