"""The built-in demo backend: its OpenAI and Anthropic APIs directly, then through a real gateway
with curl -N and the openai and anthropic SDKs (what `make run` promises on a fresh machine), and
both conversion directions of examples/llm-gateway.hcl served by it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import openai
import pytest

from a3s_gateway.runtime.demo_backend import DemoBackend, DemoOptions, options_from_url
from a3s_gateway.runtime.gateway import Gateway

from .stubs import free_port

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = [str(Path(sys.executable).with_name("a3s-gateway"))]


def chat(stream: bool = False, tokens: int = 4, text: str = "hello there") -> dict[str, Any]:
    return {
        "model": "m",
        "stream": stream,
        "max_tokens": tokens,
        "messages": [{"role": "user", "content": text}],
    }


def test_options_from_a_demo_url() -> None:
    assert options_from_url("demo://llm") == DemoOptions(model="llm")
    options = options_from_url("demo://x?token_delay=0.5&reply_tokens=3&model=gpt")
    assert options == DemoOptions(token_delay=0.5, model="gpt", reply_tokens=3)


@pytest.mark.anyio
async def test_the_demo_api(anyio_backend: Any) -> None:
    backend = DemoBackend(DemoOptions(token_delay=0.001))
    async with anyio.create_task_group() as tg:
        await tg.start(backend.serve)
        async with httpx.AsyncClient(base_url=backend.url) as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            models = (await client.get("/v1/models")).json()
            assert models["object"] == "list" and models["data"][0]["id"] == "a3s-demo"
            assert (await client.get("/nope")).status_code == 404
            assert (await client.get("/v1/chat/completions")).status_code == 405
            assert (await client.post("/v1/chat/completions", content=b"{")).status_code == 400

            completion = (await client.post("/v1/chat/completions", json=chat())).json()
            assert completion["object"] == "chat.completion"
            assert completion["choices"][0]["message"] == {
                "role": "assistant",
                "content": "You said: hello there",
            }
            assert completion["usage"]["completion_tokens"] == 4

            async with client.stream("POST", "/v1/chat/completions", json=chat(True)) as response:
                assert response.headers["content-type"] == "text/event-stream"
                events = [line async for line in response.aiter_lines() if line]
        tg.cancel_scope.cancel()
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "You said: hello there"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_the_demo_anthropic_api(anyio_backend: Any) -> None:
    backend = DemoBackend(DemoOptions(token_delay=0.001, reply_tokens=6))
    version = {"anthropic-version": "2023-06-01"}
    async with anyio.create_task_group() as tg:
        await tg.start(backend.serve)
        async with httpx.AsyncClient(base_url=backend.url) as client:
            models = (await client.get("/v1/models", headers=version)).json()
            assert models["data"][0]["type"] == "model" and models["has_more"] is False
            ask = {"model": "m", "messages": [{"role": "user", "content": "hi you"}]}
            refused = await client.post("/v1/messages", json=ask, headers=version)
            assert refused.status_code == 400 and refused.json()["type"] == "error"  # max_tokens required
            message = (await client.post("/v1/messages", json={**ask, "max_tokens": 4})).json()
            assert message["type"] == "message" and message["content"] == [
                {"type": "text", "text": "You said: hi you"}
            ]
            assert (message["stop_reason"], message["usage"]["output_tokens"]) == ("max_tokens", 4)
            whole = (await client.post("/v1/messages", json={**ask, "max_tokens": 100})).json()
            assert whole["stop_reason"] == "end_turn" and whole["usage"]["output_tokens"] == 6
            count = await client.post("/v1/messages/count_tokens", json=ask)
            assert count.json() == {"input_tokens": 8}
            async with client.stream(
                "POST", "/v1/messages", json={**ask, "max_tokens": 100, "stream": True}
            ) as r:
                assert r.headers["content-type"] == "text/event-stream"
                names = [line[7:] async for line in r.aiter_lines() if line.startswith("event: ")]
        tg.cancel_scope.cancel()
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[3:-3] == ["content_block_delta"] * 6
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


@pytest.mark.anyio
async def test_llm_gateway_example_runs_on_the_demo_model(anyio_backend: Any) -> None:
    """Without its variables examples/llm-gateway.hcl serves both directions from the demo."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with (
        Gateway(str(ROOT / "examples" / "llm-gateway.hcl"), env={"A3S_PORT": str(port)}),
        openai.AsyncOpenAI(base_url=f"{base}/openai/v1", api_key="any", max_retries=0) as oai,
        anthropic.AsyncAnthropic(base_url=f"{base}/anthropic", api_key="any", max_retries=0) as ant,
    ):
        completion = await oai.chat.completions.create(
            model="claude-demo", messages=[{"role": "user", "content": "ping"}], max_tokens=3
        )
        assert completion.choices[0].message.content == "You said: ping"
        assert completion.choices[0].finish_reason == "length"
        async with ant.messages.stream(
            model="gpt-demo", max_tokens=3, messages=[{"role": "user", "content": "pong"}]
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
        assert text == "You said: pong"


# --------------------------------------------------------------------------- through the gateway


@pytest.fixture(scope="module")
def gateway_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The quick start example, on a free port instead of 8080, run as `make run` runs it."""
    port = free_port()
    text = (ROOT / "examples" / "quickstart.hcl").read_text()
    assert '"127.0.0.1:8080"' in text
    path = tmp_path_factory.mktemp("quickstart") / "quickstart.hcl"
    path.write_text(
        text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace(
            "demo://llm", "demo://llm?token_delay=0.05"
        )
    )
    proc = subprocess.Popen(
        [*GATEWAY, "run", "--config", str(path)], stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the gateway did not come up"
            time.sleep(0.02)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_curl_streams_tokens_through_the_gateway(gateway_port: int) -> None:
    body = json.dumps(chat(True, tokens=20))
    curl = subprocess.Popen(
        ["curl", "-sN", f"http://127.0.0.1:{gateway_port}/v1/chat/completions", "-d", body],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert curl.stdout is not None
    first = curl.stdout.readline()
    # The first event is out while the model is still producing (20 tokens at 50 ms): no buffering.
    assert first.startswith("data: ") and curl.poll() is None
    rest = [line.strip() for line in curl.stdout if line.strip()]
    assert curl.wait(timeout=10) == 0
    assert rest[-1] == "data: [DONE]" and len(rest) == 20 + 2
    assert json.loads(first[6:])["object"] == "chat.completion.chunk"


def test_the_openai_sdk_works_through_the_gateway(gateway_port: int) -> None:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway_port}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "ping"}], max_tokens=5
    )
    assert completion.choices[0].message.content == "You said: ping This is"
    assert client.models.list().data[0].id == "llm"

    stream = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "stream me"}], max_tokens=6, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "You said: stream me This is"


def test_the_anthropic_sdk_works_through_the_gateway(gateway_port: int) -> None:
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{gateway_port}", api_key="unused", max_retries=0)
    message = client.messages.create(
        model="demo", max_tokens=5, messages=[{"role": "user", "content": "ping"}]
    )
    assert message.content[0].text == "You said: ping This is"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"
    assert client.models.list().data[0].id == "llm"
    with client.messages.stream(
        model="demo", max_tokens=6, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "You said: stream me This is"


@pytest.mark.anyio
async def test_the_simulated_prefix_cache(anyio_backend: Any) -> None:
    options = options_from_url("demo://llm?prefix_cache=12&prefill_delay=0.0001&token_delay=0")
    assert (options.prefix_cache, options.prefill_delay) == (12, 0.0001)
    backend = DemoBackend(options)
    system = "You are a careful assistant. " * 10  # 290 bytes: 4 full blocks and a part

    def body(question: str, stream: bool = False) -> dict[str, Any]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return {"model": "m", "max_tokens": 2, "stream": stream, "messages": messages}

    async with anyio.create_task_group() as tg:
        await tg.start(backend.serve)
        async with httpx.AsyncClient(base_url=backend.url) as client:

            async def cached(payload: dict[str, Any], path: str = "/v1/chat/completions") -> str:
                response = await client.post(path, json=payload)
                assert response.status_code == 200, response.text
                return response.headers["x-demo-prefix-cache"]

            assert await cached(body("first")) == "0/5"
            assert await cached(body("first", stream=True)) == "5/5"  # the same prompt: all cached
            assert await cached(body("second")) == "4/5"  # the system prompt's full blocks
            anthropic_body = {
                "model": "m",
                "max_tokens": 2,
                "system": system,
                "messages": [{"role": "user", "content": "q"}],
            }
            assert await cached(anthropic_body, "/v1/messages") == "4/5"  # its system prompt renders alike
            # 12 blocks at most: two other prompts push the first one out.
            await cached(body("x") | {"messages": [{"role": "system", "content": "A" * 400}]})
            await cached(body("x") | {"messages": [{"role": "system", "content": "B" * 400}]})
            assert await cached(body("first")) == "0/5"
            plain = DemoBackend(DemoOptions())
            await tg.start(plain.serve)
            response = await client.post(f"{plain.url}/v1/chat/completions", json=body("first"))
            assert "x-demo-prefix-cache" not in response.headers
            plain.stop()
        backend.stop()
