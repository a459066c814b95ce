"""The service layer in-process: a forward function stands in for the proxy (a real handler, not
a mock), so retries, in-flight accounting, passive health and sticky cookies are checked exactly.
The same paths against real sockets and processes are in tests/test_services_e2e.py."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from a3s_gateway.compiler.ir import Node
from a3s_gateway.compiler.schema import HealthCheckConfig, PassiveHealthConfig, ServiceConfig
from a3s_gateway.runtime.api import Backend, Headers, Request, Response, iter_body
from a3s_gateway.runtime.body_end import WatchedBody, on_body_end, on_counted_body_end
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.errors import (
    ClientClosed,
    GatewayTimeout,
    NoHealthyBackend,
    UpstreamConnectError,
    UpstreamConnectTimeout,
)
from a3s_gateway.runtime.service import HttpService, ServiceState
from a3s_gateway.runtime.service_health import ServiceHealth
from a3s_gateway.stdlib.base import BuildContext
from a3s_gateway.stdlib.services.mirror import ShadowAbandoned

A, B, C = "http://10.0.0.1:80", "http://10.0.0.2:80", "http://10.0.0.3:80"


def make(config: dict[str, Any], forward: Any, clock: ManualClock | None = None) -> HttpService:
    node = Node.build("service", "api", ServiceConfig.model_validate(config))
    ctx = BuildContext(node.id, node.name, clock=clock or ManualClock())
    return HttpService(node, ServiceState(), ctx, forward=forward)


def lb(*urls: str, **extra: Any) -> dict[str, Any]:
    return {"load_balancer": {"servers": [{"url": u} for u in urls], **extra}}


class Upstreams:
    """Answers per backend URL: a status, or an exception to raise. Records who was called."""

    def __init__(self, **behaviour: Any) -> None:
        self.behaviour = behaviour
        self.calls: list[str] = []

    async def __call__(self, request: Request, backend: Backend) -> Response:
        self.calls.append(backend.url)
        outcome = self.behaviour.get(backend.url, 200)
        if isinstance(outcome, BaseException):
            raise outcome
        return Response(outcome, Headers(), iter_body(backend.url.encode()))


def get(cookie: str | None = None) -> Request:
    return Request("GET", "/", Headers.from_pairs([("cookie", cookie)] if cookie else []))


async def drain(response: Response) -> bytes:
    return b"".join([chunk async for chunk in response.body])


# --------------------------------------------------------------------------- in flight


@pytest.mark.anyio
async def test_in_flight_spans_the_body() -> None:
    service = make(lb(A), Upstreams())
    response = await service(get())
    backend = service.backends[0]
    assert backend.in_flight == 1
    assert await drain(response) == A.encode()
    assert backend.in_flight == 0


@pytest.mark.anyio
async def test_in_flight_released_when_forward_fails_or_the_body_is_closed() -> None:
    service = make(lb(A), Upstreams(**{A: GatewayTimeout()}))
    with pytest.raises(GatewayTimeout):
        await service(get())
    assert service.backends[0].in_flight == 0
    ok = make(lb(A), Upstreams())
    response = await ok(get())
    await response.aclose()
    await response.aclose()
    assert ok.backends[0].in_flight == 0


def test_watched_body_ends_once_even_when_dropped() -> None:
    ended: list[BaseException | None] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"x"

    counted = WatchedBody(body(), ended.append)
    del counted
    gc.collect()
    assert ended == [None]


@pytest.mark.anyio
async def test_watched_body_reports_a_broken_body() -> None:
    ended: list[BaseException | None] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"x"
        raise GatewayTimeout("idle")

    counted = WatchedBody(body(), ended.append)
    assert await counted.__anext__() == b"x"
    with pytest.raises(GatewayTimeout):
        await counted.__anext__()
    await counted.aclose()
    assert len(ended) == 1 and isinstance(ended[0], GatewayTimeout)


@pytest.mark.anyio
async def test_a_body_counts_its_bytes_only_once_asked() -> None:
    """The access log's response size: the count starts when `on_counted_body_end` asks for it
    (on the body itself when it takes callbacks, as the upstream exchange does); a body nobody
    asked keeps no count."""
    ended: list[BaseException | None] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"de"

    quiet = on_body_end(body(), ended.append)
    assert [chunk async for chunk in quiet] == [b"abc", b"de"] and quiet.body_bytes is None
    watched = on_body_end(body(), ended.append)
    counted = on_counted_body_end(watched, ended.append)
    assert counted is watched  # no second wrapper
    assert [chunk async for chunk in counted] == [b"abc", b"de"] and counted.body_bytes == 5
    assert ended == [None, None, None]


# --------------------------------------------------------------------------- retries and health


@pytest.mark.anyio
async def test_a_connect_error_is_retried_on_another_backend() -> None:
    upstreams = Upstreams(**{A: UpstreamConnectError("refused")})
    service = make(lb(A, B, C), upstreams)
    response = await service(get())
    assert await drain(response) in (B.encode(), C.encode())
    assert upstreams.calls[0] == A and len(upstreams.calls) == 2
    assert [b.in_flight for b in service.backends] == [0, 0, 0]


@pytest.mark.anyio
async def test_a_connect_timeout_is_retried_on_another_backend() -> None:
    upstreams = Upstreams(
        **{A: UpstreamConnectTimeout("no SYN-ACK"), B: UpstreamConnectTimeout("no SYN-ACK")}
    )
    service = make(lb(A, B, C), upstreams)
    response = await service(get())
    assert await drain(response) == C.encode()
    *timed_out, served = upstreams.calls
    assert served == C and timed_out and set(timed_out) <= {A, B} and len(set(timed_out)) == len(timed_out)
    # A timeout after the request went out is not retried: the backend may be working on it.
    slow = Upstreams(**{A: GatewayTimeout("no response head")})
    with pytest.raises(GatewayTimeout):
        await make(lb(A, B), slow)(get())
    assert slow.calls == [A]


@pytest.mark.anyio
async def test_when_every_backend_refuses_the_error_reaches_the_client() -> None:
    refused = UpstreamConnectError("refused")
    upstreams = Upstreams(**{A: refused, B: refused})
    with pytest.raises(UpstreamConnectError):
        await make(lb(A, B), upstreams)(get())
    assert sorted(upstreams.calls) == [A, B]


@pytest.mark.anyio
async def test_passive_health_counts_failures_but_not_client_aborts() -> None:
    clock = ManualClock()
    passive = {"passive_health": {"max_failures": 2, "window": "10s", "cooldown": "30s"}}
    upstreams = Upstreams(**{A: 502})
    service = make(lb(A, B, **passive), upstreams, clock)
    statuses = [(await service(get())).status for _ in range(4)]
    assert statuses == [502, 200, 502, 200]
    a = service.backends[0]
    assert not a.healthy
    assert {(await service(get())).status for _ in range(4)} == {200}
    clock.advance(30)
    assert [(await service(get())).status for _ in range(2)] == [502, 200]  # back after the cool-down

    aborts = make(lb(A, **passive), Upstreams(**{A: ClientClosed()}), clock)
    for _ in range(3):
        with pytest.raises(ClientClosed):
            await aborts(get())
    assert aborts.backends[0].healthy


@pytest.mark.anyio
async def test_a_refused_backend_is_held_against_it_and_the_next_one_answers() -> None:
    clock = ManualClock()
    passive = {"passive_health": {"max_failures": 1, "window": "10s", "cooldown": "30s"}}
    upstreams = Upstreams(**{A: UpstreamConnectError("refused")})
    service = make(lb(A, B, **passive), upstreams, clock)
    response = await service(get())
    assert await drain(response) == B.encode() and upstreams.calls == [A, B]
    a, b = service.backends
    assert not a.healthy and b.healthy and (a.in_flight, b.in_flight) == (0, 0)
    # Only the exchange that answered is timed.
    assert (a.exchanges, b.exchanges) == (0, 1)
    clock.advance(30)
    upstreams.behaviour = {}
    assert {await drain(await service(get())) for _ in range(2)} == {A.encode(), B.encode()}
    assert a.healthy and a.exchanges == 1


@pytest.mark.anyio
async def test_no_available_backend_raises_no_healthy_backend() -> None:
    service = make(lb(A), Upstreams())
    service.backends[0].healthy = False
    with pytest.raises(NoHealthyBackend):
        await service(get())


@pytest.mark.anyio
async def test_sticky_cookie_is_set_once_and_followed() -> None:
    service = make(lb(A, B, C, sticky={"cookie": "pin"}), Upstreams())
    first = await service(get())
    cookie = first.headers.get("set-cookie")
    assert cookie is not None and cookie.startswith("pin=")
    pinned = await drain(first)
    for _ in range(5):
        again = await service(get(cookie.split(";")[0]))
        assert await drain(again) == pinned and again.headers.get("set-cookie") is None


# --------------------------------------------------------------------------- ServiceHealth on a manual clock


def health_with(
    clock: ManualClock, backends: list[Backend], *, active: bool = False, max_failures: int = 1
) -> ServiceHealth:
    health = ServiceHealth("api", clock)
    passive = PassiveHealthConfig(max_failures=max_failures, cooldown=10.0)
    health.configure(HealthCheckConfig() if active else None, passive, lambda: backends, None)
    return health


def test_eviction_expires_lazily_on_refresh() -> None:
    clock = ManualClock()
    backend = Backend(url=A)
    health = health_with(clock, [backend])
    health.report_status(backend, 503, clock.now())
    assert not backend.healthy
    clock.advance(9.9)
    health.refresh(clock.now())
    assert not backend.healthy
    clock.advance(0.1)
    health.refresh(clock.now())
    assert backend.healthy


def test_a_good_probe_readmits_and_a_bad_verdict_holds() -> None:
    clock = ManualClock()
    backend = Backend(url=A)
    health = health_with(clock, [backend], active=True)
    assert health.active is not None
    health.report_failure(backend, clock.now())
    assert not backend.healthy
    health.active.track([backend], clock.now())
    health.active.record(backend, True, clock.now())  # a good probe
    assert backend.healthy
    for _ in range(3):  # unhealthy_threshold 3
        health.active.record(backend, False, clock.now())
    assert not backend.healthy
    health.refresh(clock.now() + 100)
    assert not backend.healthy  # passive expiry does not override the active verdict


def test_removing_the_health_blocks_readmits() -> None:
    clock = ManualClock()
    backend = Backend(url=A)
    health = health_with(clock, [backend])
    health.report_failure(backend, clock.now())
    assert not backend.healthy
    health.configure(None, None, lambda: [backend], None)
    assert backend.healthy
    health.forget(A)


# --------------------------------------------------------------------------- mirroring


@pytest.mark.anyio
async def test_a_shadow_never_waits_for_a_body_the_primary_left_unread() -> None:
    shadow_results: list[str] = []

    async def primary_forward(request: Request, backend: Backend) -> Response:
        return Response(413, Headers(), iter_body(b"too large"))  # answers without reading the body

    async def shadow_forward(request: Request, backend: Backend) -> Response:
        try:
            body = b"".join([chunk async for chunk in request.body])
        except ShadowAbandoned:
            shadow_results.append("abandoned")
            raise
        shadow_results.append(f"read {len(body)}")
        return Response(200, Headers(), iter_body(b""))

    async def upload() -> AsyncIterator[bytes]:
        yield b"x" * 10
        yield b"y" * 10

    services: dict[str, HttpService] = {}
    async with anyio.create_task_group() as tg:
        for name, config, forward in (
            ("api", {**lb(A), "mirror": {"service": "shadow"}}, primary_forward),
            ("shadow", lb(B), shadow_forward),
        ):
            node = Node.build("service", name, ServiceConfig.model_validate(config))
            ctx = BuildContext(node.id, node.name, clock=ManualClock())
            services[name] = HttpService(
                node, ServiceState(), ctx, forward=forward, task_group=tg, services=services
            )
        request = Request("POST", "/", Headers(), upload(), content_length=None)
        request.headers.add("transfer-encoding", "chunked")
        response = await services["api"](request)
        assert response.status == 413 and await drain(response) == b"too large"
        policy = services["api"].mirror
        assert policy is not None
        with anyio.fail_after(5):
            while policy.in_flight:
                await anyio.sleep(0.001)
    assert shadow_results == ["abandoned"]
    assert policy.stats.mirrored == 1 and policy.stats.abandoned == 1


@pytest.mark.anyio
async def test_the_probe_task_survives_an_unchanged_reload_and_stops_on_close() -> None:
    clock = ManualClock()
    backends = [Backend(url=A)]
    health = ServiceHealth("api", clock)
    async with anyio.create_task_group() as tg:
        health.configure(HealthCheckConfig(interval="1h"), None, lambda: backends, tg)
        first = health.active
        health.configure(HealthCheckConfig(interval="1h"), None, lambda: backends, tg)
        assert health.active is first  # unchanged block: same checker, same verdicts
        health.configure(HealthCheckConfig(interval="2h"), None, lambda: backends, tg)
        assert health.active is not first
        await health.aclose()  # cancels the running probe loop: the task group can exit
    health.configure(None, None, lambda: backends, None)
    assert health.active is None and backends[0].healthy
