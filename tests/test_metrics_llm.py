"""The LLM layer's metrics and access-log fields, through a running gateway: llm-keys (and a
model_router) in front of fake OpenAI/Anthropic upstreams (tests/llm_fakes.py), called with
the real openai and anthropic SDKs, streaming and not. The counts must be the fakes' usage, and
no client-chosen model name or admin-made key may grow the series.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from a3s_gateway.runtime.observe.metrics import GatewayMetrics
from a3s_gateway.stdlib.common.key_store import KeyRecord
from a3s_gateway.stdlib.common.model_labels import ModelLabels
from a3s_gateway.stdlib.middlewares.llm_keys import API_KEYS_LABEL, MAX_API_KEY_LABELS, LlmKeysState

from .llm_fakes import FakeLlm, fake_llm, gateway_hcl
from .stubs import eventually, free_port, refusing_port
from .tcp_peers import serving

pytestmark = pytest.mark.anyio

ALICE = "sk-alice-0123456789abcdef0123"
PROMPT, WORDS = 10, 5  # the fake's usage: prompt tokens, and output tokens (one per word)
KEYS = f"""
  keys "alice" {{
    key = "{ALICE}"
  }}
  prices "gpt-4o" {{
    input  = 2.5
    output = 10
  }}
"""


def observed(tmp_path: Path) -> str:
    return f'metrics {{\n  prometheus {{}}\n}}\naccess_log {{\n  path = "{tmp_path / "access.log"}"\n}}\n'


@asynccontextmanager
async def gateway(tmp_path: Path, config: str) -> AsyncIterator[GatewayMetrics]:
    async with serving(tmp_path, config) as gw:
        assert gw.metrics is not None
        yield gw.metrics


@asynccontextmanager
async def keyed(tmp_path: Path, keys: str = KEYS) -> AsyncIterator[tuple[GatewayMetrics, int]]:
    """A fake upstream behind a gateway whose router goes through llm-keys (`keys`), observed."""
    async with fake_llm(prompt_tokens=PROMPT, words=WORDS) as llm:
        port = free_port()
        async with gateway(tmp_path, gateway_hcl(port, llm.url, keys, extra=observed(tmp_path))) as m:
            yield m, port


def oai(port: int, key: str = ALICE) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)


HI: Any = [{"role": "user", "content": "hi"}]


def log_lines(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "access.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def v(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.value(f"a3s_gateway_{name}", labels) or 0.0


def label_values(metrics: GatewayMetrics, family: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for metric in metrics.registry.collect()
        for sample in metric.samples
        if sample.name == f"a3s_gateway_{family}"
    }


async def test_tokens_requests_token_times_and_log_lines_match_the_upstream_usage(tmp_path: Path) -> None:
    async with keyed(tmp_path) as (m, port):
        async with oai(port) as client:
            done = await client.chat.completions.create(model="gpt-4o", messages=HI)
            assert done.usage is not None and done.usage.prompt_tokens == PROMPT
            stream = await client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
            chunks = [chunk async for chunk in stream]
            assert chunks and all(chunk.usage is None for chunk in chunks)  # usage chunk stripped
        async with anthropic.AsyncAnthropic(
            base_url=f"http://127.0.0.1:{port}", api_key=ALICE, max_retries=0
        ) as claude:
            async with claude.messages.stream(model="claude-x", max_tokens=50, messages=HI) as events:
                final = await events.get_final_message()
            assert final.usage.output_tokens == WORDS
        gpt = {"service": "llm", "model": "gpt-4o", "key": "alice"}
        other = {"service": "llm", "model": "other", "key": "alice"}
        # Counted when the body is over on the gateway's side: maybe just after the client read it.
        await eventually(lambda: v(m, "gen_ai_requests_total", **other, code="200") == 1)
        assert v(m, "gen_ai_requests_total", **gpt, code="200") == 2
        assert v(m, "gen_ai_client_token_usage_tokens_total", **gpt, type="input") == 2 * PROMPT
        assert v(m, "gen_ai_client_token_usage_tokens_total", **gpt, type="output") == 2 * WORDS
        # claude-x is named nowhere in the config: counted as "other".
        assert v(m, "gen_ai_client_token_usage_tokens_total", **other, type="input") == PROMPT
        assert v(m, "gen_ai_client_token_usage_tokens_total", **other, type="output") == WORDS
        # Token times are for streamed answers only: one per stream.
        for model in ("gpt-4o", "other"):
            at = {"service": "llm", "model": model}
            assert v(m, "gen_ai_server_time_to_first_token_seconds_count", **at) == 1
            assert v(m, "gen_ai_server_time_per_output_token_seconds_count", **at) == 1
            assert v(m, "gen_ai_server_time_per_output_token_seconds_sum", **at) > 0
        await eventually(lambda: len(log_lines(tmp_path)) == 3)
    lines = log_lines(tmp_path)
    assert [(line["llm_model"], line["llm_key"]) for line in lines] == [
        ("gpt-4o", "alice"),
        ("gpt-4o", "alice"),
        ("claude-x", "alice"),
    ]
    for line in lines:
        assert (line["llm_input_tokens"], line["llm_output_tokens"]) == (PROMPT, WORDS)
        assert line["llm_upstream_model"] == line["llm_model"]


async def test_invented_model_names_and_refusals_do_not_grow_the_series(tmp_path: Path) -> None:
    async with keyed(tmp_path) as (m, port):
        async with oai(port) as client:
            for n in range(12):
                await client.chat.completions.create(model=f"made-up-{n}", messages=HI)
        async with oai(port, "sk-wrong") as wrong:
            with pytest.raises(openai.AuthenticationError):
                await wrong.chat.completions.create(model="made-up-x", messages=HI)
        # Counted when the body is over on the gateway's side: maybe just after the client read it.
        await eventually(
            lambda: (
                v(m, "gen_ai_requests_total", service="llm", model="other", key="none", code="401") == 1
                and v(m, "gen_ai_requests_total", service="llm", model="other", key="alice", code="200") == 12
            )
        )
        assert label_values(m, "gen_ai_client_token_usage_tokens_total", "model") == {"other"}
        assert label_values(m, "gen_ai_requests_total", "model") == {"other"}
        assert label_values(m, "gen_ai_requests_total", "key") == {"alice", "none"}
        assert v(m, "gen_ai_requests_total", service="llm", model="other", key="alice", code="200") == 12
        assert v(m, "gen_ai_requests_total", service="llm", model="other", key="none", code="401") == 1
        await eventually(lambda: len(log_lines(tmp_path)) == 13)
    # The log line keeps the name the client sent (a log is not a label set).
    assert log_lines(tmp_path)[0]["llm_model"] == "made-up-0"


def test_model_labels_are_the_configs_names_and_globs() -> None:
    labels = ModelLabels(["gpt-4o", "claude-*", "fast", "claude-*"])
    assert [labels.label(m) for m in ("gpt-4o", "claude-haiku-4-5", "gpt-4o-2024", None, "fast")] == [
        "gpt-4o",
        "claude-*",
        "other",
        "other",
        "fast",
    ]


def test_keys_made_through_the_admin_api_are_capped_as_labels() -> None:
    state = LlmKeysState.__new__(LlmKeysState)
    state.api_key_labels = set()
    names = [state.key_label(KeyRecord(f"k{n}", "d", source="api")) for n in range(MAX_API_KEY_LABELS + 10)]
    assert names[:MAX_API_KEY_LABELS] == [f"k{n}" for n in range(MAX_API_KEY_LABELS)]
    assert set(names[MAX_API_KEY_LABELS:]) == {API_KEYS_LABEL}
    assert state.key_label(KeyRecord("k0", "d", source="api")) == "k0"  # a labelled key keeps its name
    assert state.key_label(KeyRecord("from-config", "d")) == "from-config"  # config keys: always


def router_config(port: int, bad: FakeLlm, good: FakeLlm, tmp_path: Path, chain: str = '["keys"]') -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "llm" {{
  rule        = "PathPrefix(`/`)"
  service     = "llm"
  middlewares = {chain}
}}
middlewares "keys" {{
  type = "llm-keys"
{KEYS}
}}
services "llm" {{
  model_router {{
    aliases = {{ smart = "gpt-4o" }}
    model "gpt-4o" {{
      service   = "bad"
      fallbacks = ["gpt-4o-mini"]
    }}
    model "gpt-4o-mini" {{ service = "good" }}
    model "gpt-5*" {{ service = "good" }}
  }}
}}
services "bad" {{
  load_balancer {{ servers = [{{ url = "{bad.url}" }}] }}
}}
services "good" {{
  load_balancer {{ servers = [{{ url = "{good.url}" }}] }}
}}
{observed(tmp_path)}
"""


async def test_fallbacks_and_the_routers_model_labels(tmp_path: Path) -> None:
    async with fake_llm(status=503) as bad, fake_llm(prompt_tokens=PROMPT, words=WORDS) as good:
        port = free_port()
        async with gateway(tmp_path, router_config(port, bad, good, tmp_path)) as m, oai(port) as client:
            for model in ("gpt-4o", "smart", "gpt-5-a", "gpt-5-b"):
                stream = await client.chat.completions.create(model=model, messages=HI, stream=True)
                assert [chunk async for chunk in stream]
            assert v(m, "gen_ai_fallbacks_total", service="llm", model="gpt-4o") == 1
            assert v(m, "gen_ai_fallbacks_total", service="llm", model="smart") == 1
            assert label_values(m, "gen_ai_requests_total", "model") == {"gpt-4o", "smart", "gpt-5*"}
            # Counted once, by llm-keys (the model_router behind it does not count them again).
            assert (
                sum(
                    v(m, "gen_ai_requests_total", service="llm", model=x, key="alice", code="200")
                    for x in ("gpt-4o", "smart", "gpt-5*")
                )
                == 4
            )
            five = {"service": "llm", "model": "gpt-5*", "key": "alice"}
            assert v(m, "gen_ai_client_token_usage_tokens_total", **five, type="output") == 2 * WORDS
            # Metered once: by llm-keys, not again by the model_router behind it (as key "none").
            await eventually(lambda: len(log_lines(tmp_path)) == 4)
            assert label_values(m, "gen_ai_client_token_usage_tokens_total", "key") == {"alice"}
            outputs = [
                v(
                    m,
                    "gen_ai_client_token_usage_tokens_total",
                    service="llm",
                    model=x,
                    key="alice",
                    type="output",
                )
                for x in ("gpt-4o", "smart", "gpt-5*")
            ]
            assert sum(outputs) == 4 * WORDS
            ttfts = [
                v(m, "gen_ai_server_time_to_first_token_seconds_count", service="llm", model=x)
                for x in ("gpt-4o", "smart", "gpt-5*")
            ]
            assert sum(ttfts) == 4
            await eventually(lambda: len(log_lines(tmp_path)) == 4)
    first = log_lines(tmp_path)[0]
    assert (first["llm_model"], first["llm_upstream_model"]) == ("gpt-4o", "gpt-4o-mini")
    assert (first["llm_input_tokens"], first["llm_output_tokens"]) == (PROMPT, WORDS)


async def test_redis_errors_and_fail_open_passes_are_counted(tmp_path: Path) -> None:
    with refusing_port() as dead:
        keys = KEYS + f'  redis_url = "redis://127.0.0.1:{dead}/0"\n  fail_open = true\n'
        keys = keys.replace('key = "', 'tpm = 1000\n    key = "', 1)  # a meter, so Redis is asked
        async with keyed(tmp_path, keys) as (m, port), oai(port) as client:
            done = await client.chat.completions.create(model="gpt-4o", messages=HI)
            assert done.usage is not None
            assert v(m, "llm_keys_failed_open_total", middleware="keys") == 1
            assert v(m, "llm_keys_redis_errors_total", middleware="keys") >= 1


async def test_the_common_log_format_carries_the_models_and_tokens(tmp_path: Path) -> None:
    async with fake_llm(prompt_tokens=PROMPT, words=WORDS) as llm:
        port, log = free_port(), tmp_path / "common.log"
        extra = f'access_log {{\n  path = "{log}"\n  format = "common"\n}}\n'
        async with serving(tmp_path, gateway_hcl(port, llm.url, KEYS, extra=extra)):
            async with oai(port) as client:
                await client.chat.completions.create(model="gpt-4o", messages=HI)
            await eventually(lambda: log.exists() and log.read_text().count("\n") == 1)
    assert log.read_text().endswith(f'ms "gpt-4o" "gpt-4o" {PROMPT} {WORDS}\n')


async def test_cache_hits_and_misses_are_read_from_the_cache_when_scraped(tmp_path: Path) -> None:
    cache = """middlewares "completions" {
  type      = "cache"
  llm       = true
  llm_scope = "shared"
}
"""
    async with fake_llm(prompt_tokens=PROMPT, words=WORDS) as llm:
        port = free_port()
        hcl = gateway_hcl(
            port, llm.url, KEYS, chain=("completions", "keys"), extra=cache + observed(tmp_path)
        )
        async with gateway(tmp_path, hcl) as m, oai(port) as client:
            for _ in range(3):
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-4o", messages=HI, temperature=0
                )
                assert raw.parse().usage is not None
            assert raw.headers["x-cache"] == "HIT"
            assert v(m, "cache_requests_total", middleware="completions", result="miss") == 1
            assert v(m, "cache_requests_total", middleware="completions", result="hit") == 2
            assert len(llm.seen) == 1
            exposed, _ = m.exposition()
            assert b'a3s_gateway_cache_requests_total{middleware="completions",result="hit"} 2.0' in exposed


async def test_a_model_router_alone_counts_requests_by_status(tmp_path: Path) -> None:
    async with fake_llm(status=503) as bad, fake_llm(prompt_tokens=PROMPT, words=WORDS) as good:
        port = free_port()
        config = router_config(port, bad, good, tmp_path, chain="[]")
        async with gateway(tmp_path, config) as m, oai(port, "anything") as client:
            await client.chat.completions.create(model="gpt-4o", messages=HI)
            for n in range(3):
                with pytest.raises(openai.NotFoundError):
                    await client.chat.completions.create(model=f"nope-{n}", messages=HI)
            at = {"service": "llm", "key": "none"}
            assert v(m, "gen_ai_requests_total", **at, model="gpt-4o", code="200") == 1
            assert v(m, "gen_ai_requests_total", **at, model="other", code="404") == 3
            assert v(m, "gen_ai_fallbacks_total", service="llm", model="gpt-4o") == 1
            await eventually(lambda: len(log_lines(tmp_path)) == 4)
    first = log_lines(tmp_path)[0]
    assert (first["llm_model"], first["llm_upstream_model"], first["llm_key"]) == (
        "gpt-4o",
        "gpt-4o-mini",
        None,
    )
    # No llm-keys in front: the model_router read the upstream's usage itself.
    assert (first["llm_input_tokens"], first["llm_output_tokens"]) == (PROMPT, WORDS)


def alone_config(port: int, bad: FakeLlm, good: FakeLlm, tmp_path: Path) -> str:
    """A model_router with no llm-keys in front: same-API models, and fallbacks from a failing
    service to the other API's (each client is converted on the way)."""
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "llm" {{
  rule    = "PathPrefix(`/`)"
  service = "llm"
}}
services "llm" {{
  model_router {{
    model "gpt-4o" {{ service = "good" }}
    model "claude-x" {{ service = "good" }}
    model "to-claude" {{
      service   = "bad"
      fallbacks = ["claude-up"]
    }}
    model "to-gpt" {{
      service   = "bad"
      api       = "anthropic"
      fallbacks = ["gpt-up"]
    }}
    model "claude-up" {{
      service = "good"
      api     = "anthropic"
    }}
    model "gpt-up" {{
      service = "good"
      api     = "openai"
    }}
  }}
}}
services "bad" {{
  load_balancer {{ servers = [{{ url = "{bad.url}" }}] }}
}}
services "good" {{
  load_balancer {{ servers = [{{ url = "{good.url}" }}] }}
}}
{observed(tmp_path)}
"""


async def test_a_model_router_alone_meters_tokens_and_token_times(tmp_path: Path) -> None:
    async with fake_llm(status=503) as bad, fake_llm(prompt_tokens=PROMPT, words=WORDS) as good:
        port = free_port()
        async with gateway(tmp_path, alone_config(port, bad, good, tmp_path)) as m:
            async with oai(port, "anything") as client:
                for model in ("gpt-4o", "to-claude"):
                    done = await client.chat.completions.create(model=model, messages=HI)
                    assert done.usage is not None and done.usage.completion_tokens == WORDS
                    stream = await client.chat.completions.create(model=model, messages=HI, stream=True)
                    chunks = [chunk async for chunk in stream]
                    assert chunks and all(chunk.usage is None for chunk in chunks)  # asked, then stripped
                wanted = await client.chat.completions.create(
                    model="gpt-4o", messages=HI, stream=True, stream_options={"include_usage": True}
                )
                usage = [chunk.usage async for chunk in wanted if chunk.usage is not None]
                assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(PROMPT, WORDS)]
            async with anthropic.AsyncAnthropic(
                base_url=f"http://127.0.0.1:{port}", api_key="anything", max_retries=0
            ) as claude:
                for model in ("claude-x", "to-gpt"):
                    message = await claude.messages.create(model=model, max_tokens=50, messages=HI)
                    assert message.usage.output_tokens == WORDS
                    async with claude.messages.stream(model=model, max_tokens=50, messages=HI) as events:
                        final = await events.get_final_message()
                    assert final.usage.output_tokens == WORDS
            # The upstream billed the same usage for every request; the fallbacks' failed
            # attempts (503) billed nothing.
            models = ("gpt-4o", "to-claude", "claude-x", "to-gpt")
            counts = {"gpt-4o": 3, "to-claude": 2, "claude-x": 2, "to-gpt": 2}
            await eventually(
                lambda: all(
                    v(m, "gen_ai_requests_total", service="llm", model=x, key="none", code="200") == counts[x]
                    for x in models
                )
            )
            for x in models:
                at = {"service": "llm", "model": x, "key": "none"}
                assert (
                    v(m, "gen_ai_client_token_usage_tokens_total", **at, type="input") == counts[x] * PROMPT
                )
                assert (
                    v(m, "gen_ai_client_token_usage_tokens_total", **at, type="output") == counts[x] * WORDS
                )
                streams = counts[x] - 1  # one non-streamed request per model
                assert (
                    v(m, "gen_ai_server_time_to_first_token_seconds_count", service="llm", model=x) == streams
                )
                assert (
                    v(m, "gen_ai_server_time_per_output_token_seconds_count", service="llm", model=x)
                    == streams
                )
            assert label_values(m, "gen_ai_client_token_usage_tokens_total", "key") == {"none"}
            assert v(m, "gen_ai_fallbacks_total", service="llm", model="to-claude") == 2
            await eventually(lambda: len(log_lines(tmp_path)) == 9)
    lines = log_lines(tmp_path)
    assert [(line["llm_model"], line["llm_upstream_model"]) for line in lines] == [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o", "gpt-4o"),
        ("to-claude", "claude-up"),
        ("to-claude", "claude-up"),
        ("gpt-4o", "gpt-4o"),
        ("claude-x", "claude-x"),
        ("claude-x", "claude-x"),
        ("to-gpt", "gpt-up"),
        ("to-gpt", "gpt-up"),
    ]
    for line in lines:
        assert (line["llm_key"], line["llm_input_tokens"], line["llm_output_tokens"]) == (None, PROMPT, WORDS)


def converted_config(port: int, good: FakeLlm, tmp_path: Path) -> str:
    """llm-convert in front of a model_router (no llm-keys): the router sees, and meters, the
    upstream's API; the client gets its own."""
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "openai" {{
  rule        = "PathPrefix(`/openai/`)"
  service     = "llm"
  middlewares = ["to-anthropic"]
}}
routers "anthropic" {{
  rule        = "PathPrefix(`/anthropic/`)"
  service     = "llm"
  middlewares = ["to-openai"]
}}
middlewares "to-anthropic" {{
  type     = "llm-convert"
  client   = "openai"
  upstream = "anthropic"
}}
middlewares "to-openai" {{
  type     = "llm-convert"
  client   = "anthropic"
  upstream = "openai"
}}
services "llm" {{
  model_router {{
    model "*" {{ service = "good" }}
  }}
}}
services "good" {{
  load_balancer {{ servers = [{{ url = "{good.url}" }}] }}
}}
{observed(tmp_path)}
"""


async def test_a_model_router_behind_llm_convert_meters_the_upstreams_format(tmp_path: Path) -> None:
    async with fake_llm(prompt_tokens=PROMPT, words=WORDS) as good:
        port = free_port()
        async with gateway(tmp_path, converted_config(port, good, tmp_path)) as m:
            base = f"http://127.0.0.1:{port}/openai/v1"
            async with openai.AsyncOpenAI(base_url=base, api_key="anything", max_retries=0) as client:
                stream = await client.chat.completions.create(model="claude-x", messages=HI, stream=True)
                assert [chunk async for chunk in stream]
            async with anthropic.AsyncAnthropic(
                base_url=f"http://127.0.0.1:{port}/anthropic", api_key="anything", max_retries=0
            ) as claude:
                async with claude.messages.stream(model="gpt-4o", max_tokens=50, messages=HI) as events:
                    final = await events.get_final_message()
                assert final.usage.output_tokens == WORDS
            at = {"service": "llm", "model": "*", "key": "none"}
            await eventually(lambda: v(m, "gen_ai_requests_total", **at, code="200") == 2)
            assert v(m, "gen_ai_client_token_usage_tokens_total", **at, type="input") == 2 * PROMPT
            assert v(m, "gen_ai_client_token_usage_tokens_total", **at, type="output") == 2 * WORDS
            await eventually(lambda: len(log_lines(tmp_path)) == 2)
    for line in log_lines(tmp_path):
        assert (line["llm_input_tokens"], line["llm_output_tokens"]) == (PROMPT, WORDS)
