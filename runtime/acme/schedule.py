"""When to order a certificate next: pure functions of the certificate's state and `now`.

A certificate is ordered when it is missing, and renewed when ARI's suggested time comes (RFC
9773; the ACME server says when, e.g. early after a mass revocation; asked again as often as
its Retry-After says) or, without ARI, when
`renew_before` of its lifetime is left (1/3: at two thirds of it, as Let's Encrypt advises). A
failed order is retried after `retry_initial`, doubled at each further failure up to
`retry_max`: a persistent failure costs a handful of orders a day, never a tight loop, which
keeps clear of Let's Encrypt's failed-validation limit (5 per name per hour).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

__all__ = ["CertState", "backoff", "next_attempt"]


@dataclass
class CertState:
    """What the manager knows of one certificate of a resolver."""

    names: tuple[str, ...]
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    serial: str | None = None
    renew_at: datetime.datetime | None = None  # ARI's time, or the lifetime fraction's
    # Where the server offers ARI: the served chain, and when to ask ARI about it again (it may
    # move the renewal earlier, e.g. ahead of a mass revocation).
    chain: bytes | None = None
    ari_check: datetime.datetime | None = None
    failures: int = 0
    last_failure: datetime.datetime | None = None
    error: str | None = None
    orders: int = 0  # orders this process completed for it (renewals included)

    @property
    def status(self) -> str:
        if self.not_after is None:
            return "failing" if self.failures else "pending"
        return "failing" if self.failures else "valid"


def backoff(failures: int, initial: float, maximum: float) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1: `initial`)."""
    if failures <= 0:
        return 0.0
    return min(maximum, initial * 2.0 ** min(failures - 1, 60))


def next_attempt(
    state: CertState, now: datetime.datetime, initial: float, maximum: float
) -> datetime.datetime:
    """When to try ordering next (a time at or before `now`: at once)."""
    due = state.renew_at if state.renew_at is not None and state.not_after is not None else now
    if state.failures and state.last_failure is not None:
        retry = state.last_failure + datetime.timedelta(seconds=backoff(state.failures, initial, maximum))
        return max(due, retry)
    return due
