"""llm-keys' parts on their own: usage read from bodies as they stream (split anywhere), and the
ledger's reserve/settle semantics, in memory on a manual clock and in a real redis-server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import pytest

from a3s_gateway.runtime.clock import ManualClock
from a3s_gateway.stdlib.common.llm_usage import (
    LlmRequest,
    Usage,
    UsageMeter,
    api_format,
    prepare_body,
    read_request,
)
from a3s_gateway.stdlib.common.redis_scripts import RedisScripts
from a3s_gateway.stdlib.common.token_ledger import Ledger, LocalLedger, Meter, RedisLedger

from ..llm_fakes import Turn, anthropic_events, anthropic_message, openai_chunks

pytestmark = pytest.mark.anyio


class Source:
    """A body stream over `chunks` that counts how many were pulled (and can fail at the end)."""

    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks, self.fail, self.pulled, self.closed = chunks, fail, 0, False

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> bytes:
        if self.pulled == len(self.chunks):
            if self.fail:
                raise anyio.BrokenResourceError("upstream cut")
            raise StopAsyncIteration
        self.pulled += 1
        return self.chunks[self.pulled - 1]

    async def aclose(self) -> None:
        self.closed = True


async def run(
    meter: UsageMeter, source: Source, sse: bool = True
) -> tuple[bytes, list[BaseException | None]]:
    ended: list[BaseException | None] = []

    async def done(error: BaseException | None) -> None:
        ended.append(error)

    out = b"".join([chunk async for chunk in meter.wrap(source, sse, done)])
    return out, ended


def bytewise(events: list[bytes]) -> list[bytes]:
    data = b"".join(events)
    return [data[i : i + 1] for i in range(len(data))]


def openai_stream(include_usage: bool) -> list[bytes]:
    return openai_chunks(Turn(text="word " * 3, usage=(10, 3)), "m", include_usage)


async def test_openai_usage_chunk_is_read_and_stripped_even_split_byte_by_byte() -> None:
    events = openai_stream(include_usage=True)
    usage_event = next(e for e in events if b'"choices": []' in e)
    for chunks in (events, bytewise(events)):
        meter = UsageMeter("openai", strip_usage_chunk=True)
        out, ended = await run(meter, Source(chunks))
        assert out == b"".join(e for e in events if e is not usage_event)
        assert meter.usage == Usage(10, 3) and ended == [None]
        kept = UsageMeter("openai", strip_usage_chunk=False)
        out, _ = await run(kept, Source(chunks))
        assert out == b"".join(events) and kept.usage == Usage(10, 3)


async def test_anthropic_usage_is_read_from_message_start_and_delta_with_crlf() -> None:
    events = [e.replace(b"\n", b"\r\n") for e in anthropic_events(Turn(usage=(12, 4)), "m")]
    meter = UsageMeter("anthropic", strip_usage_chunk=False)
    out, _ = await run(meter, Source(bytewise(events)))
    assert out == b"".join(events) and meter.usage == Usage(12, 4)


async def test_json_usage_and_unchanged_bodies() -> None:
    payload = json.dumps(anthropic_message(Turn(usage=(7, 2)), "m")).encode()
    meter = UsageMeter("anthropic", strip_usage_chunk=False)
    out, _ = await run(meter, Source(bytewise([payload])), sse=False)
    assert out == payload and meter.usage == Usage(7, 2)
    nothing = UsageMeter("openai", strip_usage_chunk=False)
    out, ended = await run(nothing, Source([b"not json"]), sse=False)
    assert out == b"not json" and nothing.usage is None and ended == [None]


async def test_each_event_leaves_before_the_next_is_read() -> None:
    events = openai_stream(include_usage=True)
    source = Source(events)

    async def done(_error: BaseException | None) -> None:
        pass

    body = UsageMeter("openai", strip_usage_chunk=True).wrap(source, True, done)
    assert isinstance(body, AsyncGenerator)
    first = await body.__anext__()
    assert first == events[0] and source.pulled == 1  # nothing waits for a second event
    await body.aclose()
    assert source.closed


async def test_a_cut_stream_reports_its_error_and_the_usage_seen() -> None:
    events = openai_stream(include_usage=True)
    meter = UsageMeter("openai", strip_usage_chunk=False)
    with pytest.raises(anyio.BrokenResourceError):
        await run(meter, Source(events[:2], fail=True))
    assert meter.usage is None


def test_requests_are_read_and_openai_streams_ask_for_usage() -> None:
    assert api_format("/anthropic/v1/messages") == "anthropic"
    assert api_format("/v1/messages/count_tokens") == "anthropic"
    assert api_format("/openai/v1/chat/completions") == "openai"
    assert api_format("/v1/messages/") == "anthropic"  # as the conversion reads it
    raw = json.dumps({"model": "gpt-4o", "stream": True, "max_completion_tokens": 50}).encode()
    request = read_request("/v1/chat/completions", raw, bytes_per_token=4, default_max_tokens=1000)
    assert request.model == "gpt-4o" and request.stream and not request.client_wants_usage
    assert request.estimate == Usage(-(-len(raw) // 4), 50)
    sent = json.loads(prepare_body(request, raw))
    assert sent["stream_options"] == {"include_usage": True} and sent["max_completion_tokens"] == 50
    plain = read_request(
        "/v1/messages", b'{"model":"c","stream":true}', bytes_per_token=4, default_max_tokens=99
    )
    assert prepare_body(plain, b"x") == b"x" and plain.estimate.output_tokens == 99
    # A null max_completion_tokens is one not sent: max_tokens counts.
    raw = b'{"model":"m","max_completion_tokens":null,"max_tokens":7}'
    assert read_request(
        "/v1/chat/completions", raw, bytes_per_token=4, default_max_tokens=99
    ).estimate == Usage(-(-len(raw) // 4), 7)
    with pytest.raises(ValueError):
        read_request("/v1/chat/completions", b"[1]", bytes_per_token=4, default_max_tokens=1)
    # Only bodies are billed, only generating endpoints reserve output, count_tokens is free.
    assert read_request("/v1/models", b"", bytes_per_token=4, default_max_tokens=1) == LlmRequest(
        "openai", None, False, False, Usage(0, 0), None
    )
    embed = read_request(
        "/v1/embeddings", b'{"model":"e","input":"abcd"}', bytes_per_token=4, default_max_tokens=9
    )
    assert embed.estimate == Usage(7, 0)
    count = read_request(
        "/v1/messages/count_tokens", b'{"model":"c"}', bytes_per_token=1, default_max_tokens=9
    )
    assert count.format == "anthropic" and count.estimate == Usage(0, 0)


# ----------------------------------------------------------------------------------- the ledger


def window(limit: float, amount: float, key: str = "tpm", seconds: float = 60.0) -> Meter:
    return Meter(key, "window", limit, seconds, amount)


async def test_local_window_reserves_settles_and_expires() -> None:
    clock = ManualClock()
    ledger = LocalLedger(clock)
    first = await ledger.reserve("a", [window(100, 80)])
    assert first.admitted
    refused = await ledger.reserve("b", [window(100, 30)])
    assert not refused.admitted and refused.refused == 0 and refused.retry_after == 60
    await ledger.settle("a", [window(100, 80)], first.stamp, [-60.0])  # it used 20
    clock.advance(10)
    assert (await ledger.reserve("b", [window(100, 30)])).admitted  # 20 + 30
    clock.advance(45)
    late = await ledger.reserve("c", [window(100, 60)])
    assert not late.admitted and late.retry_after == pytest.approx(5)  # when "a" (20) expires
    clock.advance(5)
    assert (await ledger.reserve("c", [window(100, 60)])).admitted
    # Larger than the whole limit: only into an empty window, or it could never pass.
    assert not (await ledger.reserve("d", [window(100, 500)])).admitted
    clock.advance(120)
    assert (await ledger.reserve("d", [window(100, 500)])).admitted


async def test_local_budgets_last_or_renew_per_period() -> None:
    clock = ManualClock()
    ledger = LocalLedger(clock)
    life = Meter("budget", "budget", 10, 0, 6)
    assert (await ledger.reserve("a", [life])).admitted
    assert (await ledger.reserve("b", [life])).admitted is False
    spent = await ledger.reserve("b", [life])
    assert spent.retry_after is None  # a lifetime budget: waiting does not help
    monthly = Meter("month", "budget", 10, 100, 11)
    assert (await ledger.reserve("a", [monthly])).admitted
    again = await ledger.reserve("b", [monthly])
    assert not again.admitted and again.retry_after == pytest.approx(100)
    clock.advance(100)
    assert (await ledger.reserve("b", [monthly])).admitted
    assert await ledger.spent("month", 100) == 11


async def test_a_refusal_reserves_in_no_meter() -> None:
    ledger = LocalLedger(ManualClock())
    assert (await ledger.reserve("a", [window(10, 10, "full")])).admitted
    refused = await ledger.reserve("b", [window(100, 5, "free"), window(10, 5, "full")])
    assert not refused.admitted and refused.refused == 1
    assert "free" not in ledger.windows  # checked, never reserved in


async def redis_ledger(redis_url: str) -> tuple[RedisLedger, RedisScripts]:
    scripts = RedisScripts(redis_url, 1.0)
    return RedisLedger(scripts, f"test:{uuid.uuid4().hex}:"), scripts


async def test_redis_ledger_agrees_with_the_local_one(redis_url: str) -> None:
    ledger, scripts = await redis_ledger(redis_url)
    local = LocalLedger(ManualClock())
    try:
        for each in (ledger, local):
            await _scenario(each)
    finally:
        await scripts.aclose()


async def _scenario(ledger: Ledger) -> None:
    first = await ledger.reserve("a", [window(100, 80), Meter("b", "budget", 50, 0, 30)])
    assert first.admitted
    refused = await ledger.reserve("b", [window(100, 30)])
    assert not refused.admitted and refused.retry_after is not None and 0 < refused.retry_after <= 60
    await ledger.settle("a", [window(100, 80), Meter("b", "budget", 50, 0, 30)], first.stamp, [-60.0, -20.0])
    assert (await ledger.reserve("b", [window(100, 30)])).admitted
    assert await ledger.spent("b", 0) == 10
    broke = await ledger.reserve("c", [Meter("b", "budget", 50, 0, 41)])
    assert not broke.admitted and broke.retry_after is None


async def test_two_redis_ledgers_admit_exactly_the_limit_concurrently(redis_url: str) -> None:
    first, a = await redis_ledger(redis_url)
    second, b = await redis_ledger(redis_url)
    second.prefix = first.prefix  # two connections, one set of meters: two gateway processes
    admitted: list[Any] = []

    async def one(ledger: RedisLedger, n: int) -> None:
        answer = await ledger.reserve(f"r{n}", [window(100, 10)])
        if answer.admitted:
            admitted.append(n)

    try:
        async with anyio.create_task_group() as tg:
            for n in range(40):
                tg.start_soon(one, first if n % 2 else second, n)
        assert len(admitted) == 10
    finally:
        await a.aclose()
        await b.aclose()


async def test_local_memory_is_bounded_by_the_meters_in_use() -> None:
    clock = ManualClock()
    ledger = LocalLedger(clock)
    for n in range(LocalLedger.SWEEP_EVERY):
        await ledger.reserve(f"r{n}", [window(10, 1, key=f"user-{n}"), Meter("b", "budget", 1e9, 10, 1)])
        clock.advance(1)
    assert len(ledger.windows) < 100  # the idle users' windows were swept
    assert list(ledger.budgets) == ["b"] and ledger.budgets["b"][1] <= 10  # only the current period
