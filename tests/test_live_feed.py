"""GET /api/gateway/live on a real gateway: SSE read by httpx, WebSocket by `websockets`.

A reload, a backend's health flip and a model server's agent state changes (a real stub process,
tests/model_server_stub.py) appear in the feed, the request rate advances after
requests, the feed ends cleanly on reload and on shutdown, and a slow watcher's queue stays
bounded. The hub's queue and the sample arithmetic are tested without sockets too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import websockets
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from websockets.sync.client import ClientConnection, connect

from a3s_gateway.compiler import CompileError
from a3s_gateway.runtime.admin.feed_socket import FeedSocket
from a3s_gateway.runtime.events import WebSocketMessage, WebSocketPing, WebSocketPong
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.observe.hub import MAX_QUEUED, FeedEnded, FeedEvent, LiveHub
from a3s_gateway.runtime.observe.live_sample import Reading, Sampler, Totals, quantile, read_registry
from a3s_gateway.runtime.protocols.websocket import WebSocketConnection

from .stubs import eventually, free_ports, json_stub
from .test_health_agent import Stubs

pytestmark = pytest.mark.anyio


class Flip:
    """A backend whose answers (and so its health checks) can be turned bad."""

    def __init__(self) -> None:
        self.status = 200

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        return self.status, {"path": path}


def config(web: int, admin: int, backend: str, *, metrics: str = "") -> str:
    return f"""
{metrics}

entrypoints "web" {{
  address = "127.0.0.1:{web}"
}}

middlewares "tag" {{
  type             = "headers"
  response_headers = {{ "x-tag" = "a" }}
}}

routers "chat" {{
  rule        = "PathPrefix(`/v1`)"
  service     = "llm"
  middlewares = ["tag"]
}}

services "llm" {{
  load_balancer {{
    servers = [{{ url = "{backend}" }}]
    health_check {{
      path                = "/health"
      interval            = "100ms"
      timeout             = "1s"
      unhealthy_threshold = 1
    }}
  }}
}}

api {{
  address = "127.0.0.1:{admin}"
}}
"""


@dataclass
class Served:
    gateway: Gateway
    path: Path
    backend: Flip
    url: str
    web: httpx.AsyncClient
    live: str  # the feed's URL


@asynccontextmanager
async def serving(tmp_path: Path, metrics: str = "") -> AsyncIterator[Served]:
    flip = Flip()
    with json_stub(flip) as url:
        web, admin = free_ports(2)
        path = tmp_path / "gw.hcl"
        path.write_text(config(web, admin, url, metrics=metrics))
        async with (
            Gateway(str(path)) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}") as client,
        ):
            yield Served(gateway, path, flip, url, client, f"127.0.0.1:{admin}/api/gateway/live")


class SseReader:
    """The events of one `text/event-stream` response, parsed as a browser would."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()
        self.ended = False

    async def next(self) -> tuple[str, dict[str, Any]] | None:
        """The next event (name, data), or None when the stream is over."""
        name, data = "message", ""
        async for line in self._lines:
            if line == "":
                if data:
                    return name, json.loads(data)
                name = "message"
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        self.ended = True
        return None

    async def heartbeat(self) -> bool:
        """Read until a `: heartbeat` comment, failing on any event in between."""
        with anyio.fail_after(10):
            async for line in self._lines:
                assert not line.startswith("event:"), line
                if line == ": heartbeat":
                    return True
        return False

    async def until(self, cond: Callable[[str, dict[str, Any]], bool]) -> tuple[str, dict[str, Any]]:
        with anyio.fail_after(15):
            while True:
                event = await self.next()
                assert event is not None, "the feed ended early"
                if cond(*event):
                    return event


async def test_sse_feed_shows_rates_health_flips_and_a_reload_then_ends(tmp_path: Path) -> None:
    async with (
        serving(tmp_path) as served,
        httpx.AsyncClient(timeout=20) as client,
        client.stream("GET", f"http://{served.live}") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-store"
        feed = SseReader(response)
        name, hello = await feed.until(lambda n, d: True)
        assert name == "hello" and hello["generation"] == 1 and "sample" in hello["events"]

        # Rates advance after requests: the web entrypoint's total and its rate.
        for _ in range(5):
            assert (await served.web.get("/v1/models")).status_code == 200
        _, sample = await feed.until(
            lambda n, d: n == "sample" and d["entrypoints"].get("web", {}).get("requests", 0) >= 5
        )
        assert sample["interval"] >= 0 and {"backends", "in_flight", "generation"} <= sample.keys()
        assert any(b["url"] == served.url and b["healthy"] for b in sample["backends"])

        # The backend goes bad: its health flips, as an event of its own.
        served.backend.status = 503
        _, flip = await feed.until(lambda n, d: n == "health")
        assert flip == {**flip, "service": "llm", "url": served.url, "healthy": False}
        served.backend.status = 200
        await feed.until(lambda n, d: n == "health" and d["healthy"])

        # A reload appears, with its diff; then the feed ends cleanly (the stream is over).
        served.path.write_text(served.path.read_text().replace('"x-tag" = "a"', '"x-tag" = "b"'))
        await served.gateway.reload()
        _, reload = await feed.until(lambda n, d: n == "reload")
        assert reload["result"] == "reloaded" and reload["generation"] == 2
        assert reload["changes"]["changed"] == ["middleware:tag"]
        _, end = await feed.until(lambda n, d: n == "end")
        assert end["reason"] == "reload"
        assert await feed.next() is None and feed.ended


def one_service(web: int, admin: int, backend: str, health: str, api: str = "") -> str:
    """A gateway with one service `llm` of one server, checked by `health`, behind /v1."""
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}
routers "chat" {{
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}}
services "llm" {{
  load_balancer {{
    servers = [{{ url = "{backend}" }}]
    {health}
  }}
}}
api {{
  address = "127.0.0.1:{admin}"
  {api}
}}
"""


AGENT_HEALTH = """agent_health {
      server              = "json"
      busy_queue          = 5   # the stub's busy document says 10 requests wait
      interval            = "50ms"
      timeout             = "2s"
      unhealthy_threshold = 1
    }"""


def agent_config(web: int, admin: int, backend: str) -> str:
    return one_service(web, admin, backend, AGENT_HEALTH)


async def test_an_agent_servers_state_changes_are_events_before_the_health_flips_they_cause(
    tmp_path: Path,
) -> None:
    stubs = Stubs("json")  # a model server process answering a JSON health document
    try:
        stubs.start("a", "ready")  # Ready, as presumed: nothing to publish yet
        url = stubs.url("a")
        web, admin = free_ports(2)
        path = tmp_path / "gw.hcl"
        path.write_text(agent_config(web, admin, url))
        live = f"http://127.0.0.1:{admin}/api/gateway/live?events=agent_state,health"
        async with (
            Gateway(str(path)) as gateway,
            httpx.AsyncClient(timeout=20) as client,
            client.stream("GET", live) as response,
        ):
            feed = SseReader(response)
            name, hello = await feed.until(lambda n, d: True)
            assert name == "hello" and hello["events"] == ["agent_state", "health"]
            checker = gateway.graph.services["llm"].health.active
            assert checker is not None

            async def probed(times: int = 3) -> None:
                """Until the server was probed `times` more times (each probe reschedules it)."""
                for _ in range(times):
                    due = checker._targets[url].due
                    await eventually(lambda d=due: checker._targets[url].due != d)  # type: ignore[misc]

            await probed()  # found Ready, as presumed: no event

            seen: list[tuple[str, Any, Any]] = []

            async def after(state: str, count: int) -> None:
                """Move the server to `state`; read events until `count` in all have come."""
                await stubs.move("a", state)
                while len(seen) < count:
                    event = await feed.until(lambda n, d: True)
                    name, data = event
                    assert (data["service"], data["url"]) == ("llm", url)
                    if name == "agent_state":
                        assert data["revision"] == ""
                        seen.append((name, data["previous"], data["state"]))
                    else:
                        seen.append((name, None, data["healthy"]))

            await after("loading", 2)  # Loading takes it out of rotation at once
            await after("ready", 4)
            await after("busy", 5)  # Busy is still healthy: no flip
            await after("error", 7)  # unhealthy_threshold = 1: the first Error flips it
            stubs.kill("a")
            while len(seen) < 8:
                name, data = await feed.until(lambda n, d: True)
                seen.append((name, data.get("previous"), data.get("state", data.get("healthy"))))
            assert seen == [
                ("agent_state", "ready", "loading"),
                ("health", None, False),
                ("agent_state", "loading", "ready"),
                ("health", None, True),
                ("agent_state", "ready", "busy"),
                ("agent_state", "busy", "error"),
                ("health", None, False),
                ("agent_state", "error", "unreachable"),
            ]
            # Probes that find the same state publish nothing: the next event is the end.
            await probed()
            await gateway.reload()
            name, _ = await feed.until(lambda n, d: n != "reload")
            assert name == "end"
    finally:
        stubs.close()


async def test_with_metrics_samples_carry_router_and_service_rates_and_latencies(tmp_path: Path) -> None:
    metrics = "metrics {\n  prometheus {\n    add_routers_labels = true\n  }\n}"
    async with (
        serving(tmp_path, metrics) as served,
        httpx.AsyncClient(timeout=20) as client,
        client.stream("GET", f"http://{served.live}?events=sample") as response,
    ):
        feed = SseReader(response)
        await feed.until(lambda n, d: n == "sample")
        for _ in range(10):
            assert (await served.web.get("/v1/models")).status_code == 200
        # Read from the metrics registry: nothing on the request path counts for the feed.
        _, sample = await feed.until(lambda n, d: d["routers"].get("chat", {}).get("requests", 0) >= 10)
        chat, llm = sample["routers"]["chat"], sample["services"]["llm"]
        assert chat["errors_total"] == 0 and llm["requests"] >= 10
        assert sample["entrypoints"]["web"]["requests"] >= 10
        assert sample["open_streams"] == 1  # this feed is an SSE stream of its own
        # Some sample saw the requests within its second: a rate and a latency estimate.
        seen = [s for s in [sample] if s["routers"]["chat"]["rate"] > 0]
        while not seen:
            _, later = await feed.until(lambda n, d: True)
            assert later["routers"]["chat"]["requests"] >= 10
            if later["routers"]["chat"]["rate"] == 0:
                for _ in range(5):
                    await served.web.get("/v1/models")
            else:
                seen.append(later)
        assert seen[0]["routers"]["chat"]["p50_ms"] is not None and seen[0]["routers"]["chat"]["p99_ms"] > 0


async def test_a_rejected_reload_is_reported_and_the_feed_goes_on(tmp_path: Path) -> None:
    async with (
        serving(tmp_path) as served,
        httpx.AsyncClient(timeout=20) as client,
        client.stream("GET", f"http://{served.live}?events=reload&heartbeat=1") as response,
    ):
        feed = SseReader(response)
        await feed.until(lambda n, d: n == "hello")
        served.path.write_text(served.path.read_text().replace('service     = "llm"', 'service = "lm"'))
        with pytest.raises(CompileError):
            await served.gateway.reload()
        _, reload = await feed.until(lambda n, d: True)
        assert reload["result"] == "rejected" and reload["generation"] == 1
        assert "unknown service 'lm'" in reload["error"]
        # Only reload events were asked for: no sample comes, the heartbeat keeps it open.
        assert await feed.heartbeat()


async def test_sse_feed_ends_on_shutdown(tmp_path: Path) -> None:
    async with (
        serving(tmp_path) as served,
        httpx.AsyncClient(timeout=20) as client,
        client.stream("GET", f"http://{served.live}") as response,
    ):
        feed = SseReader(response)
        await feed.until(lambda n, d: n == "sample")
        async with anyio.create_task_group() as tg:
            tg.start_soon(served.gateway.shutdown)
            _, end = await feed.until(lambda n, d: n == "end")
            assert end["reason"] == "shutdown"
            assert await feed.next() is None
        assert served.gateway.live.watchers == 0


def open_ws(url: str) -> ClientConnection:
    ws = connect(url, open_timeout=10)
    return ws.__enter__()  # what `with connect(...)` does; the test closes it


async def test_websocket_feed_carries_the_same_events_and_closes_with_1012_on_reload(tmp_path: Path) -> None:
    # websockets' sync client, in a worker thread: it works whatever loop the gateway runs on.
    async with serving(tmp_path) as served:
        ws = await anyio.to_thread.run_sync(open_ws, f"ws://{served.live}?heartbeat=1")
        try:
            hello = json.loads(await anyio.to_thread.run_sync(ws.recv, 10))
            assert hello["event"] == "hello" and hello["data"]["generation"] == 1
            # Answered through the connection's relay by the feed's own WebSocket side.
            assert await anyio.to_thread.run_sync(lambda: ws.ping().wait(10))

            async def next_event(name: str) -> dict[str, Any]:
                while True:
                    message = json.loads(await anyio.to_thread.run_sync(ws.recv, 15))
                    if message["event"] == name:
                        data: dict[str, Any] = message["data"]
                        return data

            assert (await served.web.get("/v1/x")).status_code == 200
            sample = await next_event("sample")
            assert "web" in sample["entrypoints"]
            served.backend.status = 503
            flip = await next_event("health")
            assert flip["healthy"] is False and flip["url"] == served.url

            await served.gateway.reload()
            assert (await next_event("reload"))["result"] == "reloaded"
            assert (await next_event("end"))["reason"] == "reload"
            with pytest.raises(websockets.ConnectionClosed):
                await anyio.to_thread.run_sync(ws.recv, 10)
            assert ws.close_code == 1012  # service restart: reconnect
        finally:
            ws.close()


async def test_websocket_client_close_ends_its_feed(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        ws = await anyio.to_thread.run_sync(open_ws, f"ws://{served.live}")
        await anyio.to_thread.run_sync(ws.recv, 10)
        assert served.gateway.live.watchers == 1
        await anyio.to_thread.run_sync(ws.close)
        assert ws.close_code == 1000
        await eventually(lambda: served.gateway.live.watchers == 0)


async def test_bad_feed_options_get_a_400(tmp_path: Path) -> None:
    async with serving(tmp_path) as served, httpx.AsyncClient() as client:
        bad = await client.get(f"http://{served.live}?events=sample,nope")
        assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"]
        assert (await client.get(f"http://{served.live}?heartbeat=0")).status_code == 400
        wrong = await client.post(f"http://{served.live}")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"


async def test_a_slow_watcher_never_makes_the_gateway_buffer() -> None:
    hub = LiveHub()
    feed = hub.subscribe()
    hub.publish("health", {"url": "a"})
    for i in range(10 * MAX_QUEUED):  # a client that reads nothing while samples pile up
        hub._fan_out("sample", {"i": i})
    hub.publish("health", {"url": "b"})
    queued = [await feed.next(0) for _ in range(MAX_QUEUED)]
    assert await feed.next(0) is None
    names = [e.name for e in queued if e is not None]
    # The client is told how many it missed, once, with the next event it gets.
    assert queued[0] is not None and queued[0].data["dropped"] == 10 * MAX_QUEUED - (MAX_QUEUED - 2)
    assert all("dropped" not in e.data for e in queued[1:] if e is not None)
    # The oldest samples went first; the state changes stayed, in order.
    assert names[0] == "health" and names[-1] == "health" and names.count("sample") == MAX_QUEUED - 2
    assert queued[-2] is not None and queued[-2].data["i"] == 10 * MAX_QUEUED - 1
    assert feed.dropped == 10 * MAX_QUEUED - (MAX_QUEUED - 2)
    hub.end_all("shutdown")
    end = await feed.next(0)
    assert end is not None and end.name == "end"
    with pytest.raises(FeedEnded):
        await feed.next(0)


async def test_the_sampler_runs_only_while_a_feed_takes_samples() -> None:
    readings = 0

    def sample(now: float) -> dict[str, Any]:
        nonlocal readings
        readings += 1
        return {}

    async with anyio.create_task_group() as tg:
        hub = LiveHub(sample, interval=0.01)
        hub.attach(tg.start_soon)
        health = hub.subscribe(frozenset({"health"}))
        await anyio.sleep(0.05)
        assert readings == 0  # a watcher of state changes only costs no sampling
        samples = hub.subscribe()
        await eventually(lambda: readings >= 2)
        samples.close()
        await eventually(lambda: not hub._sampling)  # stopped, though `health` still watches
        assert hub.watchers == 1
        health.close()


async def test_a_client_that_pings_without_reading_gets_one_pong() -> None:
    # The relay passes the client's frames on while its write towards the client waits: the
    # WebSocket side of the feed must not queue a pong per ping (RFC 6455 §5.5.3: the latest).
    socket = FeedSocket(LiveHub().subscribe(), 15.0, FeedEvent("hello", {"seq": 0}))
    client = WebSocketConnection(client=True)
    for i in range(1000):
        await socket.send(client.send(WebSocketPing(1, str(i).encode())))
    events = client.receive_data(await socket.receive())
    assert [type(e) for e in events] == [WebSocketMessage, WebSocketPong]
    assert events[1] == WebSocketPong(1, b"999")
    await socket.aclose()


# --------------------------------------------------------------------------- the sample arithmetic


def test_quantiles_follow_prometheus_histogram_quantile() -> None:
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.7, buckets) == pytest.approx(0.1 + 0.4 * (20 / 40))
    assert quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * (9 / 10))
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == 0.1  # past the last finite bucket


def test_samples_are_deltas_of_the_registry_counters() -> None:
    registry = CollectorRegistry()
    labels = ["router", "service", "code", "method", "protocol"]
    total = Counter("a3s_gateway_router_requests_total", "", labels, registry=registry)
    streams = Gauge("a3s_gateway_open_streams", "", ["router", "service"], registry=registry)
    streams.labels("chat", "llm").set(2)
    streams.labels("other", "llm").set(1)
    seconds = Histogram(
        "a3s_gateway_router_request_duration_seconds", "", labels, registry=registry, buckets=(0.01, 0.1, 1.0)
    )
    readings: list[Reading] = []

    def read() -> Reading:
        groups, gauges = read_registry(registry, gauges=("a3s_gateway_open_streams",))
        readings.append(Reading(groups, {"open_streams": gauges["a3s_gateway_open_streams"]}))
        return readings[-1]

    sampler = Sampler(read)
    total.labels("chat", "llm", "200", "GET", "http").inc(10)
    first = sampler(100.0)
    assert first["routers"]["chat"]["requests"] == 10 and first["routers"]["chat"]["rate"] == 0.0
    for _ in range(18):
        total.labels("chat", "llm", "200", "GET", "http").inc()
        seconds.labels("chat", "llm", "200", "GET", "http").observe(0.005)
    total.labels("chat", "llm", "502", "POST", "http").inc(2)
    seconds.labels("chat", "llm", "502", "POST", "http").observe(0.5)
    seconds.labels("chat", "llm", "502", "POST", "http").observe(0.5)
    second = sampler(102.0)
    chat = second["routers"]["chat"]
    assert chat["rate"] == 10.0 and chat["errors"] == 1.0 and chat["errors_total"] == 2
    assert chat["p50_ms"] == pytest.approx(10.0 * 10 / 18, rel=0.01)
    assert 100.0 < chat["p99_ms"] <= 1000.0
    assert second["open_streams"] == 3 and second["interval"] == 2.0
    assert sampler(103.0)["routers"]["chat"]["p50_ms"] is None  # no request in that second
    total.labels("chat", "llm", "200", "GET", "http").inc(50)
    # Sampling stopped for a while (nobody watched): no rate is averaged over the gap.
    after_a_pause = sampler(200.0)["routers"]["chat"]
    assert after_a_pause["rate"] == 0.0 and after_a_pause["requests"] == 80
    assert readings[0].groups["services"] == {} and Totals() == Totals(0.0, 0.0, ())
