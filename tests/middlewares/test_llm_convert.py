"""llm-convert end to end: the real `openai` and `anthropic` SDKs call examples/llm-gateway.hcl,
whose upstreams are strict fakes of the other API (tests/llm_fakes.py: they refuse what the real
APIs refuse). Non-streaming and streaming, parallel tool calls, images, stop reasons, errors,
an upstream that is down, a stream cut mid-way, models and count_tokens, on every backend."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import openai
import pytest
from pydantic import ValidationError

from a3s_gateway.runtime.api import Headers, Request, Response, iter_body
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.stdlib import registry
from a3s_gateway.stdlib.llm._fields import parse_object
from a3s_gateway.stdlib.llm.errors import ConversionError
from a3s_gateway.stdlib.llm.exchange import Conversion, Upstream, serve
from a3s_gateway.stdlib.middlewares.llm_convert import LlmConvert, LlmConvertConfig

from ..llm_fakes import ANTHROPIC_KEY, OPENAI_KEY, Failure, Fake, Seen, Turn, anthropic_fake, openai_fake
from ..stubs import free_port, refusing_port

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm-gateway.hcl"
CLIENT_KEY = "sk-client-own-key-never-forwarded"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CALLS = [("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_weather", {"city": "Tokyo, Japan"})]


@asynccontextmanager
async def llm_gateway(
    anthropic_url: str, openai_url: str
) -> AsyncIterator[tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic, str]]:
    """examples/llm-gateway.hcl on a free port, upstreams at the given origins; the two SDKs."""
    port = free_port()
    env = {
        "A3S_PORT": str(port),
        "ANTHROPIC_BASE_URL": anthropic_url,
        "OPENAI_BASE_URL": openai_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "OPENAI_API_KEY": OPENAI_KEY,
    }
    base = f"http://127.0.0.1:{port}"
    async with (
        Gateway(str(EXAMPLE), env=env),
        openai.AsyncOpenAI(base_url=f"{base}/openai/v1", api_key=CLIENT_KEY, max_retries=0) as oai,
        anthropic.AsyncAnthropic(base_url=f"{base}/anthropic", api_key=CLIENT_KEY, max_retries=0) as ant,
    ):
        yield oai, ant, base


@asynccontextmanager
async def fakes() -> AsyncIterator[tuple[Fake, Fake, openai.AsyncOpenAI, anthropic.AsyncAnthropic, str]]:
    async with anthropic_fake() as upstream_a, openai_fake() as upstream_o:
        async with llm_gateway(upstream_a.url, upstream_o.url) as (oai, ant, base):
            yield upstream_a, upstream_o, oai, ant, base
        for seen in upstream_a.seen + upstream_o.seen:  # the client's key never went up
            assert all(CLIENT_KEY not in value for value in seen.headers.values()), seen.headers


def script(*turns: Turn | Failure) -> Any:
    replies = list(turns)
    return lambda seen: replies.pop(0)


def test_registered_and_validated() -> None:
    kind = registry.lookup("middleware", "llm-convert")
    assert kind is not None and kind.impl is LlmConvert
    config = LlmConvertConfig.model_validate({"client": "openai", "upstream": "anthropic"})
    assert config.default_max_tokens == 4096 and config.upstream_prefix == "/v1"
    for bad in (
        {"client": "openai", "upstream": "openai"},
        {"client": "openai"},
        {"client": "openai", "upstream": "anthropic", "default_max_tokens": 0},
        {"client": "openai", "upstream": "anthropic", "upstream_prefix": "v1"},
        {"client": "openai", "upstream": "anthropic", "tokenize_path": "/tokenize"},
    ):
        with pytest.raises(ValidationError):
            LlmConvertConfig.model_validate(bad)


def test_bodies_are_utf8_json_objects() -> None:
    # parse_object decodes with one cached decoder (no json.loads encoding sniffing): a UTF-8 BOM
    # is still skipped, and bytes that are not UTF-8 are a clear 400, not a traceback.
    assert parse_object(b'\xef\xbb\xbf{"model": "m"}') == {"model": "m"}
    assert parse_object('{"text": "d\u00e9j\u00e0 vu"}'.encode()) == {"text": "d\u00e9j\u00e0 vu"}
    for bad in (b'{"model": "\xff"}', b"[1]", b"{", b""):
        with pytest.raises(ConversionError):
            parse_object(bad)


async def test_a_converted_request_lets_the_loop_run_before_going_upstream(anyio_backend: Any) -> None:
    # Reading and converting a request and then routing and connecting it would be one stretch
    # of CPU in which no other stream's event is relayed (docs/benchmarks.md, LLM stream event
    # latency): serve() passes a checkpoint in between. Seen here as the cancellation point it
    # is: a caller cancelled before it starts stops there, before the upstream is called.
    data = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    request = Request(
        "POST", "/v1/chat/completions", Headers(headers), iter_body(data.encode()), content_length=len(data)
    )
    called: list[str] = []

    async def upstream(request: Request) -> Response:
        called.append(request.target)
        return Response(200, Headers([(b"content-type", b"application/json")]), iter_body(b"{}"))

    with anyio.CancelScope() as scope:
        scope.cancel()
        await serve(Conversion("openai", Upstream("anthropic", "key")), request, upstream)
    assert scope.cancelled_caught and called == []


# --------------------------------------------------------------------------- OpenAI client, Anthropic upstream


async def test_openai_client_anthropic_upstream(anyio_backend: Any) -> None:
    async with fakes() as (upstream, _, oai, _a, _b):
        upstream.script = script(Turn(text="Bonjour!", usage=(21, 3)))
        completion = await oai.chat.completions.create(
            model="claude-fake-4",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": "Say hello"},
            ],
            stop=["\n\n"],
            temperature=0.5,
            top_p=0.9,
            user="user-42",
        )
        sent = upstream.last
        assert sent.target == "/v1/messages" and sent.headers["anthropic-version"] == "2023-06-01"
        assert sent.body == {
            "model": "claude-fake-4",
            "max_tokens": 4096,  # the configured default: Anthropic requires one
            "messages": [{"role": "user", "content": "Say hello"}],
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}],
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": ["\n\n"],
            "metadata": {"user_id": "user-42"},
        }
        choice = completion.choices[0]
        assert choice.message.content == "Bonjour!" and choice.finish_reason == "stop"
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (21, 3)
        assert completion.usage.total_tokens == 24


async def test_openai_stream_is_converted_event_by_event(anyio_backend: Any) -> None:
    async with fakes() as (upstream, _, oai, _a, _b):
        gate = anyio.Event()
        upstream.script = script(Turn(text="Hello there, friend.", usage=(5, 4), gate=gate))
        stream = await oai.chat.completions.create(
            model="claude-fake-4",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = []
        async for chunk in stream:
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                # The first token is here while the upstream still holds the second back.
                gate.set()
        assert upstream.last.body["stream"] is True and upstream.last.body["max_tokens"] == 50
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello there, friend."
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 4)


async def test_openai_parallel_tool_calls_and_their_results(anyio_backend: Any) -> None:
    async with fakes() as (upstream, _, oai, _a, _b):
        upstream.script = script(Turn(text="", calls=CALLS, stop="tools"), Turn(text="Sunny in both."))
        tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Tokyo?"}]
        first = await oai.chat.completions.create(
            model="claude-fake-4", messages=messages, tools=tools, tool_choice="required"
        )
        assert upstream.last.body["tools"] == [{"name": "get_weather", "input_schema": WEATHER}]
        assert upstream.last.body["tool_choice"] == {"type": "any"}
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        calls = choice.message.tool_calls or []
        assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == CALLS  # type: ignore[union-attr]
        messages.append(choice.message.model_dump(exclude_none=True))
        messages += [{"role": "tool", "tool_call_id": c.id, "content": f"sunny ({c.id})"} for c in calls]
        second = await oai.chat.completions.create(model="claude-fake-4", messages=messages, tools=tools)
        assert second.choices[0].message.content == "Sunny in both."
        # Both tool messages became tool_result blocks of one user turn (roles alternate).
        turns = upstream.last.body["messages"]
        assert [t["role"] for t in turns] == ["user", "assistant", "user"]
        assert [b["tool_use_id"] for b in turns[2]["content"]] == ["call_1", "call_2"]
        assert [b["input"] for b in turns[1]["content"]] == [{"city": "Paris"}, {"city": "Tokyo, Japan"}]
        # A tool result answering no call is refused by the upstream, in OpenAI's format.
        messages[-1] = {"role": "tool", "tool_call_id": "call_unknown", "content": "?"}
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.chat.completions.create(model="claude-fake-4", messages=messages, tools=tools)
        assert "tool_use_id" in refused.value.message and refused.value.status_code == 400


async def test_openai_streamed_parallel_tool_calls(anyio_backend: Any) -> None:
    async with fakes() as (upstream, _, oai, _a, _b):
        upstream.script = script(Turn(text="Let me check.", calls=CALLS, stop="tools"))
        tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
        stream = await oai.chat.completions.create(
            model="claude-fake-4",
            messages=[{"role": "user", "content": "Weather?"}],
            tools=tools,
            parallel_tool_calls=False,
            stream=True,
        )
        assert upstream.last.body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
        calls: dict[int, dict[str, str]] = {}
        text, finish = "", None
        async for chunk in stream:
            assert chunk.usage is None  # the client did not ask for usage
            delta = chunk.choices[0].delta
            text += delta.content or ""
            for call in delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += (call.function and call.function.name) or ""
                entry["arguments"] += (call.function and call.function.arguments) or ""
            finish = chunk.choices[0].finish_reason or finish
        assert text == "Let me check." and finish == "tool_calls"
        got = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]
        assert got == CALLS


async def test_openai_images_base64_and_url(anyio_backend: Any) -> None:
    async with fakes() as (upstream, _, oai, _a, _b):
        await oai.chat.completions.create(
            model="claude-fake-4",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare these"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    ],
                }
            ],
        )
        assert upstream.last.body["messages"][0]["content"] == [
            {"type": "text", "text": "Compare these"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("end", "stop"), ("length", "length"), ("sequence:END", "stop"), ("tools", "tool_calls")],
)
async def test_openai_stop_reasons(anyio_backend: Any, stop: str, finish: str) -> None:
    async with fakes() as (upstream, _, oai, _a, _b):
        calls = CALLS[:1] if stop == "tools" else []
        upstream.script = script(Turn(stop=stop, calls=calls), Turn(stop=stop, calls=calls))
        message: Any = [{"role": "user", "content": "go"}]
        completion = await oai.chat.completions.create(model="claude-fake-4", messages=message)
        assert completion.choices[0].finish_reason == finish
        stream = await oai.chat.completions.create(model="claude-fake-4", messages=message, stream=True)
        finishes = [c.choices[0].finish_reason async for c in stream if c.choices]
        assert finishes[-1] == finish


async def test_openai_errors_in_openai_format(anyio_backend: Any) -> None:
    async with fakes() as (upstream, _, oai, _a, base):
        overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        limited = {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}
        upstream.script = script(Failure(529, overloaded), Failure(429, limited, [("retry-after", "7")]))
        message: Any = [{"role": "user", "content": "hi"}]
        with pytest.raises(openai.InternalServerError) as busy:
            await oai.chat.completions.create(model="claude-fake-4", messages=message)
        assert busy.value.status_code == 503 and busy.value.message.endswith("Overloaded")
        assert busy.value.body == {
            "message": "Overloaded",
            "type": "server_error",
            "param": None,
            "code": "overloaded",
        }
        with pytest.raises(openai.RateLimitError) as limit:
            await oai.chat.completions.create(model="claude-fake-4", messages=message)
        assert limit.value.response.headers["retry-after"] == "7"
        requests = len(upstream.seen)
        # What Anthropic cannot express: a 400 naming the parameter, and nothing goes up.
        for extra in ({"n": 2}, {"logprobs": True}, {"temperature": 1.5}, {"seed": 3}):
            with pytest.raises(openai.BadRequestError) as refused:
                await oai.chat.completions.create(model="claude-fake-4", messages=message, **extra)
            assert refused.value.body["param"] == next(iter(extra))  # type: ignore[index]
        assert len(upstream.seen) == requests
        async with httpx.AsyncClient(base_url=base) as raw:
            broken = await raw.post("/openai/v1/chat/completions", content=b"{not json")
            assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
            missing = await raw.get("/openai/v1/embeddings")
            assert missing.status_code == 404 and "error" in missing.json()


async def test_openai_max_completion_tokens(anyio_backend: Any) -> None:
    # OpenAI's current name for max_tokens (o-series models accept no other) becomes Anthropic's
    # max_tokens; both at once is refused as the OpenAI API refuses it, and nothing goes up.
    async with fakes() as (upstream, openai_upstream, oai, _a, _b):
        upstream.script = script(Turn(text="Hi", usage=(5, 1)), Turn(text="Hi", usage=(5, 1)))
        message: Any = [{"role": "user", "content": "hi"}]
        await oai.chat.completions.create(model="claude-fake-4", messages=message, max_completion_tokens=77)
        assert upstream.last.body["max_tokens"] == 77 and "max_completion_tokens" not in upstream.last.body
        await oai.chat.completions.create(model="claude-fake-4", messages=message, max_tokens=33)
        assert upstream.last.body["max_tokens"] == 33
        with pytest.raises(openai.BadRequestError) as both:
            await oai.chat.completions.create(
                model="claude-fake-4", messages=message, max_tokens=10, max_completion_tokens=20
            )
        assert both.value.body == {
            "message": "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "invalid_parameter_combination",
        }
        with pytest.raises(openai.BadRequestError) as bad:
            await oai.chat.completions.create(
                model="claude-fake-4", messages=message, max_completion_tokens=0
            )
        assert bad.value.body["param"] == "max_completion_tokens"  # type: ignore[index]
        assert len(upstream.seen) == 2
        # The strict OpenAI fake takes it, and refuses both at once, as the API does.
        openai_upstream.script = script(Turn(text="Hi", usage=(5, 1)))
        async with openai.AsyncOpenAI(base_url=f"{openai_upstream.url}/v1", api_key=OPENAI_KEY) as direct:
            await direct.chat.completions.create(model="gpt-fake", messages=message, max_completion_tokens=9)
            assert openai_upstream.last.body["max_completion_tokens"] == 9
            with pytest.raises(openai.BadRequestError, match="at the same time"):
                await direct.chat.completions.create(
                    model="gpt-fake", messages=message, max_tokens=9, max_completion_tokens=9
                )


async def test_openai_stream_cut_midway_is_an_error_event(anyio_backend: Any) -> None:
    async with fakes() as (upstream, _, oai, _a, _b):
        upstream.script = script(Turn(text="This answer will not finish.", cut_after=4))
        stream = await oai.chat.completions.create(
            model="claude-fake-4", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as cut:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert "".join(received) == "This "  # what arrived before the cut was delivered
        assert "broke off" in cut.value.message


async def test_openai_models(anyio_backend: Any) -> None:
    async with fakes() as (_, _o, oai, _a, _b):
        models = await oai.models.list()
        assert [(m.id, m.object, m.owned_by, m.created) for m in models.data] == [
            ("claude-fake-4", "model", "anthropic", 1747180800)
        ]


# --------------------------------------------------------------------------- Anthropic client, OpenAI upstream


async def test_anthropic_client_openai_upstream(anyio_backend: Any) -> None:
    async with fakes() as (_, upstream, _o, ant, _b):
        upstream.script = script(Turn(text="Hi!", usage=(12, 2)))
        message = await ant.messages.create(
            model="gpt-fake",
            max_tokens=64,
            system="Be brief.",
            messages=[{"role": "user", "content": "Say hello"}],
            stop_sequences=["###"],
            metadata={"user_id": "user-7"},
            extra_body={"temperature": 0.2},  # this SDK version no longer offers the argument
        )
        sent = upstream.last
        assert sent.target == "/v1/chat/completions"
        assert sent.body == {
            "model": "gpt-fake",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say hello"},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
            "stop": ["###"],
            "user": "user-7",
        }
        assert message.content[0].type == "text" and message.content[0].text == "Hi!"
        assert message.stop_reason == "end_turn" and message.role == "assistant"
        assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 2)


async def test_anthropic_stream_is_converted_event_by_event(anyio_backend: Any) -> None:
    async with fakes() as (_, upstream, _o, ant, _b):
        gate = anyio.Event()
        upstream.script = script(Turn(text="Hello there, friend.", usage=(9, 5), gate=gate))
        kinds = []
        async with ant.messages.stream(
            model="gpt-fake", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for event in stream:
                kinds.append(event.type)
                if event.type == "text":
                    gate.set()  # the first token arrived while the upstream holds the rest back
            final = await stream.get_final_message()
        assert upstream.last.body["stream_options"] == {"include_usage": True}
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
        assert "content_block_start" in kinds and "content_block_stop" in kinds
        assert final.content[0].text == "Hello there, friend."  # type: ignore[union-attr]
        assert final.stop_reason == "end_turn"
        assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 5)


async def test_anthropic_parallel_tool_use_and_results(anyio_backend: Any) -> None:
    async with fakes() as (_, upstream, _o, ant, _b):
        upstream.script = script(
            Turn(text="Checking.", calls=CALLS, stop="tools"),
            Turn(text="", calls=CALLS, stop="tools"),
            Turn(text="Sunny in both."),
        )
        tools: Any = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Tokyo?"}]
        first = await ant.messages.create(
            model="gpt-fake", max_tokens=64, messages=messages, tools=tools, tool_choice={"type": "any"}
        )
        assert upstream.last.body["tool_choice"] == "required"
        assert upstream.last.body["tools"] == [
            {
                "type": "function",
                "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER},
            }
        ]
        assert first.stop_reason == "tool_use"
        uses = [b for b in first.content if b.type == "tool_use"]
        assert [(b.id, b.name, b.input) for b in uses] == CALLS
        async with ant.messages.stream(
            model="gpt-fake", max_tokens=64, messages=messages, tools=tools
        ) as stream:
            streamed = await stream.get_final_message()
        assert [(b.id, b.name, b.input) for b in streamed.content if b.type == "tool_use"] == CALLS
        assert streamed.stop_reason == "tool_use"
        messages.append(
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]}
        )
        results = [{"type": "tool_result", "tool_use_id": b.id, "content": f"sunny ({b.id})"} for b in uses]
        messages.append({"role": "user", "content": [*results, {"type": "text", "text": "Summarise."}]})
        final = await ant.messages.create(model="gpt-fake", max_tokens=64, messages=messages, tools=tools)
        assert final.content[0].text == "Sunny in both."  # type: ignore[union-attr]
        roles = [(m["role"], m.get("tool_call_id")) for m in upstream.last.body["messages"]]
        assert roles == [
            ("user", None),
            ("assistant", None),
            ("tool", "call_1"),
            ("tool", "call_2"),
            ("user", None),
        ]


async def test_anthropic_images_base64_and_url(anyio_backend: Any) -> None:
    async with fakes() as (_, upstream, _o, ant, _b):
        await ant.messages.create(
            model="gpt-fake",
            max_tokens=16,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                        {"type": "text", "text": "What are these?"},
                    ],
                }
            ],
        )
        assert upstream.last.body["messages"][0]["content"] == [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "text", "text": "What are these?"},
        ]


@pytest.mark.parametrize(
    ("stop", "reason", "sequence"),
    [("end", "end_turn", None), ("length", "max_tokens", None), ("sequence:###", "stop_sequence", "###")],
)
async def test_anthropic_stop_reasons(
    anyio_backend: Any, stop: str, reason: str, sequence: str | None
) -> None:
    async with fakes() as (_, upstream, _o, ant, _b):
        upstream.script = script(Turn(stop=stop), Turn(stop=stop))
        message: Any = [{"role": "user", "content": "go"}]
        whole = await ant.messages.create(model="gpt-fake", max_tokens=8, messages=message)
        assert (whole.stop_reason, whole.stop_sequence) == (reason, sequence)
        async with ant.messages.stream(model="gpt-fake", max_tokens=8, messages=message) as stream:
            streamed = await stream.get_final_message()
        assert (streamed.stop_reason, streamed.stop_sequence) == (reason, sequence)


async def test_anthropic_errors_in_anthropic_format(anyio_backend: Any) -> None:
    async with fakes() as (_, upstream, _o, ant, base):
        busy = {
            "error": {"message": "The engine is currently overloaded", "type": "server_error", "code": None}
        }
        upstream.script = script(Failure(503, busy))
        message: Any = [{"role": "user", "content": "hi"}]
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            await ant.messages.create(model="gpt-fake", max_tokens=8, messages=message)
        assert overloaded.value.status_code == 529
        assert overloaded.value.body == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "The engine is currently overloaded"},
        }
        requests = len(upstream.seen)
        with pytest.raises(anthropic.BadRequestError) as refused:
            await ant.messages.create(
                model="gpt-fake", max_tokens=8, messages=message, extra_body={"top_k": 5}
            )
        assert "top_k" in refused.value.message
        assert len(upstream.seen) == requests
        async with httpx.AsyncClient(base_url=base) as raw:
            no_max = await raw.post("/anthropic/v1/messages", json={"model": "gpt-fake", "messages": message})
            assert no_max.status_code == 400
            assert no_max.json() == {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
            }
            wrong_method = await raw.get("/anthropic/v1/messages")
            assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error"
            assert wrong_method.headers["allow"] == "POST"  # RFC 9110 §15.5.6


async def test_anthropic_stream_cut_midway_is_an_error_event(anyio_backend: Any) -> None:
    async with fakes() as (_, upstream, _o, ant, _b):
        upstream.script = script(Turn(text="This answer will not finish.", cut_after=3))
        texts = []
        with pytest.raises(anthropic.APIStatusError) as cut:
            async with ant.messages.stream(
                model="gpt-fake", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                async for text in stream.text_stream:
                    texts.append(text)
        assert "".join(texts) == "This answe"  # the two pieces sent before the cut
        assert "broke off" in cut.value.message


async def test_anthropic_models_and_count_tokens(anyio_backend: Any) -> None:
    async with fakes() as (_, upstream, _o, ant, _b):
        models = await ant.models.list()
        assert [(m.id, m.type, m.created_at.year) for m in models.data] == [("gpt-fake", "model", 2023)]
        requests = len(upstream.seen)
        raw = await ant.messages.with_raw_response.count_tokens(
            model="gpt-fake",
            system="Be brief.",
            messages=[{"role": "user", "content": "Hello there, how are you?"}],
        )
        assert raw.headers["x-a3s-token-count"] == "estimate"  # OpenAI has no count endpoint
        assert 5 <= (await raw.parse()).input_tokens <= 20
        assert len(upstream.seen) == requests


TOKENIZER_CONFIG = """
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
routers "vllm"  {{ rule = "PathPrefix(`/vllm/`)"  service = "openai"  middlewares = ["with-tokenizer"] }}
routers "other" {{ rule = "PathPrefix(`/other/`)" service = "openai"  middlewares = ["no-tokenizer"] }}
middlewares "with-tokenizer" {{
  type = "llm-convert"  client = "anthropic"  upstream = "openai"  api_key = "{key}"  tokenize_path = "/tokenize"
}}
middlewares "no-tokenizer" {{
  type = "llm-convert"  client = "anthropic"  upstream = "openai"  api_key = "{key}"  tokenize_path = "/missing"
}}
services "openai" {{ load_balancer {{ servers = [{{ url = "{upstream}" }}] }} }}
"""


async def test_count_tokens_from_the_upstreams_tokenizer(anyio_backend: Any, tmp_path: Path) -> None:
    async with openai_fake() as upstream:
        port = free_port()
        path = tmp_path / "gateway.hcl"
        path.write_text(TOKENIZER_CONFIG.format(port=port, key=OPENAI_KEY, upstream=upstream.url))
        message: Any = [{"role": "user", "content": "one two three four"}]
        async with Gateway(str(path)):
            for prefix, source, count in (("vllm", "upstream", 3 * (4 + 2)), ("other", "estimate", None)):
                async with anthropic.AsyncAnthropic(
                    base_url=f"http://127.0.0.1:{port}/{prefix}", api_key=CLIENT_KEY, max_retries=0
                ) as ant:
                    raw = await ant.messages.with_raw_response.count_tokens(
                        model="gpt-fake", system="Be brief.", messages=message
                    )
                assert raw.headers["x-a3s-token-count"] == source
                counted = (await raw.parse()).input_tokens
                assert counted == count if count is not None else 0 < counted < 18
        tokenize, missing = upstream.seen
        assert (tokenize.target, missing.target) == ("/tokenize", "/missing")
        assert tokenize.body == {
            "model": "gpt-fake",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "one two three four"},
            ],
        }


# --------------------------------------------------------------------------- the gateway without its upstreams


async def test_starts_while_upstreams_are_down(anyio_backend: Any) -> None:
    with refusing_port() as a_port, refusing_port() as o_port:
        async with llm_gateway(f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{o_port}") as (oai, ant, _):
            with pytest.raises(openai.APIStatusError) as down:
                await oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert down.value.status_code == 502 and down.value.body["type"] == "server_error"  # type: ignore[index]
            with pytest.raises(anthropic.APIStatusError) as down_too:
                await ant.messages.create(
                    model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
                )
            assert down_too.value.status_code == 502
            assert down_too.value.body["error"]["type"] == "api_error"  # type: ignore[index]


async def test_any_client_key_and_the_upstream_key(anyio_backend: Any) -> None:
    async with fakes() as (upstream_a, upstream_o, oai, ant, _b):
        seen: list[Seen] = []
        upstream_a.script = lambda s: seen.append(s) or Turn()  # type: ignore[func-returns-value]
        await oai.with_options(api_key="another-key").chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert seen[0].headers["x-api-key"] == ANTHROPIC_KEY and "authorization" not in seen[0].headers
        await ant.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        assert upstream_o.last.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert "x-api-key" not in upstream_o.last.headers
