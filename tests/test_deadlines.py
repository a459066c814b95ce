"""The deadline watch (runtime/deadlines.py): what its ticker expires, on given times."""

from __future__ import annotations

import pytest

from a3s_gateway.runtime.deadlines import INF, DeadlineWatch

pytestmark = pytest.mark.anyio


class Wait:
    """A waiter as the upstream exchange is one: a published deadline, and what expiry does."""

    def __init__(self, deadline: float, broken: bool = False) -> None:
        self.deadline = deadline
        self.broken = broken
        self.expired = 0

    async def expire(self) -> None:
        self.expired += 1
        if self.broken:
            raise RuntimeError("closing the socket failed")


async def test_only_overdue_items_expire_each_once_and_leave_the_watch() -> None:
    watch = DeadlineWatch()
    due, later, idle = Wait(10.0), Wait(20.0), Wait(INF)
    for item in (due, later, idle):
        watch.add(item)
    await watch.check(9.9)
    assert (due.expired, later.expired, idle.expired) == (0, 0, 0) and len(watch) == 3
    await watch.check(10.0)
    await watch.check(15.0)
    assert (due.expired, later.expired, idle.expired) == (1, 0, 0) and len(watch) == 2
    watch.discard(later)  # the wait ended in time
    await watch.check(1e9)
    assert (due.expired, later.expired, idle.expired) == (1, 0, 0) and len(watch) == 1


async def test_a_failing_expiry_does_not_stop_the_others() -> None:
    watch = DeadlineWatch()
    broken, fine = Wait(1.0, broken=True), Wait(1.0)
    watch.add(broken)
    watch.add(fine)
    await watch.check(2.0)
    assert broken.expired == fine.expired == 1 and len(watch) == 0
