"""`prefix-cache`: the prompt's chained block hashes, the longest held chain, the load bound, the
memory's TTL and bound on a manual clock; then on a real gateway with real backend processes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Backend, Headers, Request, iter_body
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.balancers._prompt import chain_hashes, prompt_bytes
from a3s_gateway.stdlib.balancers.prefix_cache import PrefixCacheBalancer
from a3s_gateway.stdlib.balancers.schemas.prefix_cache import PrefixCacheConfig

from .test_balancers import build, pool
from .test_services_e2e import HEALTH, Processes, backend, eventually, procs, running, servers

__all__ = ["procs"]  # the fixture, imported for the gateway tests below

SYSTEMS = [
    f"You are assistant number {n}. " + "Follow the house style guide closely. " * 30 for n in range(4)
]


def chat(system: str, *turns: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return {"model": "m", "messages": messages}


def anthropic(system: str, *turns: str) -> dict[str, Any]:
    body = chat(system, *turns)
    return {"model": "m", "max_tokens": 8, "system": system, "messages": body["messages"][1:]}


def request(body: Any = None, raw: bytes | None = None) -> Request:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return Request("POST", "/v1/chat/completions", Headers(), iter_body(data), content_length=len(data))


def balancer(clock: ManualClock | None = None, **options: Any) -> PrefixCacheBalancer:
    built = build("prefix-cache", clock=clock or ManualClock(), **options)
    assert isinstance(built, PrefixCacheBalancer)
    return built


async def pick(lb: PrefixCacheBalancer, backends: list[Backend], body: Any) -> Backend:
    req = request(body)
    await lb.inspect(req)
    chosen = lb.pick(backends, req)
    assert chosen is not None
    return chosen


# --------------------------------------------------------------------------- the prompt


def test_the_prompt_is_system_then_tools_then_messages_without_cache_markers() -> None:
    openai = prompt_bytes(chat("sys", "hi"), 1 << 20)
    assert openai.index(b"sys") < openai.index(b"hi")
    marked = anthropic("sys", "hi")
    marked["messages"][0]["content"] = [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    ]
    assert prompt_bytes(marked, 1 << 20) == prompt_bytes(anthropic("sys", "hi"), 1 << 20)
    with_tools = prompt_bytes({**chat("sys", "hi"), "tools": [{"name": "t"}]}, 1 << 20)
    assert with_tools.index(b"sys") < with_tools.index(b'"t"') < with_tools.index(b"hi")
    assert prompt_bytes({"prompt": "complete me"}, 100).startswith(b"complete me")
    assert prompt_bytes({"input": "respond"}, 100) == b"user:\x1erespond\x1e"
    assert prompt_bytes([1, 2], 100) == b"" and len(prompt_bytes(chat("s" * 500), 64)) == 64


def test_chains_are_shared_exactly_as_far_as_the_prompts_are() -> None:
    first = chain_hashes(prompt_bytes(chat(SYSTEMS[0], "question one"), 1 << 20), 256)
    turn_two = chain_hashes(prompt_bytes(chat(SYSTEMS[0], "question one", "answer", "next"), 1 << 20), 256)
    other = chain_hashes(prompt_bytes(chat(SYSTEMS[1], "question one"), 1 << 20), 256)
    full_blocks = len(prompt_bytes(chat(SYSTEMS[0], "question one"), 1 << 20)) // 256
    assert first[:full_blocks] == turn_two[:full_blocks] and first[full_blocks:] != turn_two[full_blocks:]
    assert not set(first) & set(other)  # the first byte differs: nothing shared


def test_config_is_checked() -> None:
    for bad in [{"block_size": 8}, {"max_blocks": 0}, {"load_factor": 0.9}, {"ttl": 0}, {"nope": 1}]:
        with pytest.raises(ValidationError):
            PrefixCacheConfig.model_validate(bad)


# --------------------------------------------------------------------------- the pick


@pytest.mark.anyio
async def test_a_shared_system_prompt_goes_to_the_replica_that_holds_it(anyio_backend: object) -> None:
    backends = pool(1, 1, 1)
    lb = balancer()
    homes = {n: await pick(lb, backends, chat(SYSTEMS[n], "first")) for n in range(3)}
    assert len({home.key for home in homes.values()}) == 3  # new prompts: the least loaded, in turn
    for n in range(3):
        for question in ("how?", "why?", "what?"):
            assert await pick(lb, backends, chat(SYSTEMS[n], question)) is homes[n]
        assert await pick(lb, backends, anthropic(SYSTEMS[n], "again")) is not None


@pytest.mark.anyio
async def test_the_longest_held_chain_wins(anyio_backend: object) -> None:
    backends = pool(1, 1)
    lb = balancer()
    short = await pick(lb, backends, chat(SYSTEMS[0], "a"))
    # A longer conversation on the same system prompt is placed on the other replica by hand.
    long_turns = ("question " * 100, "answer " * 100)
    long_home = next(b for b in backends if b is not short)
    req = request(chat(SYSTEMS[0], *long_turns))
    await lb.inspect(req)
    lb.state.remember(req.state["balancer.prefix_chains"], long_home.key, 0.0, 600, 1000)
    assert await pick(lb, backends, chat(SYSTEMS[0], *long_turns, "more")) is long_home
    assert await pick(lb, backends, chat(SYSTEMS[0], "b")) in (short, long_home)


@pytest.mark.anyio
async def test_a_loaded_holder_is_passed_over_for_the_least_loaded(anyio_backend: object) -> None:
    backends = pool(1, 1, 1)
    lb = balancer(load_factor=1.5)
    home = await pick(lb, backends, chat(SYSTEMS[0], "q"))
    others = [b for b in backends if b is not home]
    home.in_flight, others[0].in_flight, others[1].in_flight = 3, 1, 0  # bound ceil(1.5 * 5 / 3) = 3
    assert await pick(lb, backends, chat(SYSTEMS[0], "q2")) is others[1]
    home.in_flight = 2  # within the bound again: one of its holders takes it
    assert await pick(lb, backends, chat(SYSTEMS[0], "q3")) in (home, others[1])


@pytest.mark.anyio
async def test_an_unavailable_holder_falls_back_and_no_prompt_balances_by_load(anyio_backend: object) -> None:
    backends = pool(1, 1, 1)
    lb = balancer()
    home = await pick(lb, backends, chat(SYSTEMS[0], "q"))
    home.healthy = False
    moved = await pick(lb, backends, chat(SYSTEMS[0], "q"))
    assert moved is not home
    home.healthy = True
    backends[0].in_flight, backends[1].in_flight, backends[2].in_flight = 2, 0, 1
    for body in (None, [1, 2]):
        assert await pick(lb, backends, body) is backends[1]
    req = request(raw=b"{not json")
    await lb.inspect(req)
    assert lb.pick(backends, req) is backends[1]
    assert lb.pick(backends, None) is backends[1]


@pytest.mark.anyio
async def test_the_memory_expires_and_is_bounded(anyio_backend: object) -> None:
    clock = ManualClock()
    backends = pool(1, 1)
    lb = balancer(clock, ttl="10s", max_entries=40, block_size=64)
    home = await pick(lb, backends, chat(SYSTEMS[0], "q"))
    clock.advance(5)
    assert await pick(lb, backends, chat(SYSTEMS[0], "q")) is home  # used again: the TTL restarts
    clock.advance(8)
    assert lb.state.holders(chain_hashes(prompt_bytes(chat(SYSTEMS[0], "q"), 1 << 20), 64), clock.now())
    clock.advance(11)
    assert not lb.state.holders(chain_hashes(prompt_bytes(chat(SYSTEMS[0], "q"), 1 << 20), 64), clock.now())
    for n in range(20):
        await pick(lb, backends, chat(f"system {n} " * 40, "q"))
    assert len(lb.state.chains) <= 40


@pytest.mark.anyio
async def test_only_the_first_max_blocks_are_hashed(anyio_backend: object) -> None:
    lb = balancer(block_size=64, max_blocks=3)
    req = request(chat(SYSTEMS[0], "q"))
    await lb.inspect(req)
    assert len(req.state["balancer.prefix_chains"]) == 3


# --------------------------------------------------------------------------- on a real gateway


def prefix_config(procs: Processes) -> str:
    return f"""
services "api" {{
  load_balancer {{
    strategy = "prefix-cache"
    servers  = [{servers(procs, "b1", "b2", "b3")}]
{HEALTH}
    prefix-cache {{
      block_size = 128
      ttl        = "1h"
    }}
  }}
}}"""


@pytest.mark.anyio
async def test_requests_sharing_a_system_prompt_share_a_replica(
    anyio_backend: object, tmp_path: Path, procs: Processes
) -> None:
    for name in ("b1", "b2", "b3"):
        await procs.astart(name)
    async with running(tmp_path, prefix_config(procs)) as (gateway, client):

        async def served(body: dict[str, Any], path: str = "/v1/chat/completions") -> str:
            data = json.dumps(body).encode()
            response = await client.post(path, content=data, headers={"content-type": "application/json"})
            assert response.status_code == 200, response.text
            assert response.json()["received"] == len(data)  # forwarded whole
            return str(response.json()["backend"])

        homes = [await served(chat(SYSTEMS[n], "hello")) for n in range(3)]
        assert len(set(homes)) == 3, homes
        for n in range(3):
            for i in range(3):
                assert await served(chat(SYSTEMS[n], f"question {i}")) == homes[n]
            assert await served(anthropic(SYSTEMS[n], "hi"), "/v1/messages") == homes[n]
        # A replica that dies: its prompts go elsewhere, and stay there.
        procs.kill(homes[0])
        await eventually(lambda: not backend(gateway, procs.url(homes[0])).healthy)
        moved = await served(chat(SYSTEMS[0], "after"))
        assert moved != homes[0]
        assert await served(chat(SYSTEMS[0], "again")) == moved
        assert Counter([await served(chat(SYSTEMS[n], "x")) for n in (1, 2)]) == Counter(homes[1:])


@pytest.mark.anyio
@pytest.mark.parametrize("strategy", ["prefix-cache", "round-robin"])
async def test_the_demo_replicas_caches_are_hit(anyio_backend: object, tmp_path: Path, strategy: str) -> None:
    """Through a real gateway, over demo replicas that simulate a prefix cache: with `prefix-cache`
    every request after the first finds the shared system prompt cached; round-robin (the
    control) sends the second request to a replica that has never seen it."""
    replicas = ", ".join(f'{{ url = "demo://r{i}?prefix_cache=4096&token_delay=0" }}' for i in range(3))
    config = f"""
services "api" {{
  load_balancer {{
    strategy = "{strategy}"
    servers  = [{replicas}]
  }}
}}"""
    async with running(tmp_path, config) as (_, client):
        cached: list[tuple[int, int]] = []
        for i in range(6):
            response = await client.post("/v1/chat/completions", json=chat(SYSTEMS[0], f"question {i}"))
            assert response.status_code == 200, response.text
            hits, _, blocks = response.headers["x-demo-prefix-cache"].partition("/")
            cached.append((int(hits), int(blocks)))
    system_blocks = len(SYSTEMS[0]) // 64  # the demo's blocks: 64 bytes
    assert cached[0][0] == 0
    if strategy == "prefix-cache":
        assert all(hits >= system_blocks for hits, _ in cached[1:]), cached
    else:
        assert cached[1][0] == 0, cached
