"""The gateway's ACME work: one `ResolverRun` task per resolver that has certificates to get.

The manager lives as long as the gateway, so what it holds outlives reloads: the certificate
table (the live SSL contexts handshakes switch to), the HTTP-01 tokens, and each resolver's
certificate states. A reload gives it the new plan (compiler/acme.py) at commit: resolvers
whose plan is unchanged keep running untouched; changed ones are restarted with the states of
the certificates they still want (an issued certificate is never ordered again because of a
reload); dropped ones stop. Starting and stopping tasks cannot fail, so the commit cannot either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

from ...compiler.acme import ResolverPlan
from .dns01 import dns_hook
from .keys import alpn_challenge_certificate
from .resolver import ResolverRun
from .solvers import BOARD_POLL, Board, ChallengeSolver, HttpTokens
from .table import CertificateTable

__all__ = ["AcmeManager"]

log = logging.getLogger("a3s_gateway.acme")


class AcmeManager:
    def __init__(self, *, workers: bool = False, dns: Callable[[ResolverPlan], Any] = dns_hook) -> None:
        self.table = CertificateTable()
        self.tokens = HttpTokens()
        # With `run --workers N` answers go through the board (solvers.py) too.
        self._workers = workers
        # Makes a resolver's DNS-01 hook from its plan (a stdlib/resolvers/ provider).
        self._dns = dns
        self._runs: dict[str, tuple[ResolverRun, anyio.CancelScope]] = {}
        # (resolver, "success" | "failure") -> orders this process finished: acme_orders_total.
        self.orders: dict[tuple[str, str], int] = {}
        self._board_watch: anyio.CancelScope | None = None

    def apply(self, plans: tuple[ResolverPlan, ...], tg: anyio.abc.TaskGroup) -> None:
        """Run `plans` from now on (part of a reload's commit: cannot fail)."""
        wanted = {p.name: p for p in plans}
        for name in list(self._runs):
            run, scope = self._runs[name]
            if wanted.get(name) != run.plan:
                scope.cancel()
                del self._runs[name]
                states = run.states
                if name in wanted:
                    self._start(wanted[name], tg, states)
        for name, plan in wanted.items():
            if name not in self._runs:
                self._start(plan, tg, {})
        self.tokens.boards = {Board(p.acme.storage) for p in plans} if self._workers else set()
        if self._workers and self._board_watch is None and plans:
            self._board_watch = anyio.CancelScope()
            tg.start_soon(self._watch_boards, self._board_watch)

    def _start(self, plan: ResolverPlan, tg: anyio.abc.TaskGroup, states: dict[Any, Any]) -> None:
        dns = self._dns(plan) if plan.acme.dns_challenge is not None else None
        solver = ChallengeSolver(self.tokens, self.table, Board(plan.acme.storage), dns, share=self._workers)
        run = ResolverRun(plan, self.table, solver, on_order=self._count, states=states)
        scope = anyio.CancelScope()
        self._runs[plan.name] = (run, scope)

        async def go() -> None:
            with scope:
                await run.run()

        tg.start_soon(go)

    def _count(self, resolver: str, ok: bool) -> None:
        key = (resolver, "success" if ok else "failure")
        self.orders[key] = self.orders.get(key, 0) + 1

    async def _watch_boards(self, scope: anyio.CancelScope) -> None:
        """Workers: serve the TLS-ALPN-01 answers another worker is ordering with."""
        mirrored: dict[str, str] = {}
        with scope:
            while True:
                pending: dict[str, str] = {}
                for board in list(self.tokens.boards):
                    pending.update(await anyio.to_thread.run_sync(board.pending, "tls-alpn-01"))
                for domain, key_authorization in pending.items():
                    if mirrored.get(domain) != key_authorization and domain not in self.table.challenges:
                        self.table.add_challenge(
                            domain, *alpn_challenge_certificate(domain, key_authorization)
                        )
                        mirrored[domain] = key_authorization
                for domain in [d for d in mirrored if d not in pending]:
                    self.table.remove_challenge(domain)
                    del mirrored[domain]
                await anyio.sleep(BOARD_POLL)

    def stop(self) -> None:
        for _run, scope in self._runs.values():
            scope.cancel()
        self._runs.clear()
        if self._board_watch is not None:
            self._board_watch.cancel()
            self._board_watch = None

    def status(self) -> dict[str, Any]:
        """The health API's view: every resolver's certificates, their state and last error."""
        return {name: run.status() for name, (run, _scope) in sorted(self._runs.items())}

    def runs(self) -> list[ResolverRun]:
        return [run for run, _scope in self._runs.values()]
