"""Properties of the OpenAI ⇄ Anthropic conversion (stdlib/llm/).

- For any valid OpenAI Chat Completions request, OpenAI -> Anthropic -> OpenAI keeps its meaning:
  the same system text, the same conversation (who said what, which tools were called with
  which arguments and what they returned), the same sampling and tool settings. And the
  Anthropic request in between is one the strict fake of the Messages API accepts (roles
  alternate, every tool_use answered by its tool_result, no empty text block).
- For any reply (text, parallel tool calls, a stop reason), the upstream's event stream cut
  into arbitrary byte chunks and converted event by event gives the client the same reply in
  its own format, in both directions; and the SSE parser returns the same events however the
  bytes are split.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a3s_gateway.stdlib.llm import SseParser, anthropic_to_openai, openai_to_anthropic
from tests.llm_fakes import Turn, anthropic_events, check_anthropic, check_openai, openai_chunks

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30)
names = st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
arguments = st.dictionaries(names, json_values, max_size=4)
images = st.sampled_from(
    ["data:image/png;base64,iVBORw0KGgo=", "data:image/jpeg;base64,/9j/4AAQ", "https://example.com/a.png"]
)
user_parts = st.lists(
    st.one_of(
        text.map(lambda t: {"type": "text", "text": t}),
        images.map(lambda u: {"type": "image_url", "image_url": {"url": u}}),
    ),
    min_size=1,
    max_size=3,
)
user_message = st.one_of(text, user_parts).map(lambda c: {"role": "user", "content": c})
system_message = st.tuples(st.sampled_from(["system", "developer"]), text).map(
    lambda p: {"role": p[0], "content": p[1]}
)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """System prompts, then rounds of user and assistant turns (tool calls answered by tool
    messages), ending with the user: the shapes a real client sends."""
    messages: list[dict[str, Any]] = draw(st.lists(system_message, max_size=2))
    counter = 0
    after_tools = False
    for _ in range(draw(st.integers(0, 3))):
        if not after_tools or draw(st.booleans()):
            messages += draw(st.lists(user_message, min_size=1, max_size=2))
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            counter += 1
            arguments_text = json.dumps(draw(arguments))
            calls.append(
                {
                    "id": f"call_{counter}",
                    "type": "function",
                    "function": {"name": draw(names), "arguments": arguments_text},
                }
            )
        reply = draw(st.none() | text) if calls else draw(text)
        assistant: dict[str, Any] = {"role": "assistant", "content": reply}
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        for call in calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(text)})
        after_tools = bool(calls)
    messages += draw(st.lists(user_message, min_size=1, max_size=2))
    return messages


@st.composite
def openai_requests(draw: st.DrawFn) -> dict[str, Any]:
    request: dict[str, Any] = {"model": draw(names), "messages": draw(conversations())}
    optional = {
        "max_tokens": st.integers(1, 100_000),
        "temperature": st.floats(0, 1, allow_nan=False),
        "top_p": st.floats(0, 1, allow_nan=False),
        "stop": st.one_of(text, st.lists(text, min_size=1, max_size=4)),
        "user": names,
        "stream": st.booleans(),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            request[key] = draw(strategy)
    if "max_tokens" in request and draw(st.booleans()):  # OpenAI's current name for it
        request["max_completion_tokens"] = request.pop("max_tokens")
    if draw(st.booleans()):
        tools = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        request["tools"] = [
            {
                "type": "function",
                "function": {"name": n, "description": f"tool {n}", "parameters": {"type": "object"}},
            }
            for n in tools
        ]
        choice = draw(st.sampled_from(["auto", "required", "none", "named", None]))
        if choice == "named":
            request["tool_choice"] = {"type": "function", "function": {"name": tools[0]}}
        elif choice is not None:
            request["tool_choice"] = choice
        if draw(st.booleans()) and choice != "none":
            request["parallel_tool_calls"] = False
    return request


def meaning(request: dict[str, Any]) -> dict[str, Any]:
    """What an OpenAI request asks, independent of how it is spelled: message boundaries
    within one role, a string versus a one-part list, defaults written or left out."""
    system: list[str] = []
    said: list[tuple[Any, ...]] = []
    for message in request["messages"]:
        role, content = message["role"], message.get("content")
        if role in ("system", "developer"):
            system.append(content)
            continue
        if role == "tool":
            said.append(("tool", message["tool_call_id"], content))
            continue
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for part in parts:
            if part["type"] == "text" and part["text"]:
                said.append((role, "text", part["text"]))
            elif part["type"] == "image_url":
                said.append((role, "image", part["image_url"]["url"]))
        for call in message.get("tool_calls") or ():
            function = call["function"]
            said.append((role, "call", call["id"], function["name"], json.loads(function["arguments"])))
    stop = request.get("stop")
    tools = request.get("tools")
    choice = request.get("tool_choice") or ("auto" if tools else None)
    return {
        "model": request["model"],
        "system": "\n".join(system),
        "said": said,
        "max_tokens": request.get(
            "max_completion_tokens", request.get("max_tokens", openai_to_anthropic.DEFAULT_MAX_TOKENS)
        ),
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "stop": [stop] if isinstance(stop, str) else stop or None,
        "user": request.get("user"),
        "stream": bool(request.get("stream")),
        "tools": tools,
        "tool_choice": choice,
        "parallel": request.get("parallel_tool_calls", True) if tools else True,
    }


def _system_text(request: dict[str, Any]) -> dict[str, Any]:
    """A system message whose content is a list of parts, read as one text per part."""
    out = dict(request)
    messages = []
    for message in request["messages"]:
        if message["role"] == "system" and isinstance(message["content"], list):
            messages += [{"role": "system", "content": p["text"]} for p in message["content"]]
        else:
            messages.append(message)
    out["messages"] = messages
    return out


@SETTINGS
@given(openai_requests())
def test_openai_to_anthropic_and_back_keeps_the_meaning(request: dict[str, Any]) -> None:
    assert check_openai(request) is None  # the generator makes valid requests only
    upstream = openai_to_anthropic.convert_request(request)
    assert check_anthropic({}, upstream) is None, upstream
    back = anthropic_to_openai.convert_request(upstream)
    assert check_openai(back) is None, back
    assert meaning(_system_text(back)) == meaning(request)


# --------------------------------------------------------------------------- streams


turns = st.builds(
    Turn,
    text=st.one_of(st.just(""), text),
    calls=st.lists(st.tuples(names, names, arguments), max_size=3, unique_by=lambda c: c[0]),
    stop=st.sampled_from(["end", "length", "tools"]),
    usage=st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _convert(stream: bytes, cuts: list[int], converter: Any) -> list[tuple[str, Any]]:
    """Feed the upstream bytes in the given pieces; parse what the client receives."""
    parser, out = SseParser(), b""
    for piece in splits(stream, cuts):
        for event in parser.feed(piece):
            out += converter.feed(event)
    out += converter.end()
    client = SseParser().feed(out)
    return [(e.event, e.data if e.data == "[DONE]" else json.loads(e.data)) for e in client]


@SETTINGS
@given(turns, st.lists(st.integers(0, 1 << 16), max_size=12))
def test_anthropic_stream_to_openai_chunks(turn: Turn, cuts: list[int]) -> None:
    stream = b"".join(anthropic_events(turn, "claude"))
    chunks = _convert(
        stream, cuts, openai_to_anthropic.StreamConverter({"stream_options": {"include_usage": True}})
    )
    assert chunks[-1] == ("", "[DONE]")
    docs = [doc for _, doc in chunks[:-1]]
    assert all(doc["object"] == "chat.completion.chunk" for doc in docs)
    content = "".join(d["choices"][0]["delta"].get("content") or "" for d in docs if d["choices"])
    calls: dict[int, dict[str, str]] = {}
    for doc in docs:
        for call in (doc["choices"][0]["delta"].get("tool_calls") or []) if doc["choices"] else ():
            entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.get("id", "")
            entry["name"] += call.get("function", {}).get("name", "")
            entry["arguments"] += call.get("function", {}).get("arguments", "")
    assert content == turn.text
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == turn.calls
    finishes = [
        d["choices"][0]["finish_reason"] for d in docs if d["choices"] and d["choices"][0]["finish_reason"]
    ]
    assert finishes == [{"end": "stop", "length": "length", "tools": "tool_calls"}[turn.stop]]
    assert docs[-1]["usage"]["completion_tokens"] == turn.usage[1]


@SETTINGS
@given(turns, st.lists(st.integers(0, 1 << 16), max_size=12))
def test_openai_stream_to_anthropic_events(turn: Turn, cuts: list[int]) -> None:
    stream = b"".join(openai_chunks(turn, "gpt", include_usage=True))
    events = _convert(stream, cuts, anthropic_to_openai.StreamConverter({"model": "gpt"}))
    names_seen = [name for name, _ in events]
    assert names_seen[0] == "message_start" and names_seen[-2:] == ["message_delta", "message_stop"]
    assert all(name == doc["type"] for name, doc in events)
    blocks: dict[int, dict[str, Any]] = {}
    open_blocks: set[int] = set()
    for name, doc in events:
        if name == "content_block_start":
            assert not open_blocks  # one block at a time, as Anthropic streams them
            blocks[doc["index"]] = {**doc["content_block"], "json": ""}
            open_blocks.add(doc["index"])
        elif name == "content_block_delta":
            delta = doc["delta"]
            block = blocks[doc["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                block["json"] += delta["partial_json"]
        elif name == "content_block_stop":
            open_blocks.remove(doc["index"])
    assert not open_blocks
    text = "".join(b["text"] for b in blocks.values() if b["type"] == "text")
    calls = [
        (b["id"], b["name"], json.loads(b["json"]))
        for _, b in sorted(blocks.items())
        if b["type"] == "tool_use"
    ]
    assert (text, calls) == (turn.text, turn.calls)
    final = events[-2][1]
    assert (
        final["delta"]["stop_reason"]
        == {"end": "end_turn", "length": "max_tokens", "tools": "tool_use"}[turn.stop]
    )
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == turn.usage


@SETTINGS
@given(turns, st.lists(st.integers(0, 1 << 16), max_size=12), st.booleans())
def test_sse_parser_ignores_how_bytes_are_split(turn: Turn, cuts: list[int], crlf: bool) -> None:
    stream = b"".join(anthropic_events(turn, "claude"))
    if crlf:
        stream = stream.replace(b"\n", b"\r\n")
    whole = SseParser().feed(stream)
    parser = SseParser()
    pieces = [event for piece in splits(stream, cuts) for event in parser.feed(piece)]
    assert pieces == whole and len(whole) == stream.count(b"event: ")
    assert not parser.pending


@SETTINGS
@given(turns, st.integers(1, 40))
def test_a_cut_stream_ends_with_one_error_event(turn: Turn, keep: int) -> None:
    # Cut before the end of the message: before message_stop, or before OpenAI's finish chunk
    # (after it, a stream without [DONE] is complete: some servers omit it).
    anthropic_side = anthropic_events(turn, "claude")
    if keep < len(anthropic_side):
        out = _convert(b"".join(anthropic_side[:keep]), [], openai_to_anthropic.StreamConverter({}))
        errors = [doc for _, doc in out if doc != "[DONE]" and "error" in doc]
        assert len(errors) == 1 and out[-1][1] is errors[0]
    openai_side = openai_chunks(turn, "gpt", include_usage=True)
    if keep < len(openai_side) - 2:
        out = _convert(b"".join(openai_side[:keep]), [], anthropic_to_openai.StreamConverter({}))
        assert [name for name, _ in out].count("error") == 1 and out[-1][0] == "error"
