"""One certificate resolver at work: load what storage has, order what is missing or due, swap.

Its task (started by manager.py in the gateway's task group, cancelled when a reload drops or
changes the resolver) loops: read the storage file (another worker or gateway may have stored a
certificate), install every certificate found in the table, then order the certificates whose
time has come (schedule.py), one at a time, each in a worker thread under the order lock
(lock.py): the lock holder reads storage again first, so a certificate another process has just
stored is picked up, not ordered twice. Then it sleeps until the next certificate is due, or
`rescan` seconds, whichever comes first.

A failure (the ACME server down or refusing, a challenge not validated, a storage file that is
corrupt or cannot be written) never ends the task: it is logged, counted, shown by the health
API, and retried with an exponential backoff. Certificates already served are kept.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from ...compiler.acme import ResolverPlan
from ...compiler.resolvers import AcmeConfig
from .client import AcmeError, Solver, open_account, order_certificate, renewal_time
from .keys import facts
from .lock import LockTimeout, order_lock
from .schedule import CertState, next_attempt
from .storage import StorageError, StoredCertificate, read_storage, write_storage
from .table import CertificateTable

__all__ = ["ResolverRun"]

log = logging.getLogger("a3s_gateway.acme")

# Storage is read again this often, for certificates other processes stored.
RESCAN = 30.0
ORDER_TIMEOUT = 180.0
LOCK_TIMEOUT = 300.0
# ARI asked again after an error (RFC 9773 §4.3.3's default Retry-After).
ARI_RETRY = datetime.timedelta(hours=6)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ResolverRun:
    def __init__(
        self,
        plan: ResolverPlan,
        table: CertificateTable,
        solver: Solver,
        *,
        on_order: Callable[[str, bool], None] = lambda _resolver, _ok: None,
        rescan: float = RESCAN,
        states: dict[tuple[str, ...], CertState] | None = None,
    ) -> None:
        self.plan = plan
        self._table = table
        self._solver = solver
        self._on_order = on_order  # (resolver, succeeded): the metrics' counter
        self._rescan = rescan
        # Kept across a reload that changes the resolver: what was issued stays known.
        old = states or {}
        self.states = {names: old.get(names) or CertState(names) for names in plan.certificates}
        self.storage_error: str | None = None
        self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._load()
            for names, state in list(self.states.items()):
                if state.ari_check is not None and state.ari_check <= _now() and state.chain is not None:
                    await self._ask_ari(state, state.chain)
                if next_attempt(state, _now(), self.acme.retry_initial, self.acme.retry_max) <= _now():
                    await self._order(names, state)
            await self._sleep()

    @property
    def acme(self) -> AcmeConfig:
        return self.plan.acme

    async def _sleep(self) -> None:
        now = _now()
        due = min(
            (
                *(
                    next_attempt(s, now, self.acme.retry_initial, self.acme.retry_max)
                    for s in self.states.values()
                ),
                *(s.ari_check for s in self.states.values() if s.ari_check is not None),
            ),
            default=now + datetime.timedelta(seconds=self._rescan),
        )
        wait = min(max((due - now).total_seconds(), 0.05), self._rescan)
        self._wake = anyio.Event()
        with anyio.move_on_after(wait):
            await self._wake.wait()

    async def _load(self) -> None:
        try:
            stored = await anyio.to_thread.run_sync(read_storage, self.acme.storage)
        except StorageError as exc:
            self._storage_failed(str(exc))
            return
        self.storage_error = None
        for names, state in self.states.items():
            cert = stored.certificate(self.acme.directory, names)
            if cert is not None and cert.chain and self._newer(cert, state):
                await self._install(cert, state, "loaded from storage")

    def _newer(self, cert: StoredCertificate, state: CertState) -> bool:
        try:
            found = facts(cert.chain)
        except ValueError:
            return False
        return found.serial != state.serial and (
            state.not_after is None or found.not_after >= state.not_after
        )

    async def _install(self, cert: StoredCertificate, state: CertState, how: str) -> None:
        found = facts(cert.chain)
        if found.not_after <= _now():
            return  # expired: ordered again, never served
        self._table.install(cert.names, cert.chain, cert.key)
        state.not_before, state.not_after, state.serial = found.not_before, found.not_after, found.serial
        state.renew_at = found.renew_at(self.acme.renew_before)
        await self._ask_ari(state, cert.chain)
        log.info(
            "acme %s: certificate for %s %s (serial %s, valid until %s, renewal at %s)",
            self.plan.name,
            ", ".join(cert.names),
            how,
            found.serial,
            found.not_after.isoformat(),
            state.renew_at.isoformat(),
        )

    async def _ask_ari(self, state: CertState, chain: bytes) -> None:
        """Take ARI's suggested renewal time where the server offers ARI, and note when to ask
        again; without ARI (or on an error: it is advice) the lifetime fraction decides."""
        try:
            found = await anyio.to_thread.run_sync(
                renewal_time, self.acme.directory, self.acme.ca_bundle, chain
            )
        except Exception as exc:
            log.warning("acme %s: ARI not available, asked again in 6 hours: %s", self.plan.name, exc)
            state.chain, state.ari_check = chain, _now() + ARI_RETRY
            return
        if found is None:
            state.chain = state.ari_check = None
            return
        state.renew_at, state.ari_check = found
        state.chain = chain

    async def _order(self, names: tuple[str, ...], state: CertState) -> None:
        if self.storage_error is not None:
            self._failed(state, self.storage_error)
            return
        try:
            # Abandoned on cancel (a shutdown, a reload dropping the resolver): an order in flight
            # cannot be interrupted, and must not hold the shutdown for its timeout.
            cert, note, ordered = await anyio.to_thread.run_sync(
                self._order_sync, names, state.serial, abandon_on_cancel=True
            )
        except (AcmeError, StorageError, LockTimeout, OSError) as exc:
            self._failed(state, str(exc))
            return
        except Exception as exc:  # a DNS provider's or propagation's error, or a bug: never the task's end
            self._failed(state, str(exc) or type(exc).__name__)
            return
        state.failures, state.error, state.last_failure = 0, note, None
        if not ordered:  # another process ordered it while we waited for the lock
            await self._install(cert, state, "picked up from storage")
            return
        state.orders += 1
        self._on_order(self.plan.name, True)
        await self._install(cert, state, "issued" if note is None else f"issued ({note})")

    def _order_sync(
        self, names: tuple[str, ...], serial: str | None
    ) -> tuple[StoredCertificate, str | None, bool]:
        """Under the order lock: the stored certificate if another process renewed it, else a new order."""
        acme = self.acme
        with order_lock(acme.storage, acme.redis_url, LOCK_TIMEOUT):
            stored = read_storage(acme.storage)
            existing = stored.certificate(acme.directory, names)
            if existing is not None and self._fresh(existing, serial):
                return existing, None, False
            account = open_account(
                acme.directory, acme.ca_bundle, stored.accounts.get(acme.directory), acme.email
            )
            if stored.accounts.get(acme.directory) != account.record:
                stored.accounts[acme.directory] = account.record
                write_storage(acme.storage, stored)
            cert = order_certificate(
                account, names, acme.key_type, acme.challenge, self._solver, ORDER_TIMEOUT
            )
            try:
                stored = read_storage(acme.storage)
                stored.put(acme.directory, cert)
                write_storage(acme.storage, stored)
            except StorageError as exc:  # issued all the same: served, and stored at the next order
                return cert, f"not stored: {exc}", True
            return cert, None, True

    def _fresh(self, cert: StoredCertificate, serial: str | None) -> bool:
        """A stored certificate that is not the one being renewed and is not due yet."""
        try:
            found = facts(cert.chain)
        except ValueError:
            return False
        return found.serial != serial and found.renew_at(self.acme.renew_before) > _now()

    def _failed(self, state: CertState, error: str) -> None:
        state.failures += 1
        state.last_failure, state.error = _now(), error
        self._on_order(self.plan.name, False)
        wait = next_attempt(state, _now(), self.acme.retry_initial, self.acme.retry_max) - _now()
        log.error(
            "acme %s: no certificate for %s (failure %d in a row, next try in %.0fs): %s",
            self.plan.name,
            ", ".join(state.names),
            state.failures,
            max(wait.total_seconds(), 0),
            error,
        )

    def _storage_failed(self, error: str) -> None:
        if error != self.storage_error:
            log.error("acme %s: %s (certificates already loaded are kept)", self.plan.name, error)
        self.storage_error = error

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "directory": self.acme.directory,
            "challenge": self.acme.challenge,
            "certificates": [],
        }
        if self.storage_error is not None:
            out["storage_error"] = self.storage_error
        now = _now()
        for state in self.states.values():
            item: dict[str, Any] = {
                "names": list(state.names),
                "status": state.status,
                "orders": state.orders,
            }
            if state.not_after is not None:
                item["not_after"] = state.not_after.isoformat()
                item["serial"] = state.serial
            if state.renew_at is not None:
                item["renew_at"] = state.renew_at.isoformat()
            if state.failures:
                item["failures"] = state.failures
                item["error"] = state.error
                item["next_attempt"] = next_attempt(
                    state, now, self.acme.retry_initial, self.acme.retry_max
                ).isoformat()
            out["certificates"].append(item)
        return out
