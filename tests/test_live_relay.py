"""The live feed's relay between workers (runtime/observe/relay.py), in one process: two hubs,
each with the relay a worker of `run --workers N` gets, over real Unix datagram sockets.
(tests/test_live_feed_workers.py runs it between two real workers.)"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from a3s_gateway.runtime.observe.hub import LiveFeed, LiveHub
from a3s_gateway.runtime.observe.relay import MAX_DATAGRAM, WorkerRelay

from .stubs import eventually

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def relayed(hub: LiveHub, relay: WorkerRelay) -> AsyncIterator[None]:
    await relay.open()
    hub.relay_to(relay.send, relay.worker)
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.run, hub.deliver)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
    await relay.aclose()


def drain(feed: LiveFeed) -> list[tuple[str, dict[str, object]]]:
    out = []
    while (event := feed.next_nowait()) is not None:
        out.append((event.name, dict(event.data)))
    return out


def short_dir(tmp_path: Path) -> str:
    """A directory whose socket paths fit a Unix socket address (108 bytes)."""
    path = tmp_path / "live"
    path.mkdir()
    if len(str(path)) > 80:
        pytest.skip("tmp_path too long for a Unix socket path")
    return str(path)


async def test_a_state_change_reaches_the_other_workers_watchers_marked_with_its_worker(
    tmp_path: Path,
) -> None:
    directory = short_dir(tmp_path)
    one, two = LiveHub(), LiveHub()
    # Two workers are two processes; here two sockets of one process, named apart.
    first, second = WorkerRelay(directory, 0), WorkerRelay(directory, 1)
    second.path = second.path.with_name(f"{os.getpid()}-b.sock")
    async with relayed(one, first), relayed(two, second):
        watch_one, watch_two = one.subscribe(), two.subscribe()
        at_one: list[tuple[str, dict[str, object]]] = []
        at_two: list[tuple[str, dict[str, object]]] = []

        def arrived() -> bool:
            at_one.extend(drain(watch_one))
            at_two.extend(drain(watch_two))
            return bool(at_one) and bool(at_two)

        one.publish("health", {"service": "llm", "url": "http://a", "healthy": False, "revision": ""})
        await eventually(arrived)
        # Each watcher sees it once, marked with the worker it happened in.
        for [(name, data)] in (at_one, at_two):
            assert name == "health" and data["worker"] == 0 and data["healthy"] is False
            assert isinstance(data["seq"], int) and isinstance(data["time"], float)

        at_one.clear()
        at_two.clear()
        two.publish("scale", {"service": "llm", "desired": 2, "previous": 1, "ready": 1, "cold_start": False})
        await eventually(arrived)
        await anyio.sleep(0.1)  # an echo would be here by now (a check that it does not come)
        arrived()
        for [(name, data)] in (at_one, at_two):
            assert name == "scale" and data["worker"] == 1 and data["desired"] == 2


async def test_what_a_peer_cannot_take_is_skipped_and_garbage_is_ignored(tmp_path: Path) -> None:
    directory = short_dir(tmp_path)
    hub = LiveHub()
    relay = WorkerRelay(directory, 0)
    # A dead worker's socket file (nothing bound: refused) and a stray file.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(Path(directory) / "1.sock"))
    dead.close()
    (Path(directory) / "notes.txt").write_text("not a socket")
    async with relayed(hub, relay):
        watcher = hub.subscribe()
        hub.publish("reload", {"result": "reloaded", "changes": {"added": ["x" * MAX_DATAGRAM]}})
        assert [name for name, _ in drain(watcher)] == ["reload"]  # too big to relay: local only
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for payload in (b"\xff not json", b'{"event": "sample", "data": {}}', b"[]"):
            sender.sendto(payload, str(relay.path))
        sender.sendto(b'{"event": "health", "data": {"url": "http://b", "worker": 3}}', str(relay.path))
        sender.close()
        events: list[tuple[str, dict[str, object]]] = []

        def got() -> bool:
            events.extend(drain(watcher))
            return bool(events)

        await eventually(got)
        assert [(n, d["worker"]) for n, d in events] == [("health", 3)]  # a sample is never relayed
    assert not relay.path.exists()
