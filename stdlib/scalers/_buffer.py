"""The cold-start buffer: Knative's activator queue, in front of a scaled service.

A request that finds a ready replica with a free slot goes straight through (`try_acquire`).
Otherwise it waits here until a replica can take it: highest priority class first (the
`priority` middleware's, stdlib/common/priority.py), in arrival order within a class:

* **Bounded.** At most `max_requests` wait, and their bodies together take at most `max_bytes`.
  A waiting request's body is read into the buffer while it waits (so a client is never stuck
  half-way through an upload and HTTP/2 flow control keeps moving); a body that does not fit the
  remaining budget, or a full queue, is answered at once with `BufferFull` (503 + Retry-After).
* **Timed.** A request that waits `timeout` seconds gets `BufferTimeout` (503 + Retry-After).
  Only the waiter gives up: the replica that is loading keeps loading, because the buffer never
  tells the scaler anything on a timeout (`ready_timeout` of the executor governs the load,
  `buffer_timeout` only the wait).
* **Single-flight activation.** The first request that has to wait calls `on_demand()` (the
  scaler's poke); the requests that queue after it do not, until capacity arrives or the queue
  drains. However many wait, one scale-up is asked for; the autoscaler sizes it from the
  concurrency, which counts the queued requests.
* **container_concurrency** is a hard cap of requests per replica (0: none). Overflow waits in the
  same queue, in the same order, and counts toward scale-up like a cold start does.
* **Refused demand is demand.** With `buffer_enabled = false` a request that finds no free slot
  is answered 503 at once (`refuse()`), yet it pokes the scaler and counts as one concurrent
  request in the next autoscaler sample, as Knative's activator reports a request it holds
  (concurrency 1 at once). Otherwise a cold unit that refuses its traffic would observe a
  concurrency of 0 and never scale up from zero.

Leases are the accounting: a granted request holds one slot of one replica until
`Lease.release()` (when its response body has ended). The buffer keeps a time-weighted meter of
in-flight plus queued requests, which the autoscaler samples (`take_concurrency`). Deadlines come
from the injected clock, so `expire(now)` times out waiters deterministically in tests; in
production a real-time cancel scope per waiter fires at the same instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import count

import anyio

from ...runtime.api import BodyStream
from ...runtime.clock import SYSTEM_CLOCK, Clock
from ...runtime.errors import BufferFull, BufferTimeout, GatewayError, ServiceUnavailable
from ..common.priority import ClassQueue, Priority
from ._window import ConcurrencyMeter

__all__ = ["Admission", "BufferStatistics", "ColdStartBuffer", "Lease", "Picker", "Ticket"]

Picker = Callable[[Sequence[str]], str]
"""Chooses one replica URL among those with a free slot (the service's balancer)."""


class Lease:
    """One slot of one replica, held until `release()` (idempotent)."""

    __slots__ = ("_buffer", "replica", "waited")

    def __init__(self, buffer: ColdStartBuffer, replica: str, waited: float) -> None:
        self._buffer: ColdStartBuffer | None = buffer
        self.replica = replica
        self.waited = waited

    def release(self) -> None:
        buffer, self._buffer = self._buffer, None
        if buffer is not None:
            buffer._release(self.replica)

    @property
    def released(self) -> bool:
        return self._buffer is None


@dataclass(slots=True)
class Admission:
    """A granted request: its lease and, when it had to wait, the body read meanwhile."""

    lease: Lease
    # None: the request did not wait and its body is still unread (stream it as it comes).
    body: bytes | None = None

    @property
    def waited(self) -> float:
        return self.lease.waited


@dataclass(frozen=True, slots=True)
class BufferStatistics:
    queued: int
    queued_bytes: int
    in_flight: int
    replicas: int
    activations: int
    admitted_after_wait: int
    timeouts: int
    rejected_full: int
    # Answered 503 at once because the buffer is off (`buffer_enabled = false`), counted as demand.
    refused: int


class Ticket:
    """A place in the queue: `await wait()` until admitted, `cancel()` to give it up.

    `acquire` is `try_acquire` or a ticket waited on in one go. A caller that must do something
    while it waits (an SSE keepalive) waits in slices with `wait(max_wait=...)`, which returns
    None when the slice ends first, leaving the ticket in its place.
    """

    __slots__ = (
        "_buffer", "arrived", "body_done", "data", "deadline", "error", "event", "finished", "lease",
        "pick", "reserved", "rt_deadline", "scope",
    )  # fmt: skip

    def __init__(
        self, buffer: ColdStartBuffer, pick: Picker | None, reserved: int, arrived: float | None = None
    ) -> None:
        self._buffer = buffer
        now = buffer.clock.now()
        self.arrived = now if arrived is None else arrived
        # The deadline on the injected clock (for `expire`) and on anyio's (for the cancel scope).
        self.deadline = self.arrived + buffer.timeout
        self.rt_deadline = anyio.current_time() + (self.deadline - now)
        self.pick = pick
        self.reserved = reserved
        self.event = anyio.Event()
        self.lease: Lease | None = None
        self.error: GatewayError | None = None
        self.scope: anyio.CancelScope | None = None
        self.data: bytes | None = None
        self.body_done = False
        self.finished = False

    async def wait(
        self, body: BodyStream | None = None, *, max_wait: float | None = None
    ) -> Admission | None:
        """Read `body` into the buffer (once), then wait to be admitted.

        Returns the admission, or None when `max_wait` ran out first (the ticket keeps its place).
        Raises `BufferTimeout`, `BufferFull` (the body did not fit) or `ServiceUnavailable`.
        """
        buffer = self._buffer
        try:
            with anyio.CancelScope(deadline=self.rt_deadline) as scope:
                self.scope = scope
                if body is not None and not self.body_done:
                    self.data = await buffer._read_body(self, body)
                self.body_done = True
                if max_wait is None:
                    await self.event.wait()
                else:
                    with anyio.move_on_after(max_wait):
                        await self.event.wait()
                    if not self.event.is_set():
                        return None
        except BaseException:
            self.cancel()
            raise
        finally:
            self.scope = None
        lease = self.lease
        if lease is None or not self.body_done:
            error = self.error or buffer._timed_out()
            self.cancel()
            raise error
        self.finished = True
        buffer._admitted_after_wait += 1
        buffer._leave(self)
        return Admission(lease, self.data)

    def cancel(self) -> None:
        """Leave the queue (idempotent); a lease granted but not taken goes back."""
        if self.finished:
            return
        self.finished = True
        if self.lease is not None:
            self.lease.release()
        self._buffer._leave(self)


class ColdStartBuffer:
    def __init__(
        self,
        *,
        max_requests: int,
        max_bytes: int,
        timeout: float,
        container_concurrency: int = 0,
        on_demand: Callable[[], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        retry_after: float = 1.0,
    ) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.container_concurrency = container_concurrency
        self.on_demand = on_demand
        self.clock = clock
        self.retry_after = retry_after
        # Ready replicas and their leases; leases on replicas that left rotation are still counted.
        self._load: dict[str, int] = {}
        self._leases: dict[str, int] = {}
        self._idle: dict[str, list[anyio.Event]] = {}
        self._waiters: ClassQueue[Ticket] = ClassQueue()
        self._reserved = 0
        self._in_flight = 0
        self._demand_pending = False
        # Requests refused since the autoscaler's last sample (each counts as one in it).
        self._refused_unsampled = 0
        self._closed = False
        self._rotate = count()
        self.meter = ConcurrencyMeter(clock.now())
        self._activations = self._admitted_after_wait = self._timeouts = self._rejected = 0
        self._refused = 0
        # A cold start: since when a request has waited with no replica ready (None: none), and
        # who hears how long it took once one is (the scaler: the metrics' histogram).
        self._cold_since: float | None = None
        self.on_cold_start: Callable[[float], None] | None = None

    # ------------------------------------------------------------------ replicas

    @property
    def replicas(self) -> list[str]:
        return list(self._load)

    def set_replicas(self, urls: Iterable[str]) -> None:
        """The ready replicas changed: keep the counts of those that stay, grant waiters."""
        before = self._capacity()
        self._load = {url: self._leases.get(url, 0) for url in dict.fromkeys(urls)}
        if self._load and self._cold_since is not None:
            started, self._cold_since = self._cold_since, None
            if self.on_cold_start is not None:
                self.on_cold_start(self.clock.now() - started)
        if self._capacity() > before:
            self._demand_pending = False
        self._dispatch()

    def _capacity(self) -> float:
        if self.container_concurrency <= 0:
            return math.inf if self._load else 0
        return float(self.container_concurrency * len(self._load))

    def _free(self) -> list[str]:
        cc = self.container_concurrency
        return [url for url, n in self._load.items() if cc <= 0 or n < cc]

    def _choose(self, candidates: list[str], pick: Picker | None) -> str:
        if pick is not None:
            return pick(candidates)
        # Least loaded; ties rotate so an idle pool is used round-robin.
        low = min(self._load[c] for c in candidates)
        tied = [c for c in candidates if self._load[c] == low]
        return tied[next(self._rotate) % len(tied)]

    def in_flight_on(self, replica: str) -> int:
        return self._leases.get(replica, 0)

    async def wait_idle(self, replica: str) -> None:
        """Return once `replica` has no request in flight (to drain it before it stops)."""
        while self._leases.get(replica, 0) > 0:
            event = anyio.Event()
            self._idle.setdefault(replica, []).append(event)
            await event.wait()

    # ------------------------------------------------------------------ admission

    def try_acquire(self, pick: Picker | None = None) -> Lease | None:
        """A lease at once when nobody waits and a replica has a free slot; None otherwise."""
        if self._closed or self._waiters:
            return None
        free = self._free()
        return self._grant(self._choose(free, pick), 0.0) if free else None

    async def acquire(
        self, body: BodyStream | None = None, content_length: int | None = None, *, pick: Picker | None = None
    ) -> Admission:
        """Admit a request, waiting in the queue when no replica can take it now.

        Raises `BufferFull` at once when there is no room, `BufferTimeout` after `timeout`, and
        `ServiceUnavailable` when the buffer is closed while the request waits.
        """
        lease = self.try_acquire(pick)
        if lease is not None:
            return Admission(lease)
        admission = await self.enqueue(content_length, pick).wait(body)
        assert admission is not None
        return admission

    def enqueue(
        self,
        content_length: int | None = None,
        pick: Picker | None = None,
        arrived: float | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> Ticket:
        """Take a place at the end of the line of `priority` (or raise `BufferFull` /
        `ServiceUnavailable`); the lines are served highest class first.

        `arrived` is when the request first queued, for one that queues again (its replica left
        rotation before it could connect): it keeps its first deadline, so a request waits at most
        `timeout` in all, and its `waited` counts both waits.
        """
        if self._closed:
            raise ServiceUnavailable("the service is shutting down", headers=self._retry())
        reserve = content_length or 0
        if len(self._waiters) >= self.max_requests:
            self._rejected += 1
            raise BufferFull(
                f"{len(self._waiters)} requests already wait for a replica", headers=self._retry()
            )
        if self._reserved + reserve > self.max_bytes:
            self._rejected += 1
            raise BufferFull("the request body does not fit in the cold-start buffer", headers=self._retry())
        ticket = Ticket(self, pick, reserve, arrived)
        if not self._load and self._cold_since is None:
            self._cold_since = ticket.arrived
        self._reserved += reserve
        self._waiters.append(ticket, priority)
        self._metered()
        self.demand()
        return ticket

    def refuse(self) -> None:
        """A request is answered 503 instead of waiting (`buffer_enabled = false`): count it as
        demand, so the autoscaler sees it and scales up (see the module docstring)."""
        self._refused += 1
        self._refused_unsampled += 1
        self.demand()

    def demand(self) -> None:
        """Ask for capacity once per episode (single flight): the scaler's poke."""
        if self._demand_pending:
            return
        self._demand_pending = True
        self._activations += 1
        if self.on_demand is not None:
            self.on_demand()

    async def _read_body(self, ticket: Ticket, body: BodyStream) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in body:
            size += len(chunk)
            if size > ticket.reserved:
                grow = size - ticket.reserved
                if self._reserved + grow > self.max_bytes:
                    self._rejected += 1
                    raise BufferFull(
                        "the request body does not fit in the cold-start buffer", headers=self._retry()
                    )
                self._reserved += grow
                ticket.reserved += grow
            chunks.append(chunk)
        return b"".join(chunks)

    def _leave(self, ticket: Ticket) -> None:
        """A ticket is done (admitted, failed, or its client went away): free what it held."""
        self._reserved -= ticket.reserved
        ticket.reserved = 0
        self._waiters.remove(ticket)
        if not self._waiters:
            self._demand_pending = False
        self._metered()
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiters and not self._closed:
            free = self._free()
            if not free:
                return
            ticket = self._waiters.popleft()
            ticket.lease = self._grant(self._choose(free, ticket.pick), self.clock.now() - ticket.arrived)
            ticket.event.set()

    def _grant(self, replica: str, waited: float) -> Lease:
        self._load[replica] += 1
        self._leases[replica] = self._leases.get(replica, 0) + 1
        self._in_flight += 1
        self._metered()
        return Lease(self, replica, waited)

    def _release(self, replica: str) -> None:
        self._in_flight -= 1
        left = self._leases.get(replica, 1) - 1
        if left > 0:
            self._leases[replica] = left
        else:
            self._leases.pop(replica, None)
            for event in self._idle.pop(replica, []):
                event.set()
        if replica in self._load:
            self._load[replica] -= 1
        self._metered()
        self._dispatch()

    # ------------------------------------------------------------------ time

    def expire(self, now: float) -> int:
        """Time out every waiting ticket whose deadline (on the injected clock) has passed."""
        late = [t for t in self._waiters if t.deadline <= now]
        for ticket in late:
            self._fail(ticket, self._timed_out())
        return len(late)

    def _timed_out(self) -> BufferTimeout:
        self._timeouts += 1
        return BufferTimeout(f"no replica became ready within {self.timeout:g}s", headers=self._retry())

    def _fail(self, ticket: Ticket, error: GatewayError) -> None:
        if ticket.lease is not None or ticket.error is not None:
            return
        ticket.error = error
        self._waiters.remove(ticket)
        self._metered()
        ticket.event.set()
        if ticket.scope is not None:
            ticket.scope.cancel()

    def _retry(self) -> list[tuple[str, str]]:
        return [("retry-after", str(max(1, math.ceil(self.retry_after))))]

    def close(self) -> None:
        """Fail every waiter (503) and refuse new ones: the service is going away."""
        self._closed = True
        for ticket in list(self._waiters):
            self._fail(ticket, ServiceUnavailable("the service is shutting down", headers=self._retry()))
        self._waiters.clear()
        self._metered()

    # ------------------------------------------------------------------ observation

    def concurrency(self) -> int:
        """Requests in flight on replicas plus requests waiting here (what the KPA scales on),
        plus those refused since the last sample."""
        return self._in_flight + len(self._waiters) + self._refused_unsampled

    def take_concurrency(self, now: float) -> float:
        """The time-weighted concurrency since the previous call (one autoscaler sample), plus
        one for each request refused meanwhile: a refusal takes no time, yet it is demand."""
        refused, self._refused_unsampled = self._refused_unsampled, 0
        return self.meter.take(now) + refused

    def _metered(self) -> None:
        self.meter.set(self.clock.now(), self._in_flight + len(self._waiters))

    def load(self) -> dict[str, int]:
        return dict(self._load)

    def statistics(self) -> BufferStatistics:
        return BufferStatistics(
            queued=len(self._waiters),
            queued_bytes=self._reserved,
            in_flight=self._in_flight,
            replicas=len(self._load),
            activations=self._activations,
            admitted_after_wait=self._admitted_after_wait,
            timeouts=self._timeouts,
            rejected_full=self._rejected,
            refused=self._refused,
        )
