"""The `model_router` service kind: a real gateway, fake OpenAI upstreams on real sockets, and
the real `openai` SDK as the client (run in a thread: it is synchronous, the upstreams share
the test's event loop). Every async test runs on asyncio, uvloop and trio."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import anyio
import httpx
import openai
import pytest

from a3s_gateway.compiler import compile_config
from a3s_gateway.runtime.admin import inventory
from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.services.model_request import NotAJsonObject, find_model, with_model
from a3s_gateway.stdlib.services.model_table import ModelTable, Target, glob_error
from a3s_gateway.stdlib.services.parking import ParkingLot, retry_after
from a3s_gateway.stdlib.services.schemas.model_router import ModelRoute

from .llm_fakes import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    Failure,
    Fake,
    LlmUpstream,
    Turn,
    anthropic_fake,
    llm_upstreams,
    openai_fake,
)
from .stubs import free_port, refusing_port

T = TypeVar("T")

ROUTER = """
    aliases       = { fast = "claude-haiku-4-5", quick = "fast" }
    model "claude-haiku-4-5" {
      service        = "a"
      upstream_model = "claude-haiku-4-5-20251001"
      fallbacks      = ["gpt-4o-mini"]
    }
    model "gpt-4o" {
      service   = "a"
      fallbacks = ["gpt-4o-mini", "dead-model"]
    }
    model "solo" { service = "a" }
    model "slow-first" {
      service   = "a_slow"
      fallbacks = ["gpt-4o-mini"]
    }
    model "dead-model" { service = "dead" }
    model "dead-first" {
      service   = "dead"
      fallbacks = ["gpt-4o-mini"]
    }
    model "gpt-*" { service = "b" }
"""


def _front(port: int, router: str) -> str:
    """An entrypoint, `/v1` routed to the model_router service "llm" with `router` in its block."""
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "llm" {{
  rule    = "PathPrefix(`/v1`)"
  service = "llm"
}}
services "llm" {{
  model_router {{
{router}
  }}
}}
"""


def _config(port: int, ups: dict[str, LlmUpstream], dead: int, router: str = ROUTER, extra: str = "") -> str:
    return (
        _front(port, f"{router}\n{extra}")
        + f"""services "a" {{
  load_balancer {{ servers = [{{ url = "{ups["a"].url}" }}] }}
}}
services "a_slow" {{
  load_balancer {{ servers = [{{ url = "{ups["a"].url}" }}] }}
  timeouts {{ response_header = "300ms" }}
}}
services "b" {{ load_balancer {{ servers = [{{ url = "{ups["b"].url}" }}] }} }}
services "dead" {{ load_balancer {{ servers = [{{ url = "http://127.0.0.1:{dead}" }}] }} }}
"""
    )


@dataclass
class Setup:
    gateway: Gateway
    port: int
    a: LlmUpstream
    b: LlmUpstream
    path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base}/v1", api_key="client-key", max_retries=0, timeout=20)

    async def chat(self, model: str, **kwargs: Any) -> Any:
        return await self.chat_at(self.base, model, **kwargs)

    @staticmethod
    async def chat_at(base: str, model: str, **kwargs: Any) -> Any:
        """A chat completion through the gateway at `base`, with the openai SDK (in a thread)."""
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0, timeout=20)

        def call() -> Any:
            return client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], **kwargs
            )

        return await anyio.to_thread.run_sync(call)


async def in_thread(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


@asynccontextmanager
async def running(tmp_path: Path, extra: str = "") -> AsyncIterator[Setup]:
    async with llm_upstreams("a", "b") as ups:
        with refusing_port() as dead:
            port = free_port()
            path = tmp_path / "gw.hcl"
            path.write_text(_config(port, ups, dead, extra=extra))
            async with Gateway(str(path)) as gateway:
                yield Setup(gateway, port, ups["a"], ups["b"], path)


# ----------------------------------------------------------------------- routing


@pytest.mark.anyio
async def test_exact_names_globs_and_aliases_pick_the_service(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        assert (await s.chat("gpt-4o")).choices[0].message.content == "from a"
        assert (await s.chat("gpt-4.1-nano")).choices[0].message.content == "from b"  # the glob
        reply = await s.chat("quick")  # quick -> fast -> claude-haiku-4-5
        assert reply.choices[0].message.content == "from a"
        assert s.a.seen[-1].body["model"] == "claude-haiku-4-5-20251001"
        assert reply.model == "claude-haiku-4-5-20251001"


@pytest.mark.anyio
async def test_the_body_goes_up_byte_for_byte_unless_the_model_is_renamed(tmp_path: Path) -> None:
    body = b'{ "messages" : [{"role":"user","content":"h\\u00e9 \xc3\xa9"}],\n "model":"gpt-4o" ,"n":1}'
    async with running(tmp_path) as s, httpx.AsyncClient() as client:
        response = await client.post(f"{s.base}/v1/chat/completions", content=body)
        assert response.status_code == 200
        assert s.a.seen[-1].raw == body
        assert s.a.seen[-1].headers["content-length"] == str(len(body))
        renamed = body.replace(b'"gpt-4o"', b'"fast"')
        await client.post(f"{s.base}/v1/chat/completions", content=renamed)
        sent = s.a.seen[-1]
        assert sent.raw == body.replace(b'"gpt-4o"', b'"claude-haiku-4-5-20251001"')
        assert sent.headers["content-length"] == str(len(sent.raw))


@pytest.mark.anyio
async def test_a_chunked_body_is_read_whole_and_sent_with_its_length(tmp_path: Path) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"model": "gp'
        yield b't-4o", "messages": []}'

    async with running(tmp_path) as s, httpx.AsyncClient() as client:
        response = await client.post(f"{s.base}/v1/chat/completions", content=pieces())
        assert response.status_code == 200
        assert s.a.seen[-1].raw == b'{"model": "gpt-4o", "messages": []}'
        assert s.a.seen[-1].headers["content-length"] == "35"
        assert "transfer-encoding" not in s.a.seen[-1].headers


@pytest.mark.anyio
async def test_bad_bodies_get_an_error_in_the_clients_api_format(tmp_path: Path) -> None:
    async with running(tmp_path, extra='max_body = "1KiB"') as s, httpx.AsyncClient() as client:
        url = f"{s.base}/v1/chat/completions"
        cases = [
            (b"not json", 400, "not valid JSON"),
            (b"[1, 2]", 400, "not a JSON object"),
            (b'{"messages": []}', 400, "you must provide a model parameter"),
            (b'{"model": 4}', 400, "model must be a string"),
            (b'{"model": "llama-3"}', 404, "does not exist"),
            (b'{"model": "gpt-4o", "x": "' + b"y" * 2000 + b'"}', 413, "larger than 1024 bytes"),
        ]
        for body, status, message in cases:
            response = await client.post(url, content=body)
            assert response.status_code == status, body
            error = response.json()["error"]
            assert message in error["message"]
            assert set(error) == {"message", "type", "param", "code"}

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: read until past the limit
            yield b'{"model": "gpt-4o", "x": "'
            yield b"y" * 2000

        response = await client.post(url, content=chunked())
        assert response.status_code == 413
        # Anthropic's endpoint answers in Anthropic's format (with a trailing slash too, as
        # llm-keys and the conversion read the path).
        for path in ("/v1/messages", "/v1/messages/"):
            response = await client.post(f"{s.base}{path}", content=b'{"max_tokens": 5}')
            assert response.status_code == 400
            assert response.json() == {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "you must provide a model parameter"},
            }
        assert s.a.seen == [] and s.b.seen == []

        def sdk_call() -> None:
            s.sdk().chat.completions.create(model="llama-3", messages=[{"role": "user", "content": "x"}])

        with pytest.raises(openai.NotFoundError) as raised:
            await in_thread(sdk_call)
        assert raised.value.code == "model_not_found"


@pytest.mark.anyio
async def test_a_request_without_a_model_takes_the_default(tmp_path: Path) -> None:
    async with running(tmp_path, extra='default_model = "fast"') as s, httpx.AsyncClient() as client:
        response = await client.post(f"{s.base}/v1/chat/completions", content=b'{"messages": []}')
        assert response.status_code == 200
        assert s.a.seen[-1].body == {"model": "claude-haiku-4-5-20251001", "messages": []}
        await client.post(f"{s.base}/v1/chat/completions", content=b" {} ")
        assert s.a.seen[-1].body == {"model": "claude-haiku-4-5-20251001"}


# ----------------------------------------------------------------------- fallbacks


TRIGGERS = ["429", "500", "502", "503", "refused", "timeout"]


@pytest.mark.anyio
@pytest.mark.parametrize("trigger", TRIGGERS)
async def test_each_trigger_moves_the_request_to_the_fallback(tmp_path: Path, trigger: str) -> None:
    async with running(tmp_path) as s:
        # `dead` refuses connections; `a_slow` is `a` with a 300 ms response_header timeout.
        model = {"refused": "dead-first", "timeout": "slow-first"}.get(trigger, "gpt-4o")
        s.a.mode = "stall" if trigger == "timeout" else "status"
        s.a.status = int(trigger) if trigger.isdigit() else 500
        reply = await s.chat(model)
        assert reply.choices[0].message.content == "from b"
        assert len(s.a.seen) == (0 if trigger == "refused" else 1)
        assert len(s.b.seen) == 1
        assert s.b.seen[0].body["model"] == "gpt-4o-mini"


@pytest.mark.anyio
async def test_when_every_target_fails_the_client_gets_the_last_error_in_its_format(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        s.a.mode, s.a.status = "status", 503
        s.b.mode, s.b.status = "status", 500
        with pytest.raises(openai.APIStatusError) as raised:
            await s.chat("gpt-4o")  # a, then gpt-4o-mini on b, then dead-model on dead (refused)
        assert raised.value.status_code == 502
        assert raised.value.type == "server_error"
        assert len(s.a.seen) == 1 and len(s.b.seen) == 1


@pytest.mark.anyio
async def test_a_stream_that_stalls_before_its_first_byte_falls_back(tmp_path: Path) -> None:
    async with running(tmp_path, extra='first_byte_timeout = "3s"') as s:
        s.a.mode = "stall_body"  # a 200 head, then nothing

        def stream() -> str:
            chunks = s.sdk().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks)

        assert await in_thread(stream) == "from b"
        assert s.a.abandoned == 1


@pytest.mark.anyio
async def test_nothing_is_retried_once_bytes_reached_the_client(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        s.a.mode = "cut"  # one SSE chunk, then the connection closes
        received: list[str] = []

        def stream() -> None:
            chunks = s.sdk().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            for chunk in chunks:
                received.append(chunk.choices[0].delta.content or "")

        with pytest.raises((httpx.RemoteProtocolError, openai.APIError)):
            await in_thread(stream)
        assert received == ["", "from "]  # the role chunk, the first piece of text
        assert len(s.a.seen) == 1
        assert s.b.seen == []  # no second attempt


@pytest.mark.anyio
async def test_the_last_targets_answer_is_the_clients(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        s.a.mode, s.a.status = "status", 500
        with pytest.raises(openai.InternalServerError) as raised:
            await s.chat("solo")  # no fallbacks: the upstream's own answer
        assert raised.value.message.endswith("a says 500")


# ----------------------------------------------------------------------- parking


@pytest.mark.anyio
async def test_retry_after_parks_the_upstream_and_all_parked_is_a_429(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        s.a.mode, s.a.status, s.a.retry_after = "status", 429, "120"
        assert (await s.chat("gpt-4o")).choices[0].message.content == "from b"
        assert (await s.chat("gpt-4o")).choices[0].message.content == "from b"
        assert len(s.a.seen) == 1  # parked: the second request went straight to the fallback
        # `solo` is served by a too (its own target, not parked yet): the upstream's 429 comes back.
        with pytest.raises(openai.RateLimitError):
            await s.chat("solo")
        with pytest.raises(openai.RateLimitError) as raised:
            await s.chat("solo")  # every target parked: the gateway answers
        assert len(s.a.seen) == 2
        # The admin API lists the router with its parked targets (gpt-4o and solo on `a`).
        entry = next(e for e in inventory.services(s.gateway.graph) if e["name"] == "llm")
        assert entry["kind"] == "model_router" and entry["statistics"] == {"parked": 2}
        wait = int(raised.value.response.headers["retry-after"])
        assert 0 < wait <= 120
        assert raised.value.code == "rate_limit_exceeded"


@pytest.mark.anyio
async def test_max_park_caps_a_long_retry_after(tmp_path: Path) -> None:
    async with running(tmp_path, extra='max_park = "1s"') as s:
        s.a.mode, s.a.status, s.a.retry_after = "status", 429, "120"
        assert (await s.chat("gpt-4o")).choices[0].message.content == "from b"
        assert len(s.a.seen) == 1
        s.a.mode = "ok"
        # Parked for 1 s, not 120: `a` is tried again (each poll is a request; a generous bound).
        with anyio.fail_after(20):
            while (await s.chat("gpt-4o")).choices[0].message.content != "from a":
                await anyio.sleep(0.1)
        assert len(s.a.seen) == 2


@pytest.mark.anyio
async def test_parking_survives_a_reload_that_keeps_the_service(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        s.a.mode, s.a.status, s.a.retry_after = "status", 429, "120"
        await s.chat("gpt-4o")
        assert len(s.a.seen) == 1
        # A change elsewhere (another router): the model router is unchanged and stays parked.
        s.path.write_text(
            s.path.read_text() + '\nrouters "other" {\n  rule = "Path(`/x`)"\n  service = "b"\n}\n'
        )
        diff = await s.gateway.reload()
        assert "service:llm" not in diff.changed
        await s.chat("gpt-4o")
        assert len(s.a.seen) == 1
        # A changed model router starts afresh.
        s.path.write_text(s.path.read_text().replace('model "solo"', 'model "solo2"'))
        await s.gateway.reload()
        s.a.mode = "ok"
        assert (await s.chat("gpt-4o")).choices[0].message.content == "from a"


# ----------------------------------------------------------------------- compile errors


def _diagnostics(tmp_path: Path, router: str, extra_services: str = "") -> list[str]:
    ups = {n: LlmUpstream(name=n, port=1) for n in ("a", "b")}
    path = tmp_path / "bad.hcl"
    path.write_text(_config(8080, ups, 1, router=router) + extra_services)
    result = compile_config([str(path)])
    return [f"{d.span.line}:{d.span.col} {d.message}" for d in result.diagnostics if d.severity == "error"]


def test_config_errors_are_reported_at_their_keys(tmp_path: Path) -> None:
    router = """
    aliases = { fast = "quick", quick = "fast", smart = "nothing" }
    default_model = "nope"
    model "gpt-[" { service = "a" }
    model "claude-*" {
      service   = "anthorpic"
      fallbacks = ["o1"]
    }
"""
    errors = _diagnostics(tmp_path, router)
    assert errors == [
        "10:17 service 'llm': alias loop: fast -> quick -> fast",
        "10:49 service 'llm': alias 'smart' resolves to 'nothing', which no model block matches",
        "11:5 service 'llm': default_model 'nope' matches no model block",
        "12:5 service 'llm': unclosed '[' at position 5 in 'gpt-['",
        "15:20 service 'llm': fallback 'o1' matches no model block",
    ]
    errors = _diagnostics(
        tmp_path, 'model "claude-*" { service = "anthorpic" }\nmodel "x" { service = "llm" }'
    )
    assert errors == [
        "9:20 service 'llm': model_router target service 'anthorpic' is not defined",
        "10:13 service 'llm': model_router target 'llm' is a model_router service, not a pool of servers",
    ]


def test_a_model_router_has_no_servers_of_its_own(tmp_path: Path) -> None:
    errors = _diagnostics(tmp_path, 'model "x" { service = "a" }\n}\nload_balancer { servers = [] ')
    assert errors == [
        "11:1 service 'llm': a model_router service sends requests to other services; it takes no load_balancer"
    ]


# ----------------------------------------------------------------------- the pieces


def test_find_model_gives_the_value_and_its_place() -> None:
    text = ' {"a": {"model": "inner"}, "model" : "outer", "b": [1, {"model": 2}]} '
    value, start, end = find_model(text)  # type: ignore[misc]
    assert value == "outer" and text[start:end] == '"outer"'
    assert find_model('{"model": "x", "model": "y"}')[0] == "y"  # type: ignore[index]  # as json.loads
    assert find_model('{"messages": []}') is None
    assert find_model("{}") is None
    for bad in ("", "[]", '{"model": "x"', '{"model": "x"} x', "{'model': 1}", '{"a" 1}', '{"a": 1,}'):
        with pytest.raises(NotAJsonObject):
            find_model(bad)
    assert json.loads(with_model('{"a": 1, "model": "x"}', (18, 21), "é")) == {"a": 1, "model": "é"}
    assert json.loads(with_model("{ }", None, "m")) == {"model": "m"}


def test_glob_errors() -> None:
    assert glob_error("gpt-*") is None
    assert glob_error("gpt-[!0-9]?") is None
    assert glob_error("[]]") is None
    assert glob_error("") is not None
    assert "unclosed" in (glob_error("a[b") or "")
    assert "empty" in (glob_error("a[!]") or "")
    assert "reversed" in (glob_error("[9-0]") or "")


def test_exact_names_win_over_globs_and_globs_go_in_order() -> None:
    routes = {
        "gpt-*": ModelRoute(service="first"),
        "gpt-4*": ModelRoute(service="second"),
        "gpt-4o": ModelRoute(service="exact", fallbacks=["gpt-4o", "other", "gpt-4.1"]),
    }
    table = ModelTable(routes, {"g": "gpt-4o"})
    assert table.plan("g") == (Target("exact", "gpt-4o"), Target("first", "gpt-4.1"))
    assert table.plan("gpt-40") == (Target("first", "gpt-40"),)
    assert table.plan("claude") == ()
    long_name = "gpt-" + "x" * 1000
    assert table.plan(long_name) == (Target("first", long_name),)
    assert long_name not in table._plans  # client input this long is not kept


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    assert retry_after("30", now) == 30
    assert retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now) == 60
    assert retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now) is None  # in the past
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None
    assert retry_after("0", now) is None


def test_the_parking_lot_runs_on_a_manual_clock() -> None:
    clock = ManualClock()
    lot = ParkingLot()
    lot.park("a", 10, clock.now())
    lot.park("a", 5, clock.now())  # a shorter park does not shorten a longer one
    assert lot.parked("a", clock.now()) and not lot.parked("b", clock.now())
    assert lot.earliest(["a"], clock.now()) == 10
    assert lot.earliest(["a", "b"], clock.now()) == 0
    assert lot.statistics(clock.now()) == {"parked": 1}
    clock.advance(10)
    assert lot.statistics(clock.now()) == {"parked": 0}
    assert not lot.parked("a", clock.now())


# ----------------------------------------------------------------------- across providers


def _cross_config(port: int, a: str, claude: str, gpt: str) -> str:
    router = f"""
    model "gpt-4o" {{
      service   = "a"
      fallbacks = ["claude-haiku-4-5"]
    }}
    model "claude-haiku-4-5" {{
      service        = "anthropic"
      api            = "anthropic"
      api_key        = "{ANTHROPIC_KEY}"
      upstream_model = "claude-haiku-4-5-20251001"
      fallbacks      = ["gpt-fake"]
    }}
    model "gpt-fake" {{
      service = "openai"
      api     = "openai"
      api_key = "{OPENAI_KEY}"
    }}
"""
    return (
        _front(port, router)
        + f"""
services "a"         {{ load_balancer {{ servers = [{{ url = "{a}" }}] }} }}
services "anthropic" {{ load_balancer {{ servers = [{{ url = "{claude}" }}] }} }}
services "openai"    {{ load_balancer {{ servers = [{{ url = "{gpt}" }}] }} }}
"""
    )


@dataclass
class Cross:
    base: str
    a: LlmUpstream
    claude: Fake
    gpt: Fake


@asynccontextmanager
async def across(tmp_path: Path) -> AsyncIterator[Cross]:
    async with llm_upstreams("a") as ups, anthropic_fake() as claude, openai_fake() as gpt:
        port = free_port()
        path = tmp_path / "gw.hcl"
        path.write_text(_cross_config(port, ups["a"].url, claude.url, gpt.url))
        async with Gateway(str(path)):
            yield Cross(f"http://127.0.0.1:{port}", ups["a"], claude, gpt)


@pytest.mark.anyio
async def test_an_openai_client_falls_back_to_anthropic_through_conversion(tmp_path: Path) -> None:
    async with across(tmp_path) as x:
        x.a.mode, x.a.status, x.a.retry_after = "status", 429, "60"
        client = openai.OpenAI(base_url=f"{x.base}/v1", api_key="client-key", max_retries=0, timeout=20)

        def ask() -> Any:
            return client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            )

        reply = await in_thread(ask)
        assert reply.choices[0].message.content == "Hello there, friend."
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None and reply.usage.prompt_tokens == 11
        sent = x.claude.last
        assert sent.target == "/v1/messages"
        assert sent.body["model"] == "claude-haiku-4-5-20251001"
        assert sent.body["system"] == "Be brief."
        assert sent.headers["x-api-key"] == ANTHROPIC_KEY
        assert "authorization" not in sent.headers  # the client's key never reaches the upstream

        def stream() -> str:
            chunks = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        assert await in_thread(stream) == "Hello there, friend."
        assert len(x.a.seen) == 1  # parked by its Retry-After: the stream went straight to Anthropic


@pytest.mark.anyio
async def test_an_anthropic_error_moves_on_and_the_next_service_gets_its_own_key(tmp_path: Path) -> None:
    async with across(tmp_path) as x:
        overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        x.claude.script = lambda seen: Failure(529, overloaded)
        reply = await Setup.chat_at(x.base, "claude-haiku-4-5")
        assert reply.choices[0].message.content == "Hello there, friend."
        assert x.gpt.last.headers["authorization"] == f"Bearer {OPENAI_KEY}"  # not the client's
        assert x.gpt.last.body["model"] == "gpt-fake"
        assert len(x.claude.seen) == 1

        # The Anthropic SDK, served by the OpenAI-compatible service on Anthropic's failure.
        client = anthropic.Anthropic(base_url=x.base, api_key="client-key", max_retries=0, timeout=20)

        def ask() -> Any:
            return client.messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            )

        message = await in_thread(ask)
        assert message.content[0].text == "Hello there, friend."  # type: ignore[union-attr]
        assert x.gpt.last.body["model"] == "gpt-fake"
        assert x.claude.last.headers["x-api-key"] == ANTHROPIC_KEY


@pytest.mark.anyio
async def test_a_stream_is_relayed_event_by_event_while_a_fallback_remains(tmp_path: Path) -> None:
    """The first event reaches the client before the upstream sends the next one: only the first
    chunk is awaited (to decide on a fallback), nothing is buffered after it."""
    async with across(tmp_path) as x:
        gate = anyio.Event()  # the fake holds its second content event until this is set
        x.claude.script = lambda seen: Turn(gate=gate)
        client = openai.OpenAI(base_url=f"{x.base}/v1", api_key="client-key", max_retries=0, timeout=20)

        def stream() -> list[str]:
            pieces: list[str] = []
            chunks = client.chat.completions.create(
                model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            for chunk in chunks:
                text = chunk.choices[0].delta.content if chunk.choices else None
                if text:
                    pieces.append(text)
                    if len(pieces) == 1:
                        anyio.from_thread.run_sync(gate.set)
            return pieces

        pieces = await in_thread(stream)
        assert len(pieces) > 1 and "".join(pieces) == "Hello there, friend."
