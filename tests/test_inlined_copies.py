"""Copies the request path inlines for speed do what their originals do, over real sockets.

Each inlined copy is pinned to its original here, so that a change to one that forgets the
other fails a test:

- `body_end.fire`, inlined in the upstream exchange's `_end`: the end callbacks of a response
  body read from a real backend run as a `WatchedBody` (which calls `fire`) runs them, in the
  same order, with the same error, stopping at the same raising callback;
- `ConnectionPool._checkin`, inlined in `park`: a parked connection gives back its slot and
  the pool's state is what `_checkin` leaves, and a pool limited to one connection serves
  request after request;
- `HttpService._direct`: `__call__` on the usual service (no mirror, failover, inspecting
  strategy nor front) does what `_route` then `serve_here` do: against the same real backends,
  one of each picks the same backends in the same order, with the same in-flight counts and the
  same passive-health evictions and returns.

`Headers` made without `__init__` and `Request.is_grpc` (inlined in `proxy.forward`) are
compared on generated input in property_tests/test_inlined_copies_properties.py; the upstream
client's bare response Headers is checked here, on a real response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest

from a3s_gateway.compiler.ir import Node
from a3s_gateway.compiler.schema import ProxyConfig, ServiceConfig, ServiceTimeouts
from a3s_gateway.runtime import proxy
from a3s_gateway.runtime.api import Backend, Headers, Request, Response
from a3s_gateway.runtime.body_end import WatchedBody, on_body_end
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.errors import BadGateway, GatewayError
from a3s_gateway.runtime.service import HttpService, ServiceState
from a3s_gateway.runtime.upstream.client import UpstreamClient
from a3s_gateway.runtime.upstream.pool import ConnectionPool, parse_origin
from a3s_gateway.stdlib.base import BuildContext

from .backends import ScriptedBackend, backend
from .stubs import free_port

pytestmark = pytest.mark.anyio

HOST = Headers([(b"host", b"backend")])


class Broken(Exception):
    """What a test's end callback raises."""


def _recorder(calls: list[tuple[int, object]], index: int, raising: int | None) -> Callable[[Any], None]:
    def callback(error: BaseException | None) -> None:
        calls.append((index, error))
        if index == raising:
            raise Broken(index)

    return callback


async def _read(body: Any) -> tuple[list[bytes], BaseException | None]:
    chunks: list[bytes] = []
    try:
        async for chunk in body:
            chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    return chunks, None


def _seen(calls: list[tuple[int, object]], raised: BaseException | None) -> list[tuple[int, str]]:
    """The callbacks' calls, each error named by how it relates to what the reader got."""
    return [
        (i, "none" if e is None else "the error raised" if e is raised else type(e).__name__)
        for i, e in calls
    ]


async def _exchange_ends(url: str, target: str, raising: int | None) -> tuple[list[bytes], Any, list[Any]]:
    client = UpstreamClient()
    try:
        response = await client.send(
            Request("GET", target, HOST.copy()), url, ServiceTimeouts(), headers=HOST.copy()
        )
        calls: list[tuple[int, object]] = []
        body = response.body
        for i in range(3):
            assert (
                on_body_end(body, _recorder(calls, i, raising)) is body
            )  # the exchange takes them: no wrapper
        chunks, raised = await _read(body)
        return chunks, type(raised).__name__ if raised else None, _seen(calls, raised)
    finally:
        await client.aclose()


async def _watched_ends(chunks: list[bytes], error: BaseException | None, raising: int | None) -> Any:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
        if error is not None:
            raise error

    calls: list[tuple[int, object]] = []
    watched = WatchedBody(source(), _recorder(calls, 0, raising))
    for i in (1, 2):
        watched.add_end_callback(_recorder(calls, i, raising))
    got, raised = await _read(watched)
    return got, type(raised).__name__ if raised else None, _seen(calls, raised)


@pytest.mark.parametrize("raising", [None, 0, 1])
@pytest.mark.parametrize("target", ["/chunked?n=3", "/cut"])
async def test_an_exchange_runs_its_end_callbacks_as_fire_does(target: str, raising: int | None) -> None:
    async with backend() as be:
        chunks, raised, seen = await _exchange_ends(be.url, target, raising)
    # The same body from a WatchedBody: the same chunks, then the end or the exchange's error.
    error = BadGateway("upstream closed the connection mid-response") if target == "/cut" else None
    expected = await _watched_ends(chunks, error, raising)
    assert (chunks, raised, seen) == expected
    assert seen  # the callbacks ran: a comparison of nothing proves nothing


# --------------------------------------------------------------------------- ConnectionPool.park


def _state(pool: ConnectionPool) -> dict[str, Any]:
    """Everything a pool holds, as values: its parked connections counted, its limit's free slots."""
    state = dict(vars(pool)) if hasattr(pool, "__dict__") else {}
    for name in getattr(type(pool), "__slots__", ()):
        state[name] = getattr(pool, name)
    state["_idle"] = len(state["_idle"])
    state["_limit"] = state["_limit"].value if state["_limit"] is not None else None
    for name in ("origin", "_ssl", "_timing"):
        state.pop(name, None)
    return state


@pytest.mark.parametrize("limit", [None, 2])
async def test_park_gives_back_the_slot_as_checkin_does(limit: int | None) -> None:
    async with backend() as be:
        parking, checking = (ConnectionPool(parse_origin(be.url)[0], max_connections=limit) for _ in range(2))
        try:
            parked, checked = await parking.acquire(5), await checking.acquire(5)
            assert _state(parking) == _state(checking) and parking.statistics().active == 1
            assert parking.park(parked)
            checking._checkin()  # park's definition: the slot back, then the connection kept idle
            checked.idle_since = parked.idle_since
            checking._idle.append(checked)
            assert _state(parking) == _state(checking)
            assert parking.statistics().active == 0 and parking.statistics().idle == 1
        finally:
            await parking.aclose()
            await checking.aclose()


async def test_a_pool_of_one_connection_serves_request_after_request() -> None:
    """A parked connection's slot is free again: with max_connections = 1, each request after the
    first would otherwise wait for a slot nobody gives back, and fail with 503."""
    async with backend() as be:
        client = UpstreamClient(ProxyConfig(max_connections=1))
        try:
            timeouts = ServiceTimeouts(connect=2.0)
            for _ in range(4):
                response = await client.send(
                    Request("GET", "/json", HOST.copy()), be.url, timeouts, headers=HOST.copy()
                )
                assert response.status == 200 and b'"GET"' in b"".join([c async for c in response.body])
            assert be.connections == 1  # parked and reused each time
        finally:
            await client.aclose()


async def test_an_upstream_response_has_headers_that_behave_as_constructed_ones() -> None:
    async with backend() as be:
        client = UpstreamClient()
        try:
            response = await client.send(
                Request("GET", "/json", HOST.copy()), be.url, ServiceTimeouts(), headers=HOST.copy()
            )
            await response.aclose()
        finally:
            await client.aclose()
    made, reference = response.headers, Headers(list(response.headers.raw))
    assert type(made) is Headers and made.get("x-backend") == "yes"
    for headers in (made, reference):
        headers.add("X-Tag", "a")
        headers.setdefault("x-tag", "b")
        headers.set("content-type", "text/plain")
        headers.remove("keep-alive")
    assert made.raw == reference.raw and list(made.items()) == list(reference.items())
    assert ("x-tag" in made, len(made), repr(made)) == ("x-tag" in reference, len(reference), repr(reference))
    assert made.copy().raw == reference.copy().raw and made.get_joined("x-tag") == reference.get_joined(
        "x-tag"
    )


# --------------------------------------------------------------------------- HttpService._direct


def _service(urls: list[str], client: UpstreamClient, clock: ManualClock) -> HttpService:
    config = ServiceConfig.model_validate(
        {
            "load_balancer": {
                "servers": [{"url": u} for u in urls],
                "passive_health": {"max_failures": 1, "window": "10s", "cooldown": "30s"},
            }
        }
    )
    node = Node.build("service", "api", config)
    ctx = BuildContext(node.id, node.name, clock=clock)

    def forward(request: Request, target: Backend) -> Any:
        return proxy.forward(request, target, ProxyConfig(), client)

    return HttpService(node, ServiceState(), ctx, forward=forward)


def _five_hundred(connection: int, head: bytes) -> bytes:
    return b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"


async def _run(service: HttpService, clock: ManualClock) -> list[Any]:
    """A scripted series of requests; what each one shows of the service."""
    record: list[Any] = []
    held: list[Response] = []

    def counts() -> list[tuple[str, int, bool]]:
        return [(b.url, b.in_flight, b.available) for b in service.backends]

    for step in range(14):
        # Around the 30 s cool-down: just short of it, just past it, well past it.
        clock.advance({6: 29.5, 8: 1.0, 11: 31.0}.get(step, 0.0))
        request = Request("GET", "/json", Headers([(b"host", b"api")]), client_addr=("10.0.0.1", 1))
        try:
            response = await service(request)
        except GatewayError as exc:
            record.append((step, type(exc).__name__, None, counts(), sorted(service.health.evicted)))
            continue
        chosen = request.state["backend"].url
        record.append((step, response.status, chosen, counts(), sorted(service.health.evicted)))
        if step % 3 == 0:
            held.append(response)  # left unread for a while: in flight meanwhile
        else:
            await response.aclose()
        if step % 4 == 3:
            for open_response in held:
                await open_response.aclose()
            held.clear()
            record.append(("drained", counts()))
    for open_response in held:
        await open_response.aclose()
    record.append(("end", counts()))
    return record


@asynccontextmanager
async def _backends() -> AsyncIterator[list[str]]:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(backend())
        second = await stack.enter_async_context(backend())
        busy = ScriptedBackend(_five_hundred)
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        await tg.start(busy.serve)
        refused = f"http://127.0.0.1:{free_port()}"
        yield [first.url, refused, second.url, busy.url]


async def test_a_direct_service_call_does_what_route_and_serve_here_do() -> None:
    async with _backends() as urls:
        records = []
        for direct in (True, False):
            client, clock = UpstreamClient(), ManualClock()
            try:
                service = _service(urls, client, clock)
                assert service._direct  # the usual service: __call__ takes the short way
                service._direct = direct  # False: _route, then serve_here, as any other service
                records.append(await _run(service, clock))
            finally:
                await client.aclose()
    direct_record, routed_record = records
    assert direct_record == routed_record
    # The script does reach what it compares: all four backends chosen, evictions and returns.
    chosen = {entry[2] for entry in direct_record if isinstance(entry[0], int)}
    assert {urls[0], urls[2], urls[3]} <= chosen
    evicted = [entry[4] for entry in direct_record if isinstance(entry[0], int)]
    assert any(evicted) and not all(evicted)
