"""List and watch (the kubernetes provider's Reflector) against the fake API server (tests/kube_api.py).

No Kubernetes API server runs here; the fake implements list, watch, bookmarks, 410 Gone after a
compaction and dropped watches over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

from a3s_gateway.stdlib.providers._kube_watch import Reflector

from ..kube_api import TOKEN, FakeKubeApi, fake_kube_api
from ..kube_objects import service
from ..stubs import eventually

PATH = "/api/v1/services"


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with fake_kube_api() as fake:
        yield fake


def names(reflector: Reflector) -> list[str]:
    return sorted(name for _, name in reflector.objects)


def headers() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


@pytest.mark.anyio
async def test_list_then_watch_with_bookmarks_410_and_a_dropped_watch(
    anyio_backend: object, api: FakeKubeApi
) -> None:
    api.apply("services", service("a", ports=[{"port": 80}]))
    changes = 0

    def changed() -> None:
        nonlocal changes
        changes += 1

    async with httpx.AsyncClient(base_url=api.url, timeout=5.0) as client:
        reflector = Reflector(client, PATH, headers, changed=changed)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reflector.run)
            await eventually(lambda: reflector.synced and names(reflector) == ["a"])
            listed = reflector.resource_version
            await eventually(lambda: api.count(f"WATCH services {listed}") == 1)

            api.apply("services", service("b", ports=[{"port": 80}]))  # ADDED
            await eventually(lambda: names(reflector) == ["a", "b"])
            api.delete("services", "default", "a")  # DELETED
            await eventually(lambda: names(reflector) == ["b"])
            assert reflector.resource_version == str(api.revision)

            # A bookmark moves the resourceVersion on without a change to the objects.
            api.apply("secrets", {"metadata": {"name": "unrelated"}, "data": {}})
            before = changes
            api.bookmark()
            await eventually(lambda: reflector.resource_version == str(api.revision))
            assert changes == before

            # A dropped watch resumes from the last resourceVersion seen: no re-list.
            api.drop_watches()
            await eventually(lambda: api.count(f"WATCH services {api.revision}") == 1)
            api.apply("services", service("c", ports=[{"port": 80}]))
            await eventually(lambda: names(reflector) == ["b", "c"])
            assert api.count("LIST services") == 1

            # Compacted history: the watch is cut, b deleted and the history compacted before
            # it resumes (all under the store's lock): it gets 410 Gone, and re-lists.
            with api.lock:
                api.drop_watches()
                api.delete("services", "default", "b")
                api.compact()
            await eventually(lambda: names(reflector) == ["c"])
            assert api.count("LIST services") == 2 and reflector.relists == 1
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_an_unreachable_api_server_raises(anyio_backend: object, api: FakeKubeApi) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=5.0) as client:
        reflector = Reflector(client, PATH, headers)
        raised = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(reflector.run)
                await eventually(lambda: api.count("WATCH services") == 1)
                api.stop()
                await anyio.sleep_forever()
        except* httpx.ConnectError:
            raised = True
        assert raised and reflector.synced


@pytest.mark.anyio
async def test_a_very_short_watch_backs_off_and_relists(anyio_backend: object, api: FakeKubeApi) -> None:
    # Watches that end at once with no event (timeoutSeconds=0 here; a broken proxy in life):
    # as client-go, a re-list after a backoff, not a new watch in a tight loop.
    api.apply("services", service("a", ports=[{"port": 80}]))
    async with httpx.AsyncClient(base_url=api.url, timeout=5.0) as client:
        reflector = Reflector(client, PATH, headers, watch_seconds=(0, 0))
        async with anyio.create_task_group() as tg:
            tg.start_soon(reflector.run)
            await eventually(lambda: api.count("LIST services") == 3)
            assert api.count("WATCH services") <= 3 and names(reflector) == ["a"]
            tg.cancel_scope.cancel()
