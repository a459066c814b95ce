"""Mirroring: which requests are copied, the in-flight bound, and the body tee."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import anyio
import pytest

from a3s_gateway.compiler.schema import MirrorConfig
from a3s_gateway.runtime.api import BodyStream
from a3s_gateway.stdlib.services.mirror import MirrorPolicy, ShadowAbandoned, abandon_shadow, tee


def policy(seed: int = 0, **options: object) -> MirrorPolicy:
    return MirrorPolicy(MirrorConfig.model_validate({"service": "shadow", **options}), random.Random(seed))


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(body: BodyStream) -> bytes:
    return b"".join([chunk async for chunk in body])


def test_percentage_selection_is_deterministic_and_close_to_the_share() -> None:
    one, two = policy(seed=1, percentage=25), policy(seed=1, percentage=25)
    first = [one.selected() for _ in range(2000)]
    assert first == [two.selected() for _ in range(2000)]
    assert 400 < sum(first) < 600
    assert one.stats.skipped_percentage == 2000 - sum(first)


def test_zero_and_hundred_percent() -> None:
    assert not any(policy(percentage=0).selected() for _ in range(100))
    assert all(policy(percentage=100).selected() for _ in range(100))


def test_in_flight_is_bounded_and_excess_counted() -> None:
    mirror = policy(max_in_flight=2, max_body="1KiB")
    assert mirror.try_acquire() and mirror.try_acquire()
    assert not mirror.try_acquire()
    assert mirror.stats.skipped_busy == 1
    mirror.release()
    assert mirror.try_acquire()
    mirror.release()
    mirror.release()
    mirror.release()
    mirror.release()
    assert mirror.in_flight == 0
    assert not mirror.try_acquire(content_length=2048)
    assert mirror.stats.skipped_body == 1 and mirror.stats.mirrored == 3


@pytest.mark.anyio
async def test_tee_gives_both_sides_the_same_body() -> None:
    primary, shadow = tee(chunks(b"hello ", b"", b"world"), max_body=1024)
    assert await read_all(primary) == b"hello world"
    assert await read_all(shadow) == b"hello world"


@pytest.mark.anyio
async def test_the_primary_never_waits_for_the_shadow() -> None:
    # Nobody reads the shadow at all: the primary still gets everything.
    primary, shadow = tee(chunks(*[b"x" * 100] * 50), max_body=1 << 20)
    assert await read_all(primary) == b"x" * 5000
    await shadow.aclose()


@pytest.mark.anyio
async def test_the_shadow_is_abandoned_past_max_body_and_the_primary_is_not() -> None:
    primary, shadow = tee(chunks(b"a" * 60, b"b" * 60, b"c" * 60), max_body=100)
    assert await read_all(primary) == b"a" * 60 + b"b" * 60 + b"c" * 60
    assert await shadow.__anext__() == b"a" * 60
    with pytest.raises(ShadowAbandoned):
        await shadow.__anext__()


@pytest.mark.anyio
async def test_shadow_reads_interleave_with_the_primary() -> None:
    async def produce() -> AsyncIterator[bytes]:
        for i in range(20):
            await anyio.sleep(0)
            yield bytes([i]) * 10

    primary, shadow = tee(produce(), max_body=1 << 20)
    got: list[bytes] = []

    async def shadow_reader() -> None:
        got.append(await read_all(shadow))

    async with anyio.create_task_group() as tg:
        tg.start_soon(shadow_reader)
        assert await read_all(primary) == b"".join(bytes([i]) * 10 for i in range(20))
    assert got == [b"".join(bytes([i]) * 10 for i in range(20))]


@pytest.mark.anyio
async def test_closing_the_primary_early_abandons_the_shadow() -> None:
    primary, shadow = tee(chunks(b"one", b"two"), max_body=100)
    assert await primary.__anext__() == b"one"
    await primary.aclose()
    assert await shadow.__anext__() == b"one"
    with pytest.raises(ShadowAbandoned):
        await shadow.__anext__()
    with pytest.raises(StopAsyncIteration):
        await primary.__anext__()


@pytest.mark.anyio
async def test_a_failing_source_abandons_the_shadow_and_reaches_the_primary() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ConnectionResetError("client went away")

    primary, shadow = tee(broken(), max_body=100)
    assert await primary.__anext__() == b"part"
    with pytest.raises(ConnectionResetError):
        await primary.__anext__()
    assert await shadow.__anext__() == b"part"
    with pytest.raises(ShadowAbandoned):
        await shadow.__anext__()


@pytest.mark.anyio
async def test_a_closed_shadow_is_harmless() -> None:
    primary, shadow = tee(chunks(b"a", b"b"), max_body=100)
    await shadow.aclose()
    assert await read_all(primary) == b"ab"


@pytest.mark.anyio
async def test_abandon_shadow_after_an_early_answer() -> None:
    primary, shadow = tee(chunks(b"one", b"two"), max_body=100)
    assert await primary.__anext__() == b"one"
    abandon_shadow(primary)  # the primary was answered early: nobody reads "two"
    assert await shadow.__anext__() == b"one"
    with pytest.raises(ShadowAbandoned):
        await shadow.__anext__()
    # After a complete read it is a no-op.
    whole, copy = tee(chunks(b"a"), max_body=100)
    assert await read_all(whole) == b"a"
    abandon_shadow(whole)
    abandon_shadow(chunks())  # not a teed body: nothing to do
    assert await read_all(copy) == b"a"
