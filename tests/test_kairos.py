"""The `kairos` service kind: a real gateway asks the built-in demo backend, answering as a router
model (`demo://router?router=1`), which of two fake model upstreams takes each request; the
fallbacks on a timeout, an unparsable answer and an unreachable model; the cache. The clients
are the openai SDK and httpx. Async tests run on asyncio, uvloop and trio."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from a3s_gateway.runtime.demo_backend import DemoApi, DemoOptions, options_from_url
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib.kairos import Candidate, DecisionCache, RouterPrompt

from .llm_fakes import LlmUpstream, llm_upstreams
from .routing_kinds import access_entries, chat, kind_errors, write_config
from .stubs import eventually, free_port, refusing_port

CANDIDATES = [
    Candidate("code", "coder", "Programming: writing, fixing or explaining code, python, bugs"),
    Candidate("general", "chat", "Everything else: poems, stories, questions, travel"),
]

# ------------------------------------------------------------------ the prompt, the answer, the cache


def _answer(content: Any) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


def test_the_answer_is_read_strictly() -> None:
    prompt = RouterPrompt(CANDIDATES, "m")
    for content in ("code", " code\n", "Code", "`code`", '"code"', "code."):
        chosen = prompt.read(_answer(content))
        assert chosen is not None and chosen.service == "coder", content
    for content in ("I pick code", "code, general", "", "codes", "- code", None, 4, ["code"]):
        assert prompt.read(_answer(content)) is None, content
    for bad in (b"not json", b"{}", b'{"choices": []}', b'{"choices": [{"message": null}]}', b"[1]"):
        assert prompt.read(bad) is None


def test_the_question_lists_the_candidates_and_asks_for_one_name() -> None:
    prompt = RouterPrompt(CANDIDATES, "router-model")
    body = json.loads(prompt.body("fix my python bug"))
    assert body["model"] == "router-model" and body["temperature"] == 0 and not body["stream"]
    system, user = body["messages"]
    assert "- code: Programming: writing, fixing or explaining code, python, bugs" in system["content"]
    assert "- general: Everything else" in system["content"]
    assert user == {"role": "user", "content": "fix my python bug"}
    assert prompt.key("a") != prompt.key("b") and prompt.key("a") == prompt.key("a")
    assert RouterPrompt(CANDIDATES, "other").key("a") != prompt.key("a")


def test_the_cache_is_bounded_and_entries_expire() -> None:
    cache = DecisionCache(size=2, ttl=10.0)
    cache.put(b"a", "code", now=0.0)
    cache.put(b"b", "general", now=1.0)
    assert cache.get(b"a", now=2.0) == "code"  # a is now the most recently used
    cache.put(b"c", "code", now=3.0)
    assert cache.get(b"b", now=3.0) is None and len(cache) == 2  # b was the least recently used
    assert cache.get(b"a", now=9.9) == "code"
    assert cache.get(b"a", now=10.0) is None and len(cache) == 1
    DecisionCache(size=0, ttl=1.0).put(b"x", "code", now=0.0)  # no cache: nothing kept


@pytest.mark.anyio
async def test_the_demo_backend_answers_as_a_router_model() -> None:
    assert options_from_url("demo://router?router=1").router
    api = DemoApi(DemoOptions(router=True))
    prompt = RouterPrompt(CANDIDATES, "m")

    async def answer(text: str) -> Candidate | None:
        reply = api.handle("POST", "/v1/chat/completions", prompt.body(text))
        assert reply.status == 200
        return prompt.read(b"".join([chunk async for chunk in reply.body]))

    assert await answer("a poem about travel") == CANDIDATES[1]
    assert await answer("fixing python bugs") == CANDIDATES[0]
    assert await answer("#babble fixing python bugs") is None


# ------------------------------------------------------------------ compile errors


def _errors(tmp_path: Path, block: str) -> list[str]:
    return kind_errors(tmp_path, "kairos", block, ("llm", "chat"))


def test_config_errors_are_reported_at_their_place(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        '    llm_service = "llm"\n    model = "m"\n    default = "nope"\n'
        '    candidate "two words" {\n      service = "chat"\n      description = "x"\n    }',
    )
    assert any(e.startswith("10:") and "'nope' is not a candidate" in e for e in errors), errors
    assert any(e.startswith("11:") and "must be one word" in e for e in errors), errors
    errors = _errors(
        tmp_path,
        '    llm_service = "nowhere"\n    model = "m"\n    default = "chat"\n'
        '    candidate "chat" { description = "x" }\n    candidate "code" { description = "y" }',
    )
    assert any("'nowhere' is not defined" in e for e in errors), errors
    assert any("'code' is not defined" in e for e in errors), errors  # the candidate's own name
    assert not any("'chat' is not defined" in e for e in errors), errors


# ------------------------------------------------------------------ a real gateway


@dataclass
class Setup:
    port: int
    coder: LlmUpstream
    chat: LlmUpstream
    log: Path
    gateway: Gateway
    path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def entries(self) -> list[dict[str, Any]]:
        return access_entries(self.log)

    def decisions(self, target: str, reason: str) -> float:
        assert self.gateway.metrics is not None
        labels = {"service": "agent", "target": target, "reason": reason}
        return self.gateway.metrics.value("a3s_gateway_routing_decisions_total", labels) or 0.0

    async def ask(self, text: str) -> str:
        """A chat completion through the gateway: which upstream answered."""
        return await chat(self.base, text)

    async def reasons(self, count: int) -> list[str]:
        await eventually(lambda: len(self.entries()) >= count)
        return [e["kairos_reason"] for e in self.entries()]


@asynccontextmanager
async def running(
    tmp_path: Path, llm: str = "demo://router?router=1", options: str = ""
) -> AsyncIterator[Setup]:
    async with llm_upstreams("coder", "chat") as ups:
        port = free_port()
        config = f"""
routers "agent" {{
  rule    = "PathPrefix(`/v1`)"
  service = "agent"
}}
# The router model, reached through this gateway itself.
routers "router-model" {{
  rule    = "PathPrefix(`/router`)"
  service = "router-backend"
  middlewares = ["strip"]
}}
middlewares "strip" {{
  type     = "strip-prefix"
  prefixes = ["/router"]
}}
services "router-backend" {{ load_balancer {{ servers = [{{ url = "demo://router?router=1" }}] }} }}
services "agent" {{
  kairos {{
    llm_service = "router-llm"
    model       = "a3s-router"
    default     = "general"
    candidate "code" {{
      service     = "coder"
      description = "Programming: writing, fixing or explaining code, python, bugs"
    }}
    candidate "general" {{
      service     = "chat"
      description = "Everything else: poems, stories, questions, travel"
    }}
    {options}
  }}
}}
services "router-llm" {{ load_balancer {{ servers = [{{ url = "{llm.replace("SELF", f"http://127.0.0.1:{port}")}" }}] }} }}
services "coder" {{ load_balancer {{ servers = [{{ url = "{ups["coder"].url}" }}] }} }}
services "chat" {{ load_balancer {{ servers = [{{ url = "{ups["chat"].url}" }}] }} }}
"""
        path, log = write_config(tmp_path, port, config)
        async with Gateway(str(path)) as gateway:
            yield Setup(port, ups["coder"], ups["chat"], log, gateway, path)


@pytest.mark.anyio
async def test_the_model_chooses_and_decisions_are_cached(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        assert await s.ask("please fix this python bug") == "from coder"
        assert await s.ask("write me a poem about travel") == "from chat"
        assert await s.ask("please fix this python bug") == "from coder"
        assert await s.reasons(3) == ["model", "model", "cache"]
        assert s.decisions("coder", "model") == 1 and s.decisions("coder", "cache") == 1
        entries = s.entries()
        assert [(e["kairos_choice"], e["kairos_service"]) for e in entries] == [
            ("code", "coder"),
            ("general", "chat"),
            ("code", "coder"),
        ]
        # The request went up as the client sent it.
        assert s.coder.last.body["messages"] == [{"role": "user", "content": "please fix this python bug"}]
        assert "python bug" not in s.log.read_text()  # the decision, never the text


@pytest.mark.anyio
async def test_timeout_and_unparsable_answers_fall_back_to_the_default(tmp_path: Path) -> None:
    async with running(tmp_path, options='deadline = "200ms"') as s:
        assert await s.ask("#slow fix this python bug") == "from chat"
        assert await s.ask("#babble fix this python bug") == "from chat"
        assert await s.ask("#babble fix this python bug") == "from chat"  # fallbacks are not cached
        assert await s.reasons(3) == ["timeout", "unparsable", "unparsable"]
        assert s.decisions("chat", "timeout") == 1 and s.decisions("chat", "unparsable") == 2


@pytest.mark.anyio
async def test_through_the_gateway_itself_and_without_a_model(tmp_path: Path) -> None:
    async with running(tmp_path, llm="SELF/router") as s:
        assert await s.ask("explain this python code") == "from coder"
        async with httpx.AsyncClient() as client:  # no text to route by
            response = await client.post(f"{s.base}/v1/chat/completions", json={"model": "m", "messages": []})
            assert response.status_code == 200 and s.chat.seen
        # The question passed through this gateway: its own access log line, then the request's.
        await eventually(lambda: len(s.entries()) >= 3)
        routers = [e["router"] for e in s.entries()]
        assert routers.count("router-model") == 1 and routers.count("agent") == 2
        assert [e.get("kairos_reason") for e in s.entries() if e["router"] == "agent"] == ["model", "no_text"]
    (tmp_path / "dead").mkdir()
    with refusing_port() as dead:
        async with running(tmp_path / "dead", llm=f"http://127.0.0.1:{dead}") as s:
            assert await s.ask("fix this python bug") == "from chat"
            assert await s.reasons(1) == ["error"]


@pytest.mark.anyio
async def test_the_cache_survives_a_reload_that_keeps_the_service(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        assert await s.ask("please fix this python bug") == "from coder"
        s.path.write_text(
            s.path.read_text() + '\nrouters "other" {\n  rule = "Path(`/x`)"\n  service = "chat"\n}\n'
        )
        diff = await s.gateway.reload()
        assert "service:agent" not in diff.changed
        assert await s.ask("please fix this python bug") == "from coder"
        # A changed kairos service starts with an empty cache.
        s.path.write_text(s.path.read_text().replace('default     = "general"', 'default     = "code"'))
        await s.gateway.reload()
        assert await s.ask("please fix this python bug") == "from coder"
        assert await s.reasons(3) == ["model", "cache", "model"]
