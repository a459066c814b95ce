"""cache end to end: configured in HCL, served by a running Gateway in front of a real backend
that counts its requests, called with httpx, curl and the openai SDK; the Redis store against
a real redis-server; a reload that keeps the node keeps its entries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import openai
import pytest
import redis

from ..backends import RawClient
from ..stubs import refusing_port
from .test_e2e_traffic import Reply, Seen, backend, gateway

pytestmark = pytest.mark.anyio


def cache_block(**options: Any) -> str:
    lines = "\n".join(f"  {k} = {json.dumps(v)}" for k, v in options.items())
    return f'middlewares "mw" {{\n  type = "cache"\n{lines}\n}}\n'


class Page:
    """A resource with a version: cacheable for a minute, with an ETag."""

    def __init__(self) -> None:
        self.version = 1

    async def __call__(self, seen: Seen) -> Reply:
        etag = f'"v{self.version}"'
        if seen.headers.get("if-none-match") == etag:
            return 304, [("etag", etag), ("cache-control", "max-age=60")], b""
        body = f"page {seen.target} v{self.version}".encode()
        headers = [("etag", etag), ("cache-control", "max-age=60"), ("content-length", str(len(body)))]
        return 200, headers, body


async def test_get_is_cached_for_httpx_and_curl(tmp_path: Path) -> None:
    async with backend(Page()) as be, gateway(tmp_path, be, cache_block()) as (_, client):
        first = await client.get("/doc")
        second = await client.get("/doc")
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
        assert second.text == first.text == "page /doc v1" and int(second.headers["age"]) >= 0
        assert len(be.seen) == 1
        curl = shutil.which("curl")
        assert curl is not None, "curl is installed by scripts/install-test-deps.sh"
        url = str(client.base_url.join("/doc"))
        out = await anyio.to_thread.run_sync(
            lambda: subprocess.run([curl, "-si", url], capture_output=True, check=True).stdout
        )
        assert b"\r\nx-cache: HIT\r\n" in out and out.endswith(b"page /doc v1")
        not_modified = await client.get("/doc", headers={"if-none-match": '"v1"'})
        assert not_modified.status_code == 304 and len(be.seen) == 1
        await client.post("/doc", content=b"new")  # a successful POST invalidates the URL
        assert (await client.get("/doc")).headers["x-cache"] == "MISS" and len(be.seen) == 3


async def test_a_reload_keeps_the_cache_and_a_changed_node_starts_empty(tmp_path: Path) -> None:
    async with backend(Page()) as be, gateway(tmp_path, be, cache_block(max_bytes="1MiB")) as (gw, client):
        await client.get("/doc")
        await gw.reload()
        assert (await client.get("/doc")).headers["x-cache"] == "HIT"
        path = tmp_path / "gateway.hcl"
        path.write_text(path.read_text().replace('"1MiB"', '"2MiB"'))
        await gw.reload()
        assert (await client.get("/doc")).headers["x-cache"] == "MISS"
        assert (await client.get("/doc")).headers["x-cache"] == "HIT" and len(be.seen) == 2


# --------------------------------------------------------------------------- completions


class Completions:
    """An OpenAI chat/completions upstream. A stream's second event waits for `release`, so a test
    can see the first one reach the client while the upstream is still holding the rest."""

    def __init__(self) -> None:
        self.release = anyio.Event()

    async def __call__(self, seen: Seen) -> Reply:
        request = json.loads(seen.body)
        words = ["Hello", " there"]
        if not request.get("stream"):
            body = json.dumps(_message(" ".join(words), len(words))).encode()
            return 200, [("content-type", "application/json"), ("content-length", str(len(body)))], body
        return 200, [("content-type", "text/event-stream")], self._events(words)

    async def _events(self, words: list[str]) -> AsyncIterator[bytes]:
        for i, word in enumerate(words):
            if i:
                await self.release.wait()
            yield _event({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
        yield _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        yield b"data: [DONE]\n\n"


def _message(text: str, tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "demo",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": 3 + tokens},
    }


def _event(payload: dict[str, Any]) -> bytes:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "demo", **payload}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def test_completions_through_the_openai_sdk(tmp_path: Path) -> None:
    upstream = Completions()
    async with (
        backend(upstream) as be,
        gateway(tmp_path, be, cache_block(llm=True)) as (_, client),
    ):
        base = str(client.base_url.join("/v1"))
        sdk = openai.OpenAI(base_url=base, api_key="tenant-a", max_retries=0)
        other = openai.OpenAI(base_url=base, api_key="tenant-b", max_retries=0)
        messages: Any = [{"role": "user", "content": "hi"}]

        def complete(sdk: openai.OpenAI) -> tuple[str | None, str | None]:
            raw = sdk.chat.completions.with_raw_response.create(
                model="demo", messages=messages, temperature=0
            )
            return raw.headers.get("x-cache"), raw.parse().choices[0].message.content

        assert await anyio.to_thread.run_sync(complete, sdk) == ("MISS", "Hello  there")
        assert await anyio.to_thread.run_sync(complete, sdk) == ("HIT", "Hello  there")
        assert await anyio.to_thread.run_sync(complete, other) == ("MISS", "Hello  there")
        assert len(be.seen) == 2

        token = anyio.lowlevel.current_token()

        def stream() -> tuple[str | None, list[str]]:
            with sdk.chat.completions.with_streaming_response.create(
                model="demo", messages=messages, temperature=0, stream=True
            ) as response:
                words = []
                for chunk in response.parse():
                    if chunk.choices and chunk.choices[0].delta.content:
                        words.append(chunk.choices[0].delta.content)
                        # The first word arrived while the upstream still holds the second.
                        anyio.from_thread.run_sync(upstream.release.set, token=token)
                return response.headers.get("x-cache"), words

        assert await anyio.to_thread.run_sync(stream) == ("MISS", ["Hello", " there"])
        assert await anyio.to_thread.run_sync(stream) == ("HIT", ["Hello", " there"])
        assert len(be.seen) == 3
        replay = await client.post(
            "/v1/chat/completions",
            headers={"authorization": "Bearer tenant-a"},
            json={"model": "demo", "messages": messages, "temperature": 0, "stream": True},
        )
        events = replay.text.split("\n\n")
        assert replay.headers["x-cache"] == "HIT" and events[-2:] == ["data: [DONE]", ""] and len(events) == 5


# --------------------------------------------------------------------------- redis


async def test_redis_store_is_shared_by_gateways(tmp_path: Path, redis_url: str) -> None:
    prefix = f"e2e:{uuid.uuid4().hex}:"
    config = cache_block(redis_url=redis_url, key_prefix=prefix, redis_timeout="5s")  # a loaded machine
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        backend(Page()) as be,
        gateway(tmp_path / "a", be, config) as (_, first),
        gateway(tmp_path / "b", be, config) as (_, second),
    ):
        host = {"host": "docs.test"}  # the cache key is the URL, authority included
        assert (await first.get("/doc", headers=host)).headers["x-cache"] == "MISS"
        hit = await second.get("/doc", headers=host)
        assert hit.headers["x-cache"] == "HIT" and hit.text == "page /doc v1" and len(be.seen) == 1
        keys = redis.Redis.from_url(redis_url).keys(prefix + "*")
        assert len(keys) == 2 and all(redis.Redis.from_url(redis_url).pttl(k) > 0 for k in keys)


async def test_redis_down_means_uncached_not_failed(tmp_path: Path) -> None:
    with refusing_port() as port:
        config = cache_block(redis_url=f"redis://127.0.0.1:{port}/0", retry_interval="1h")
        async with backend(Page()) as be, gateway(tmp_path, be, config) as (_, client):
            responses = [await client.get("/doc") for _ in range(3)]
            assert [r.status_code for r in responses] == [200] * 3
            assert [r.headers["x-cache"] for r in responses] == ["MISS"] * 3 and len(be.seen) == 3


ANTHROPIC_EVENTS = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":3}}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"text":"Hi"}}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":1}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


async def test_a_cached_anthropic_stream_is_replayed_one_event_per_chunk_on_the_wire(tmp_path: Path) -> None:
    async def messages(seen: Seen) -> Reply:
        async def events() -> AsyncIterator[bytes]:
            yield b"".join(ANTHROPIC_EVENTS[:2])  # the upstream's writes need not follow events
            yield b"".join(ANTHROPIC_EVENTS[2:])

        return 200, [("content-type", "text/event-stream")], events()

    body = json.dumps({"model": "claude", "max_tokens": 10, "temperature": 0, "stream": True, "messages": []})
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: gw.test\r\nx-api-key: k\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n{body}"
    ).encode()
    async with backend(messages) as be, gateway(tmp_path, be, cache_block(llm=True)) as (_, client):
        port = client.base_url.port
        assert port is not None
        for expected in ("MISS", "HIT"):
            async with RawClient.connect(port) as raw:
                await raw.send(head)
                status, headers = await raw.read_head()
                assert (status, dict(headers)["x-cache"]) == (200, expected)
                chunks = []
                while (chunk := await raw.read_chunk()) is not None:
                    chunks.append(chunk)
            assert b"".join(chunks) == b"".join(ANTHROPIC_EVENTS)
        assert chunks == ANTHROPIC_EVENTS and len(be.seen) == 1
