"""Long-lived state of node kinds, keyed by node id and fingerprint, kept across reloads.

Handlers are cheap and rebuilt on every reload; state (token buckets, breakers, upstream pools,
health, demo backends) is not. Building a graph generation goes through a `StateTxn`: every
`obtain(node_id, fingerprint, ...)` returns the live object when the same key was live in the
previous generation, and creates one otherwise. Building never changes a live object: what a
rebuilt node must change in state it shares with the running generation (a service's backend
weights, its health checks, a scaler's limits) is registered with `on_commit(fn)` and applied
by `commit()`, which the gateway calls only once everything that can fail (building, binding
new listeners) has succeeded, right before the swap. `commit()` makes the keys used by the new
generation the live set, runs those hooks, and hands back the keys it no longer uses (removed
nodes, and nodes whose fingerprint changed) as `Retired`; the caller closes them once every
generation that used them has drained, so a request still streaming on an old graph keeps its
pool until it ends. `abort()` (a build that failed) closes only what the transaction created,
runs no hook, and leaves the live set untouched: a failed reload changes nothing.

A key has a `slot` as well, so one node can keep several independent objects (a service's
balancer state and its backend table, say) that share the node's lifetime.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from .api import Closer, KeptState

__all__ = ["Closer", "Retired", "StateKey", "StateStore", "StateTxn"]

StateKey = tuple[str, str, str]
"""(node id, fingerprint, slot)"""

_log = logging.getLogger("a3s_gateway.state")


@dataclass(slots=True, eq=False)
class _Entry:
    key: StateKey
    value: Any
    close: Closer | None


class StateStore:
    """The live state objects of the current generation."""

    def __init__(self) -> None:
        self._live: dict[StateKey, _Entry] = {}

    def begin(self) -> StateTxn:
        """Start building a generation; at most one transaction should be open at a time."""
        return StateTxn(self)

    def get(self, node_id: str, slot: str = "") -> Any:
        """The live state of `node_id` (any fingerprint) or None: for inspection and tests."""
        for (nid, _, s), entry in self._live.items():
            if nid == node_id and s == slot:
                return entry.value
        return None

    def keys(self) -> list[StateKey]:
        return sorted(self._live)

    async def aclose(self) -> None:
        """Close every live object (gateway shutdown)."""
        retired = Retired(list(self._live.values()))
        self._live = {}
        await retired.aclose()


class StateTxn(KeptState):
    """The state used by one generation under construction: the runtime's `KeptState` (the view
    node kinds get, runtime/api.py), plus what the gateway needs to finish or drop it."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._used: dict[StateKey, _Entry] = {}
        self._created: dict[StateKey, _Entry] = {}
        self._hooks: list[Callable[[], object]] = []
        self.reused: set[StateKey] = set()

    def on_commit(self, apply: Callable[[], object]) -> None:
        """Run `apply` at commit (in registration order): the one place a build may change
        state the running generation shares. It must not fail: it runs after the point of no
        return. Without a commit (an aborted build) it never runs."""
        self._hooks.append(apply)

    def obtain(
        self,
        node_id: str,
        fingerprint: str,
        create: Callable[[], Any],
        close: Closer | None = None,
        *,
        slot: str = "",
    ) -> Any:
        """The live object under this key, or a new one from `create()`."""
        key = (node_id, fingerprint, slot)
        entry = self._lookup(key)
        return self._use(entry or self._add(key, create(), close))

    async def aobtain(
        self,
        node_id: str,
        fingerprint: str,
        create: Callable[[], Awaitable[Any]],
        close: Closer | None = None,
        *,
        slot: str = "",
    ) -> Any:
        """`obtain` for objects that need awaiting to come up (a server that must bind first)."""
        key = (node_id, fingerprint, slot)
        entry = self._lookup(key)
        return self._use(entry or self._add(key, await create(), close))

    def _add(self, key: StateKey, value: Any, close: Closer | None) -> _Entry:
        entry = self._created[key] = _Entry(key, value, close)
        return entry

    def _use(self, entry: _Entry) -> Any:
        self._used[entry.key] = entry
        return entry.value

    def _lookup(self, key: StateKey) -> _Entry | None:
        entry = self._used.get(key) or self._created.get(key)
        if entry is None:
            entry = self._store._live.get(key)
            if entry is not None:
                self.reused.add(key)
        return entry

    def commit(self) -> Retired:
        """Make this generation's keys the live set; return what it no longer uses."""
        retired = [e for k, e in self._store._live.items() if k not in self._used]
        self._store._live = dict(self._used)
        hooks, self._hooks = self._hooks, []
        for apply in hooks:
            try:
                apply()
            except Exception:  # a bug: the rest of the commit must still happen
                _log.exception("a reload commit step failed")
        return Retired(retired)

    async def abort(self) -> None:
        """Throw away what this transaction created; the live set is unchanged."""
        self._hooks = []
        await Retired(list(self._created.values())).aclose()


@dataclass(slots=True)
class Retired:
    """State objects a generation no longer uses, waiting to be closed."""

    entries: list[_Entry]

    @property
    def keys(self) -> list[StateKey]:
        return [e.key for e in self.entries]

    async def aclose(self) -> None:
        # Shielded: closing must finish even when the caller is being cancelled (shutdown).
        with anyio.CancelScope(shield=True):
            for entry in self.entries:
                if entry.close is None:
                    continue
                try:
                    await entry.close(entry.value)
                except Exception:
                    _log.exception("closing state of %s failed", entry.key[0])
        self.entries = []
