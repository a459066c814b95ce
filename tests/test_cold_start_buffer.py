"""The cold-start buffer: bounded, ordered, timed, single-flight; clock-driven timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.errors import BufferFull, BufferTimeout, ServiceUnavailable
from a3s_gateway.stdlib.common.priority import Priority
from a3s_gateway.stdlib.scalers import Admission, ColdStartBuffer

from .stubs import eventually

pytestmark = pytest.mark.anyio


def make(clock: ManualClock | None = None, **kw: object) -> tuple[ColdStartBuffer, list[int]]:
    pokes: list[int] = []
    options: dict[str, object] = {"max_requests": 10, "max_bytes": 1000, "timeout": 60.0}
    options.update(kw)
    buf = ColdStartBuffer(
        on_demand=lambda: pokes.append(1),
        clock=clock or ManualClock(),
        **options,  # type: ignore[arg-type]
    )
    return buf, pokes


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_fast_path_when_a_replica_has_room(anyio_backend: object) -> None:
    buf, pokes = make()
    buf.set_replicas(["http://a"])
    admission = await buf.acquire(chunks(b"x"))
    assert admission.lease.replica == "http://a" and admission.body is None and admission.waited == 0
    assert buf.concurrency() == 1 and not pokes
    admission.lease.release()
    admission.lease.release()  # idempotent
    assert buf.concurrency() == 0


async def test_waiters_are_admitted_in_arrival_order_with_one_activation(anyio_backend: object) -> None:
    clock = ManualClock()
    buf, pokes = make(clock, container_concurrency=1)
    order: list[int] = []

    async def client(i: int) -> None:
        admission = await buf.acquire()
        order.append(i)
        await anyio.sleep(0.001)
        admission.lease.release()

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(client, i)
            await eventually(lambda i=i: buf.statistics().queued == i + 1)
        assert pokes == [1], "one scale-up request however many wait"
        assert buf.concurrency() == 8
        clock.advance(2.0)
        buf.set_replicas(["http://a"])
    assert order == list(range(8))
    stats = buf.statistics()
    assert stats.admitted_after_wait == 8 and stats.activations == 1 and stats.in_flight == 0


async def test_waiters_are_admitted_by_priority_class_then_in_arrival_order(anyio_backend: object) -> None:
    buf, _ = make(container_concurrency=1)
    order: list[str] = []
    classes = [
        ("be", Priority.BEST_EFFORT), ("n1", Priority.NORMAL), ("c1", Priority.CRITICAL),
        ("n2", Priority.NORMAL), ("h", Priority.HIGH), ("c2", Priority.CRITICAL),
    ]  # fmt: skip

    async def client(name: str, priority: Priority) -> None:
        admission = await buf.enqueue(priority=priority).wait()
        assert admission is not None
        order.append(name)
        admission.lease.release()

    async with anyio.create_task_group() as tg:
        for queued, (name, priority) in enumerate(classes, start=1):
            tg.start_soon(client, name, priority)
            await eventually(lambda n=queued: buf.statistics().queued == n)  # type: ignore[misc]
        buf.set_replicas(["http://a"])
    assert order == ["c1", "c2", "h", "n1", "n2", "be"]


async def test_container_concurrency_caps_each_replica(anyio_backend: object) -> None:
    buf, pokes = make(container_concurrency=2)
    buf.set_replicas(["http://a", "http://b"])
    leases = [buf.try_acquire() for _ in range(4)]
    assert all(lease is not None for lease in leases)
    assert buf.load() == {"http://a": 2, "http://b": 2}
    assert buf.try_acquire() is None
    got: list[Admission] = []

    async def overflow() -> None:
        got.append(await buf.acquire())

    async with anyio.create_task_group() as tg:
        tg.start_soon(overflow)
        await eventually(lambda: buf.statistics().queued == 1)
        assert pokes == [1] and buf.concurrency() == 5  # overflow counts toward scale-up
        lease = leases[1]
        assert lease is not None
        lease.release()
    assert got[0].lease.replica == lease.replica


async def test_full_queue_answers_503_at_once(anyio_backend: object) -> None:
    buf, _ = make(max_requests=2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(buf.acquire)
        tg.start_soon(buf.acquire)
        await eventually(lambda: buf.statistics().queued == 2)
        with pytest.raises(BufferFull) as info:
            await buf.acquire()
        assert info.value.status == 503 and ("retry-after", "1") in info.value.headers
        buf.set_replicas(["http://a"])
    assert buf.statistics().rejected_full == 1


async def test_bodies_are_buffered_within_the_byte_budget(anyio_backend: object) -> None:
    buf, _ = make(max_bytes=10)
    got: list[Admission] = []

    async def one() -> None:
        got.append(await buf.acquire(chunks(b"hello", b" you"), content_length=9))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        await eventually(lambda: buf.statistics().queued_bytes == 9)
        with pytest.raises(BufferFull):  # declared length over the remaining budget
            await buf.acquire(chunks(b"xx"), content_length=2)
        buf.set_replicas(["http://a"])
    assert got[0].body == b"hello you"
    assert buf.statistics().queued_bytes == 0
    got[0].lease.release()


async def test_a_streamed_body_over_budget_is_refused(anyio_backend: object) -> None:
    buf, _ = make(max_bytes=8)
    with pytest.raises(BufferFull):
        await buf.acquire(chunks(b"12345", b"67890"))
    stats = buf.statistics()
    assert stats.queued == 0 and stats.queued_bytes == 0


async def test_timeouts_on_the_injected_clock(anyio_backend: object) -> None:
    clock = ManualClock()
    buf, pokes = make(clock, timeout=1.0, retry_after=3)
    errors: list[BaseException] = []

    async def waiter() -> None:
        try:
            await buf.acquire()
        except BufferTimeout as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(waiter)
            await eventually(lambda i=i: buf.statistics().queued == i + 1)
        clock.advance(0.5)
        assert buf.expire(clock.now()) == 0
        clock.advance(0.6)
        assert buf.expire(clock.now()) == 5
    assert len(errors) == 5
    assert all(e.status == 503 and ("retry-after", "3") in e.headers for e in errors)  # type: ignore[attr-defined]
    assert pokes == [1], "a timeout never cancels or repeats the activation"
    assert buf.statistics().timeouts == 5 and buf.concurrency() == 0


async def test_real_time_timeout_nothing_hangs(anyio_backend: object) -> None:
    buf = ColdStartBuffer(max_requests=100, max_bytes=100, timeout=0.05)
    results: list[int] = []

    async def waiter() -> None:
        try:
            await buf.acquire()
        except BufferTimeout as exc:
            results.append(exc.status)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(waiter)
    assert results == [503] * 50


async def test_a_client_that_goes_away_leaves_the_queue(anyio_backend: object) -> None:
    buf, pokes = make()
    async with anyio.create_task_group() as tg:
        tg.start_soon(buf.acquire)
        await eventually(lambda: buf.statistics().queued == 1)
        tg.cancel_scope.cancel()
    assert buf.statistics().queued == 0 and buf.concurrency() == 0
    buf.set_replicas(["http://a"])
    assert buf.load() == {"http://a": 0}
    # The next cold episode pokes again.
    buf.set_replicas([])
    async with anyio.create_task_group() as tg:
        tg.start_soon(buf.acquire)
        await eventually(lambda: buf.statistics().queued == 1)
        tg.cancel_scope.cancel()
    assert len(pokes) == 2


async def test_close_fails_the_waiters(anyio_backend: object) -> None:
    buf, _ = make()
    errors: list[int] = []

    async def waiter() -> None:
        try:
            await buf.acquire()
        except ServiceUnavailable as exc:
            errors.append(exc.status)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(waiter)
        await eventually(lambda: buf.statistics().queued == 2)
        buf.close()
    assert errors == [503, 503]
    with pytest.raises(ServiceUnavailable):
        await buf.acquire()


async def test_a_removed_replica_gets_no_more_requests(anyio_backend: object) -> None:
    buf, _ = make()
    buf.set_replicas(["http://a", "http://b"])
    first = buf.try_acquire()
    assert first is not None
    buf.set_replicas(["http://b" if first.replica == "http://a" else "http://a"])
    first.release()  # a lease on a replica that left is simply forgotten
    second = buf.try_acquire()
    assert second is not None and second.replica != first.replica


async def test_picker_chooses_among_free_replicas(anyio_backend: object) -> None:
    buf, _ = make(container_concurrency=1)
    buf.set_replicas(["http://a", "http://b", "http://c"])
    seen: list[list[str]] = []

    def last(candidates: list[str]) -> str:  # type: ignore[type-arg]
        seen.append(list(candidates))
        return candidates[-1]

    one = buf.try_acquire(last)
    two = buf.try_acquire(last)
    assert one is not None and two is not None
    assert (one.replica, two.replica) == ("http://c", "http://b")
    assert seen == [["http://a", "http://b", "http://c"], ["http://a", "http://b"]]


def test_the_meter_is_time_weighted() -> None:
    clock = ManualClock()
    buf, _ = make(clock)
    buf.set_replicas(["http://a"])
    buf.take_concurrency(clock.now())
    lease = buf.try_acquire()
    assert lease is not None
    clock.advance(0.25)
    lease.release()
    clock.advance(0.75)
    assert buf.take_concurrency(clock.now()) == pytest.approx(0.25)


async def test_a_ticket_waits_in_slices_without_losing_its_place(anyio_backend: object) -> None:
    buf, pokes = make()
    ticket = buf.enqueue()
    assert await ticket.wait(max_wait=0.01) is None
    assert buf.statistics().queued == 1 and pokes == [1]
    buf.set_replicas(["http://a"])
    admission = await ticket.wait(max_wait=0.01)
    assert admission is not None and admission.lease.replica == "http://a"
    ticket.cancel()  # after admission: nothing to give back
    assert buf.concurrency() == 1 and buf.statistics().queued == 0


async def test_a_granted_ticket_that_is_cancelled_gives_its_slot_back(anyio_backend: object) -> None:
    buf, _ = make(container_concurrency=1)
    ticket = buf.enqueue()
    buf.set_replicas(["http://a"])
    assert ticket.lease is not None and buf.load() == {"http://a": 1}
    ticket.cancel()
    assert buf.load() == {"http://a": 0} and buf.concurrency() == 0


async def test_wait_idle_drains_a_replica_that_left_rotation(anyio_backend: object) -> None:
    buf, _ = make()
    buf.set_replicas(["http://a"])
    lease = buf.try_acquire()
    assert lease is not None
    buf.set_replicas([])
    assert buf.in_flight_on("http://a") == 1
    done: list[int] = []

    async def drain() -> None:
        await buf.wait_idle("http://a")
        done.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        await anyio.sleep(0.01)
        assert not done
        lease.release()
    assert done == [1] and buf.in_flight_on("http://a") == 0


def test_a_refused_request_is_demand_in_the_next_sample() -> None:
    # buffer_enabled = false: no queue, yet each 503 counts as one concurrent request in the next
    # autoscaler sample (and only that one), and the first pokes the scaler (single flight).
    clock = ManualClock()
    buf, pokes = make(clock)
    buf.refuse()
    buf.refuse()
    assert pokes == [1] and buf.concurrency() == 2
    clock.advance(1.0)
    assert buf.take_concurrency(clock.now()) == 2.0
    assert buf.concurrency() == 0
    clock.advance(1.0)
    assert buf.take_concurrency(clock.now()) == 0.0
    stats = buf.statistics()
    assert stats.refused == 2 and stats.activations == 1 and stats.queued == 0
    buf.set_replicas(["http://a"])  # capacity arrived: the next refusal pokes again
    buf.set_replicas([])
    buf.refuse()
    assert pokes == [1, 1]


async def test_a_request_that_queues_again_keeps_its_first_deadline(anyio_backend: object) -> None:
    # Its replica left rotation before it could connect: the second wait ends at the first
    # deadline (the request waits `timeout` in all), and `waited` counts both waits.
    clock = ManualClock()
    buf, _ = make(clock, timeout=10.0)
    first = buf.enqueue()
    clock.advance(6.0)
    buf.set_replicas(["http://a"])
    admission = await first.wait()
    assert admission is not None and admission.waited == 6.0
    admission.lease.release()
    buf.set_replicas([])  # http://a is gone: the request queues again
    again = buf.enqueue(arrived=first.arrived)
    assert again.deadline == first.deadline
    clock.advance(3.0)
    buf.set_replicas(["http://b"])
    admission = await again.wait()
    assert admission is not None and admission.waited == 9.0
    admission.lease.release()
    buf.set_replicas([])
    late = buf.enqueue(arrived=clock.now() - 10.0)  # its first deadline has passed: no second wait
    with pytest.raises(BufferTimeout):
        await late.wait()
