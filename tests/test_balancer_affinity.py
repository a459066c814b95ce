"""`conversation-affinity`: the conversation's sources, the ring, bounded loads, pins and their TTL
on a manual clock; then on a real gateway with real backend processes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import jwt as pyjwt
import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Backend, Headers, Request, iter_body
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.balancers._body import json_body
from a3s_gateway.stdlib.balancers.affinity import ConversationAffinity
from a3s_gateway.stdlib.balancers.schemas.affinity import AffinityConfig

from .test_balancers import build, pool
from .test_services_e2e import HEALTH, Processes, backend, eventually, procs, running, servers

__all__ = ["procs"]  # the fixture, imported for the gateway tests below


def request(headers: dict[str, str] | None = None, body: Any = None, claims: Any = None) -> Request:
    data = b"" if body is None else json.dumps(body).encode()
    req = Request("POST", "/v1/chat/completions", Headers.from_pairs((headers or {}).items()))
    req.body, req.content_length = iter_body(data), len(data)
    if claims is not None:
        req.state["jwt_claims"] = claims
    return req


def affinity(**options: Any) -> ConversationAffinity:
    balancer = build("conversation-affinity", clock=ManualClock(), **options)
    assert isinstance(balancer, ConversationAffinity)
    return balancer


def place(balancer: ConversationAffinity, conversation: str, backends: list[Backend]) -> Backend:
    picked = balancer.pick(backends, request({"x-conversation-id": conversation}))
    assert picked is not None
    return picked


# --------------------------------------------------------------------------- which conversation


@pytest.mark.anyio
async def test_sources_in_order_header_cookie_body_and_claim(anyio_backend: object) -> None:
    balancer = affinity(key=["header:X-Conv", "cookie:conv", "jwt:org.id", "body:metadata.conversation_id"])
    assert balancer.reads_body
    assert balancer.conversation(request({"x-conv": "h1"}, {"metadata": {"conversation_id": "b"}})) == "h1"
    assert balancer.conversation(request({"cookie": "a=1; conv=c7"})) == "c7"
    assert balancer.conversation(request(claims={"org": {"id": 42}})) == "42"
    assert balancer.conversation(request(claims={"org.id": "dotted"})) == "dotted"
    req = request(body={"metadata": {"conversation_id": "from-body"}})
    await balancer.inspect(req)
    assert balancer.conversation(req) == "from-body"
    # The body was put back: the upstream receives every byte.
    assert (
        b"".join([chunk async for chunk in req.body])
        == json.dumps({"metadata": {"conversation_id": "from-body"}}).encode()
    )
    assert balancer.conversation(None) is None


@pytest.mark.anyio
async def test_the_body_is_read_only_when_no_header_source_names_the_conversation(
    anyio_backend: object,
) -> None:
    balancer = affinity(key=["header:X-Conv", "body:user"])
    named = request({"x-conv": "h"}, {"user": "u"})
    await balancer.inspect(named)
    assert "balancer.json_body" not in named.state
    unnamed = request(body={"user": "alice"})
    await balancer.inspect(unnamed)
    assert balancer.conversation(unnamed) == "alice"
    assert not affinity(key=["header:X-Conv", "cookie:c"]).reads_body


@pytest.mark.anyio
async def test_body_paths_reach_into_arrays_and_ignore_what_is_not_an_id(anyio_backend: object) -> None:
    balancer = affinity(key=["body:messages.0.name", "body:user"])
    for body, expected in [
        ({"messages": [{"name": "n0"}], "user": "u"}, "n0"),
        ({"messages": [], "user": "u"}, "u"),
        ({"messages": [{"name": True}], "user": ""}, None),
        ({"user": {"id": 1}}, None),
        ([1, 2], None),
    ]:
        req = request(body=body)
        await balancer.inspect(req)
        assert balancer.conversation(req) == expected, body
    broken = Request("POST", "/", Headers(), iter_body(b"{not json"), content_length=9)
    await balancer.inspect(broken)
    assert balancer.conversation(broken) is None


@pytest.mark.anyio
async def test_a_body_past_max_body_is_413(anyio_backend: object) -> None:
    from a3s_gateway.runtime.errors import PayloadTooLarge

    balancer = affinity(key=["body:user"], max_body=16)
    with pytest.raises(PayloadTooLarge):
        await balancer.inspect(request(body={"user": "x" * 32}))
    assert await json_body(request(), 16) is None


def test_config_is_checked() -> None:
    assert AffinityConfig.model_validate({"key": "header:X-C"}).key == ["header:X-C"]
    for bad in [
        {"key": []},
        {"key": ["query:c"]},
        {"key": ["header:"]},
        {"key": ["header:X Conv"]},
        {"key": ["body:.a"]},
        {"load_factor": 1},
        {"ttl": 0},
        {"points": 0},
    ]:
        with pytest.raises(ValidationError):
            AffinityConfig.model_validate(bad)


# --------------------------------------------------------------------------- where it goes


def test_a_conversation_stays_on_one_backend_and_conversations_spread() -> None:
    backends = pool(1, 1, 1)
    balancer = affinity()
    homes = {f"c{i}": place(balancer, f"c{i}", backends).key for i in range(60)}
    for _ in range(3):
        for conversation, home in homes.items():
            assert place(balancer, conversation, backends).key == home
    spread = Counter(homes.values())
    assert len(spread) == 3 and min(spread.values()) >= 8, spread


def test_without_a_conversation_the_least_loaded_backend_is_picked() -> None:
    backends = pool(1, 1, 1)
    backends[0].in_flight, backends[1].in_flight, backends[2].in_flight = 3, 1, 2
    assert affinity().pick(backends, request()) is backends[1]


def test_a_full_backend_lends_the_request_and_keeps_the_pin() -> None:
    backends = pool(1, 1, 1)
    balancer = affinity(load_factor=1.5)
    home = place(balancer, "conv", backends)
    home.in_flight = 4  # bound: ceil(1.5 * 5 / 3) = 3, so home is full
    lent = place(balancer, "conv", backends)
    assert lent is not home
    home.in_flight = 0
    assert place(balancer, "conv", backends) is home


def test_only_the_conversations_of_a_backend_that_leaves_move() -> None:
    backends = pool(1, 1, 1, 1)
    balancer = affinity()
    before = {f"c{i}": place(balancer, f"c{i}", backends).key for i in range(200)}
    gone = backends[2]
    gone.healthy = False
    after = {c: place(balancer, c, backends).key for c in before}
    moved = {c for c in before if before[c] != after[c]}
    assert moved == {c for c, key in before.items() if key == gone.key}
    # It comes back: the moved conversations stay where their cache now is, until it expires.
    gone.healthy = True
    assert {c: place(balancer, c, backends).key for c in before} == after


def test_pins_expire_after_the_ttl_and_memory_is_bounded() -> None:
    clock = ManualClock()
    backends = pool(1, 1, 1)
    balancer = build("conversation-affinity", clock=clock, ttl="10s", max_entries=50)
    home = place(balancer, "conv", backends)
    home.healthy = False
    moved = place(balancer, "conv", backends)
    home.healthy = True
    clock.advance(9)
    assert place(balancer, "conv", backends) is moved  # still pinned (and the pin refreshed)
    clock.advance(10.5)
    assert place(balancer, "conv", backends) is home  # forgotten: back to its ring position
    for i in range(500):
        place(balancer, f"other-{i}", backends)
    assert len(balancer.state.pins) == 50


def test_weights_shape_the_ring_and_weight_zero_takes_nothing() -> None:
    backends = pool(3, 1, 0)
    balancer = affinity()
    spread = Counter(place(balancer, f"c{i}", backends).key for i in range(400))
    assert backends[2].key not in spread
    assert 2.0 < spread[backends[0].key] / spread[backends[1].key] < 4.5, spread
    assert affinity().pick(pool(0, 0), request({"x-conversation-id": "c"})) is None


def test_the_pins_survive_a_rebuild() -> None:
    backends = pool(1, 1, 1)
    first = affinity()
    home = place(first, "conv", backends)
    home.healthy = False
    moved = place(first, "conv", backends)
    home.healthy = True
    rebuilt = build("conversation-affinity", clock=ManualClock(), state=first.state)
    assert place(rebuilt, "conv", backends) is moved


# --------------------------------------------------------------------------- on a real gateway

SECRET = "affinity-test-secret-affinity-test"


def affinity_config(procs: Processes) -> str:
    return f"""
routers "jwt" {{
  rule        = "PathPrefix(`/jwt`)"
  service     = "api"
  middlewares = ["auth"]
}}
middlewares "auth" {{
  type  = "jwt"
  value = "{SECRET}"
}}
services "api" {{
  load_balancer {{
    strategy = "conversation-affinity"
    servers  = [{servers(procs, "b1", "b2", "b3")}]
{HEALTH}
    conversation-affinity {{
      key = ["header:X-Conversation-Id", "cookie:conv", "jwt:sub", "body:metadata.conversation_id"]
      ttl = "1h"
    }}
  }}
}}"""


@pytest.mark.anyio
async def test_a_conversation_keeps_its_backend_by_each_source(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    for name in ("b1", "b2", "b3"):
        await procs.astart(name)
    async with running(tmp_path, affinity_config(procs)) as (_, client):

        async def served(conversation: str, source: str) -> str:
            if source == "header":
                response = await client.get("/x", headers={"x-conversation-id": conversation})
            elif source == "cookie":
                response = await client.get("/x", headers={"cookie": f"theme=dark; conv={conversation}"})
            elif source == "jwt":
                token = pyjwt.encode({"sub": conversation, "exp": 4102444800}, SECRET, algorithm="HS256")
                response = await client.get("/jwt/x", headers={"authorization": f"Bearer {token}"})
            else:
                body = json.dumps({"model": "m", "metadata": {"conversation_id": conversation}}).encode()
                response = await client.post("/v1/chat/completions", content=body)
                assert response.json()["received"] == len(body)  # forwarded whole
            assert response.status_code == 200, response.text
            return str(response.json()["backend"])

        homes = {f"conv-{i}": await served(f"conv-{i}", "header") for i in range(24)}
        assert len(set(homes.values())) >= 2, homes
        # Every source names the same conversation, so each lands where the first request did.
        for i, (conversation, home) in enumerate(homes.items()):
            source = ("header", "cookie", "jwt", "body")[i % 4]
            assert await served(conversation, source) == home, (conversation, source)


@pytest.mark.anyio
async def test_only_the_conversations_of_a_killed_backend_move(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    for name in ("b1", "b2", "b3"):
        await procs.astart(name)
    async with running(tmp_path, affinity_config(procs)) as (gateway, client):

        async def served(conversation: str) -> str:
            response = await client.get("/x", headers={"x-conversation-id": conversation})
            assert response.status_code == 200, response.text
            return str(response.json()["backend"])

        homes = {f"conv-{i}": await served(f"conv-{i}") for i in range(30)}
        victim = Counter(homes.values()).most_common(1)[0][0]
        procs.kill(victim)
        await eventually(lambda: not backend(gateway, procs.url(victim)).healthy)
        after = {conversation: await served(conversation) for conversation in homes}
        for conversation, home in homes.items():
            if home == victim:
                assert after[conversation] != victim
            else:
                assert after[conversation] == home, conversation


@pytest.mark.anyio
async def test_one_busy_conversation_spreads_within_the_load_bound(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    for name in ("b1", "b2", "b3"):
        await procs.astart(name)
    async with running(tmp_path, affinity_config(procs)) as (gateway, client):
        served: list[str] = []
        peaks: Counter[str] = Counter()
        backends = gateway.graph.services["api"].backends

        async def slow() -> None:
            response = await client.get("/slow?ms=3000", headers={"x-conversation-id": "hot"})
            served.append(str(response.json()["backend"]))

        async def watch() -> None:
            while len(served) < 9:
                for b in backends:
                    peaks[b.url] = max(peaks[b.url], b.in_flight)
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            for _ in range(9):
                tg.start_soon(slow)
        # Placing the k-th of them, a backend may hold ceil(1.25 * k / 3) in flight: 4 at most
        # for k = 9, so the hot conversation's backend lends some requests to the next ones.
        assert len(set(served)) >= 2, served
        assert max(peaks.values()) <= 4, peaks


@pytest.mark.parametrize("strategy", ["conversation-affinity", "prefix-cache"])
def test_a_tcp_service_cannot_use_a_strategy_that_reads_the_request(tmp_path: Path, strategy: str) -> None:
    from a3s_gateway.compiler import compile_config

    config = tmp_path / "tcp.hcl"
    config.write_text(f"""
entrypoints "db" {{
  address  = "127.0.0.1:15432"
  protocol = "tcp"
}}
tcp_routers "db" {{
  rule    = "HostSNI(`*`)"
  service = "db"
}}
services "db" {{
  load_balancer {{
    strategy = "{strategy}"
    servers  = [{{ address = "10.0.0.1:5432" }}]
  }}
}}
""")
    result = compile_config([str(config)])
    assert result.graph is None
    (error,) = [d for d in result.diagnostics if d.severity == "error"]
    assert "picks by the HTTP request" in error.message and error.span is not None and error.span.line == 12
    config.write_text(config.read_text().replace(strategy, "least-connections"))
    assert compile_config([str(config)]).graph is not None
