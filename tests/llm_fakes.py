"""Fake LLM upstreams (Anthropic Messages, OpenAI Chat Completions) on real sockets, for every LLM test.

One HTTP/1.1 server (h11 on anyio sockets, `serve`) records each request (`Seen`) and answers
what the fake's `script` says for it: a `Turn` (a reply described API-neutrally, rendered in the
API's own format, JSON or a stream sent one event per send), a `Failure` (an error status and
body) or a `Stall` (no answer, or only the head, until the gateway gives up). A streamed turn can
hold an event back (`gate`), pace its events (`delay`) or be cut mid-stream (`cut_after`).

Three fakes share it:

- `anthropic_fake()` / `openai_fake()`: strict, for conversion. They check requests as strictly
  as the real APIs do and refuse them with the real APIs' error shapes: a wrong key, a missing
  `max_tokens`, unknown fields, roles that do not alternate, a `tool_result` whose id matches no
  `tool_use`, a tool call left without its result, a bad image source, a temperature out of range.
- `fake_llm()` (`FakeLlm`): both APIs on one port, no credentials, for metering. A reply has
  `words` output tokens (fewer when max_tokens says so) for `prompt_tokens` input tokens; usage
  comes where the real APIs put it (OpenAI's usage chunk only when `include_usage` asks for it).
- `llm_upstreams(*names)` (`LlmUpstream`): named OpenAI-shaped upstreams for the model router,
  replying "from <name>" or failing as their `mode` says.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import h11

ANTHROPIC_KEY = "sk-ant-upstream-key"
OPENAI_KEY = "sk-openai-upstream-key"


@dataclass
class Turn:
    """A reply, API-neutral: text, tool calls (id, name, arguments) and why it stopped.

    `stop` is "end", "length", "tools" or "sequence:<the matched stop string>".
    """

    text: str = "Hello there, friend."
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    stop: str = "end"
    usage: tuple[int, int] = (11, 7)
    # Streaming: stop sending (and close the connection) after this many events.
    cut_after: int | None = None
    # Streaming: wait for this event before sending the event after the first content event.
    gate: anyio.Event | None = None
    # Streaming: seconds between events (so that concurrent streams overlap).
    delay: float = 0.0


@dataclass
class Failure:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Stall:
    """Answer nothing (with `head`: a 200 event-stream head, then nothing) until the gateway
    gives up and closes the connection."""

    head: bool = False


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: Any = None  # the parsed JSON, or the bytes when they are not JSON
    raw: bytes = b""  # the body's bytes as they came


Reply = Turn | Failure | Stall
Script = Callable[[Seen], Reply]
Answer = tuple[int, list[tuple[str, str]], Any] | Stall

_SSE_HEAD = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]


@dataclass
class Fake:
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    script: Script = lambda seen: Turn()
    # Connections this fake saw closed while it stalled (the gateway gave up on it).
    abandoned: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> Seen:
        return self.seen[-1]


class _Cut(Exception):
    pass


# --------------------------------------------------------------------------- the server


@asynccontextmanager
async def serve(answer: Callable[[Any, Seen], Answer], fake: Fake | None = None) -> AsyncIterator[Any]:
    """`fake` (a plain `Fake` when None) serving on a free port, each request answered by `answer`."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    fake = fake or Fake()
    fake.port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def receive(conn: h11.Connection, stream: anyio.abc.ByteStream) -> Any:
        while (event := conn.next_event()) is h11.NEED_DATA:
            try:
                conn.receive_data(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                conn.receive_data(b"")
        return event

    async def stall(stream: anyio.abc.ByteStream) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            await stream.receive()  # returns when the gateway gives up and closes
        fake.abandoned += 1

    async def connection(stream: anyio.abc.ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while isinstance(event := await receive(conn, stream), h11.Request):
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                    data = b""
                    while isinstance(part := await receive(conn, stream), h11.Data):
                        data += part.data
                    seen = Seen(event.method.decode(), event.target.decode(), headers, raw=data)
                    try:
                        seen.body = json.loads(data) if data else None
                    except ValueError:
                        seen.body = data
                    fake.seen.append(seen)
                    reply = answer(fake, seen)
                    if isinstance(reply, Stall):
                        if reply.head:
                            await stream.send(conn.send(h11.Response(status_code=200, headers=_SSE_HEAD)))
                        return await stall(stream)
                    status, out_headers, body = reply
                    await stream.send(conn.send(h11.Response(status_code=status, headers=out_headers)))
                    if isinstance(body, bytes):
                        await stream.send(conn.send(h11.Data(data=body)))
                    else:
                        try:
                            async for chunk in body:
                                await stream.send(conn.send(h11.Data(data=chunk)))
                        except _Cut:
                            return  # the connection closes with the response unfinished
                    await stream.send(conn.send(h11.EndOfMessage()))
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, h11.ProtocolError):
            pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, connection)
        yield fake
        tg.cancel_scope.cancel()


def _json(
    status: int, payload: Any, headers: list[tuple[str, str]] = ()
) -> tuple[int, list[tuple[str, str]], bytes]:  # type: ignore[assignment]
    data = json.dumps(payload).encode()
    return status, [("content-type", "application/json"), ("content-length", str(len(data))), *headers], data


async def _events(events: list[bytes], turn: Turn) -> AsyncIterator[bytes]:
    # The event carrying the first piece of text: the test releases the next one once it has it.
    marker = _pieces(turn.text)[0].encode()
    first_content = next((i for i, e in enumerate(events) if turn.text and marker in e), 0)
    for i, event in enumerate(events):
        if turn.cut_after is not None and i >= turn.cut_after:
            raise _Cut
        yield event
        if turn.gate is not None and i == first_content:
            await turn.gate.wait()
        if turn.delay:
            await anyio.sleep(turn.delay)


def _pieces(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _render(seen: Seen, reply: Reply, anthropic: bool) -> Answer:
    """`reply` to the request `seen` in the format of its API, streamed when the request asked."""
    if isinstance(reply, Failure):
        return _json(reply.status, reply.body, reply.headers)
    if isinstance(reply, Stall):
        return reply
    model, stream = seen.body["model"], seen.body.get("stream")
    if anthropic:
        if stream:
            return 200, _SSE_HEAD, _events(anthropic_events(reply, model), reply)
        return _json(200, anthropic_message(reply, model))
    if stream:
        include_usage = bool((seen.body.get("stream_options") or {}).get("include_usage"))
        return 200, _SSE_HEAD, _events(openai_chunks(reply, model, include_usage), reply)
    return _json(200, openai_completion(reply, model))


# --------------------------------------------------------------------------- Anthropic


def _anthropic_error(status: int, kind: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return _json(status, {"type": "error", "error": {"type": kind, "message": message}})


_ANTHROPIC_FIELDS = {
    "model", "max_tokens", "messages", "system", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "metadata", "thinking", "service_tier",
}  # fmt: skip
_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


def _check_top_level(body: Any, fields: set[str], unknown: str, no_model: str) -> str | None:
    """A JSON object with known fields only (`unknown` formats the refusal) and a model."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    for key in body:
        if key not in fields:
            return unknown.format(key)
    return None if isinstance(body.get("model"), str) else no_model


def check_anthropic(headers: dict[str, str], body: Any) -> str | None:
    """What the real Messages API would refuse in this request (400), or None."""
    error = _check_top_level(
        body, _ANTHROPIC_FIELDS, "{}: Extra inputs are not permitted", "model: Field required"
    )
    if error:
        return error
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    for key in ("temperature", "top_p"):
        if key in body and not 0 <= body[key] <= 1:
            return f"{key}: must be between 0 and 1"
    system = body.get("system")
    if system is not None and not isinstance(system, str):  # noqa: SIM102 - two different checks
        if not all(isinstance(b, dict) and b.get("type") == "text" and b.get("text") for b in system):
            return "system: each block must be a non-empty text block"
    if "stop_sequences" in body and not all(isinstance(s, str) for s in body["stop_sequences"]):
        return "stop_sequences: must be strings"
    for i, tool in enumerate(body.get("tools") or ()):
        if (
            set(tool) - {"name", "description", "input_schema"}
            or tool.get("input_schema", {}).get("type") != "object"
        ):
            return f"tools.{i}: a tool needs a name and an object input_schema, nothing else"
    choice = body.get("tool_choice")
    if choice is not None and (
        choice.get("type") not in ("auto", "any", "tool", "none")
        or (choice["type"] == "tool") != ("name" in choice)
    ):
        return "tool_choice: invalid"
    return _check_anthropic_messages(body.get("messages"))


def _check_anthropic_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending: set[str] = set()  # tool_use ids the next user turn must answer
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role != ("user" if i % 2 == 0 else "assistant"):
            return 'messages: roles must alternate between "user" and "assistant", starting with "user"'
        if isinstance(content, str):
            blocks: list[Any] = [{"type": "text", "text": content}]
        elif isinstance(content, list) and content:
            blocks = content
        else:
            return f"messages.{i}: content must be a non-empty string or list"
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if answered - pending:
            return f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {sorted(answered - pending)}"
        if pending - answered:
            return f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {sorted(pending - answered)}"
        pending = set()
        for j, block in enumerate(blocks):
            error = _check_anthropic_block(role, block, f"messages.{i}.content.{j}")
            if error:
                return error
            if block["type"] == "tool_use":
                pending.add(block["id"])
    return None


def _check_anthropic_block(role: str, block: dict[str, Any], where: str) -> str | None:
    kind = block.get("type")
    allowed = {"text", "image", "tool_result"} if role == "user" else {"text", "tool_use"}
    if kind not in allowed:
        return f"{where}: {kind!r} blocks are not allowed in {role} messages"
    if kind == "text" and not block.get("text"):
        return f"{where}: text content blocks must be non-empty"
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            if source.get("media_type") not in _IMAGE_TYPES or not source.get("data"):
                return f"{where}.source: invalid base64 image source"
        elif source.get("type") != "url" or not str(source.get("url", "")).startswith("https://"):
            return f"{where}.source: invalid image source"
    if kind == "tool_use" and not (
        isinstance(block.get("input"), dict) and block.get("id") and block.get("name")
    ):
        return f"{where}: tool_use needs id, name and an object input"
    return None


_ANTHROPIC_STOPS = {"end": "end_turn", "length": "max_tokens", "tools": "tool_use"}


def _anthropic_stop(turn: Turn) -> tuple[str, str | None]:
    if turn.stop.startswith("sequence:"):
        return "stop_sequence", turn.stop.removeprefix("sequence:")
    return _ANTHROPIC_STOPS[turn.stop], None


def anthropic_message(turn: Turn, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    content += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in turn.calls]
    reason, sequence = _anthropic_stop(turn)
    usage = {"input_tokens": turn.usage[0], "output_tokens": turn.usage[1]}
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": reason, "stop_sequence": sequence, "usage": usage}  # fmt: skip


def anthropic_events(turn: Turn, model: str) -> list[bytes]:
    def event(name: str, payload: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()

    message = {**anthropic_message(turn, model), "content": [], "stop_reason": None, "stop_sequence": None}
    message["usage"] = {"input_tokens": turn.usage[0], "output_tokens": 1}
    out = [event("message_start", {"type": "message_start", "message": message})]
    index = 0
    if turn.text:
        out.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        out.append(event("ping", {"type": "ping"}))
        for piece in _pieces(turn.text):
            out.append(
                event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for ident, name, arguments in turn.calls:
        block = {"type": "tool_use", "id": ident, "name": name, "input": {}}
        out.append(
            event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
            )
        )
        for piece in _pieces(json.dumps(arguments), 7):
            delta = {"type": "input_json_delta", "partial_json": piece}
            out.append(
                event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            )
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    reason, sequence = _anthropic_stop(turn)
    delta = {"stop_reason": reason, "stop_sequence": sequence}
    out.append(
        event(
            "message_delta",
            {"type": "message_delta", "delta": delta, "usage": {"output_tokens": turn.usage[1]}},
        )
    )
    out.append(event("message_stop", {"type": "message_stop"}))
    return out


def _anthropic_answer(fake: Fake, seen: Seen) -> Answer:
    if seen.headers.get("x-api-key") != ANTHROPIC_KEY:
        return _anthropic_error(401, "authentication_error", "invalid x-api-key")
    if "anthropic-version" not in seen.headers:
        return _anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
    if seen.method == "GET" and seen.target == "/v1/models":
        model = {
            "type": "model",
            "id": "claude-fake-4",
            "display_name": "Claude Fake 4",
            "created_at": "2025-05-14T00:00:00Z",
        }
        return _json(
            200, {"data": [model], "has_more": False, "first_id": "claude-fake-4", "last_id": "claude-fake-4"}
        )
    if (seen.method, seen.target) != ("POST", "/v1/messages"):
        return _anthropic_error(404, "not_found_error", f"{seen.method} {seen.target} not found")
    error = check_anthropic(seen.headers, seen.body)
    if error:
        return _anthropic_error(400, "invalid_request_error", error)
    return _render(seen, fake.script(seen), anthropic=True)


def anthropic_fake() -> Any:
    """`async with anthropic_fake() as fake:` a strict Anthropic Messages API on a free port."""
    return serve(_anthropic_answer)


# --------------------------------------------------------------------------- OpenAI


def _openai_error(
    status: int, message: str, kind: str = "invalid_request_error", param: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    return _json(status, {"error": {"message": message, "type": kind, "param": param, "code": None}})


_OPENAI_FIELDS = {
    "model", "messages", "max_tokens", "max_completion_tokens", "n", "stop", "stream", "stream_options",
    "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls", "user", "seed", "logprobs",
    "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty", "response_format",
}  # fmt: skip


def check_openai(body: Any) -> str | None:
    """What the real Chat Completions API would refuse in this request (400), or None."""
    error = _check_top_level(
        body,
        _OPENAI_FIELDS,
        "Unrecognized request argument supplied: {}",
        "you must provide a model parameter",
    )
    if error:
        return error
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        return "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported."
    if "stream_options" in body and not body.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    if "temperature" in body and not 0 <= body["temperature"] <= 2:
        return "temperature: must be between 0 and 2"
    for i, tool in enumerate(body.get("tools") or ()):
        if tool.get("type") != "function" or not isinstance(tool.get("function", {}).get("name"), str):
            return f"tools[{i}]: invalid tool"
    return _check_openai_messages(body.get("messages"))


def _check_openai_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "'messages' must contain at least one message"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
            pending.discard(message["tool_call_id"])
            if not isinstance(message.get("content"), str | list):
                return f"messages[{i}].content: invalid"
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(sorted(pending))}"
            )
        if role not in ("system", "developer", "user", "assistant"):
            return f"messages[{i}].role: invalid role {role!r}"
        content = message.get("content")
        if role == "assistant":
            for call in message.get("tool_calls") or ():
                if not isinstance(call.get("function", {}).get("arguments"), str):
                    return f"messages[{i}].tool_calls: arguments must be a string"
                pending.add(call["id"])
            if content is None and not message.get("tool_calls"):
                return f"messages[{i}]: an assistant message needs content or tool_calls"
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if part.get("type") not in ("text", "image_url") or (
                    part["type"] == "image_url" and not part["image_url"].get("url")
                ):
                    return f"messages[{i}].content[{j}]: invalid content part"
        elif not isinstance(content, str):
            return f"messages[{i}].content: invalid"
    if pending:
        return f"tool_call_ids without response messages: {', '.join(sorted(pending))}"
    return None


_OPENAI_FINISH = {"end": "stop", "length": "length", "tools": "tool_calls"}


def _openai_finish(turn: Turn) -> tuple[str, str | None]:
    if turn.stop.startswith("sequence:"):  # vLLM names the matched stop string in `stop_reason`
        return "stop", turn.stop.removeprefix("sequence:")
    return _OPENAI_FINISH[turn.stop], None


def _openai_usage(turn: Turn) -> dict[str, int]:
    return {
        "prompt_tokens": turn.usage[0],
        "completion_tokens": turn.usage[1],
        "total_tokens": sum(turn.usage),
    }


def openai_completion(turn: Turn, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
    if turn.calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in turn.calls
        ]
    finish, matched = _openai_finish(turn)
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": finish,
        "logprobs": None,
        "stop_reason": matched,
    }
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [choice],
        "usage": _openai_usage(turn),
    }


def openai_chunks(turn: Turn, model: str, include_usage: bool) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None, matched: str | None = None) -> bytes:
        choice = {
            "index": 0,
            "delta": delta,
            "finish_reason": finish,
            "logprobs": None,
            "stop_reason": matched,
        }
        doc = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [choice],
        }
        if include_usage:  # the real API then sends `"usage": null` on every chunk but the last
            doc["usage"] = None
        return b"data: " + json.dumps(doc).encode() + b"\n\n"

    out = [chunk({"role": "assistant", "content": ""})]
    if turn.text:
        out += [chunk({"content": piece}) for piece in _pieces(turn.text)]
    for index, (ident, name, arguments) in enumerate(turn.calls):
        start = {"index": index, "id": ident, "type": "function", "function": {"name": name, "arguments": ""}}
        out.append(chunk({"tool_calls": [start]}))
        for piece in _pieces(json.dumps(arguments), 7):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    out.append(chunk({}, *_openai_finish(turn)))
    if include_usage:
        doc = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [],
            "usage": _openai_usage(turn),
        }
        out.append(b"data: " + json.dumps(doc).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def _openai_answer(fake: Fake, seen: Seen) -> Answer:
    if seen.headers.get("authorization") != f"Bearer {OPENAI_KEY}":
        return _openai_error(401, "Incorrect API key provided", "invalid_request_error")
    if seen.method == "GET" and seen.target == "/v1/models":
        return _json(
            200,
            {
                "object": "list",
                "data": [{"id": "gpt-fake", "object": "model", "created": 1700000000, "owned_by": "openai"}],
            },
        )
    if (seen.method, seen.target) == ("POST", "/tokenize"):  # vLLM's tokenizer endpoint
        error = _check_openai_messages(seen.body.get("messages"))
        if error:
            return _openai_error(400, error)
        words = sum(len(str(m.get("content") or "").split()) for m in seen.body["messages"])
        return _json(200, {"count": 3 * words, "max_model_len": 8192, "tokens": []})
    if (seen.method, seen.target) != ("POST", "/v1/chat/completions"):
        return _openai_error(404, f"Invalid URL ({seen.method} {seen.target})")
    error = check_openai(seen.body)
    if error:
        return _openai_error(400, error)
    return _render(seen, fake.script(seen), anthropic=False)


def openai_fake() -> Any:
    """`async with openai_fake() as fake:` a strict OpenAI Chat Completions API on a free port."""
    return serve(_openai_answer)


# --------------------------------------------------------------------------- lenient fakes


def _problem(body: Any, anthropic: bool) -> str | None:
    """What even a lenient upstream refuses: no JSON object with a model (Anthropic: no max_tokens)."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "the body must be a JSON object with a model"
    if anthropic and not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    return None


def _lenient_answer(fake: Fake, seen: Seen) -> Answer:
    """Both APIs on one port, by path (`/v1/messages` is Anthropic's), no credentials checked."""
    if seen.target == "/v1/models":
        return _json(200, {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})
    anthropic = seen.target == "/v1/messages"
    problem = _problem(seen.body, anthropic)
    if problem is not None:
        if anthropic:
            return _anthropic_error(400, "invalid_request_error", problem)
        return _openai_error(400, problem)
    return _render(seen, fake.script(seen), anthropic)


@dataclass
class FakeLlm(Fake):
    """Both APIs, no credentials: replies of `words` tokens ("word " each, fewer when the
    request's max_tokens says so) for `prompt_tokens`, or an error when `status` is not 200."""

    prompt_tokens: int = 10
    words: int = 5
    status: int = 200
    delay: float = 0.0  # seconds between streamed events (so that concurrent streams overlap)

    def __post_init__(self) -> None:
        self.script = self._reply

    def _reply(self, seen: Seen) -> Reply:
        if self.status != 200:
            if seen.target == "/v1/messages":
                error = {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "upstream says no"},
                }
            else:
                error = {
                    "error": {
                        "message": "upstream says no",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
            return Failure(self.status, error)
        body = seen.body
        words = min(self.words, body.get("max_tokens") or body.get("max_completion_tokens") or self.words)
        return Turn(text="word " * words, usage=(self.prompt_tokens, words), delay=self.delay)


def fake_llm(**options: Any) -> Any:
    """`async with fake_llm(words=..) as llm:` a running FakeLlm on a free port."""
    return serve(_lenient_answer, FakeLlm(**options))


@dataclass
class LlmUpstream(Fake):
    """An OpenAI-shaped upstream for the model router, answering as its `mode` says:

    ok           a completion "from <name>" (usage 1 + 2), streamed when asked
    status       `status` with an OpenAI error body ("<name> says <status>"; `retry_after`,
                 when set, as Retry-After)
    stall        read the request, never answer (a timeout before the response head)
    stall_body   send a 200 SSE head, then nothing (a timeout before the first body byte)
    cut          stream the first chunks up to the first piece of text, then close the connection
    """

    name: str = ""
    mode: str = "ok"
    status: int = 500
    retry_after: str | None = None

    def __post_init__(self) -> None:
        self.script = self._reply

    def _reply(self, seen: Seen) -> Reply:
        if self.mode == "status":
            extra = [("retry-after", self.retry_after)] if self.retry_after is not None else []
            error = {"message": f"{self.name} says {self.status}", "type": "x", "param": None, "code": None}
            return Failure(self.status, {"error": error}, extra)
        if self.mode in ("stall", "stall_body"):
            return Stall(head=self.mode == "stall_body")
        # "cut": the role chunk and the first piece of text ("from "), then the connection closes
        return Turn(text=f"from {self.name}", usage=(1, 2), cut_after=2 if self.mode == "cut" else None)


@asynccontextmanager
async def llm_upstreams(*names: str) -> AsyncIterator[dict[str, LlmUpstream]]:
    """Fake upstreams by name, serving until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(serve(_lenient_answer, LlmUpstream(name=name)))
            for name in names
        }


def gateway_hcl(
    port: int, upstream: str, keys: str, *, chain: tuple[str, ...] = ("keys",), extra: str = ""
) -> str:
    """A gateway on `port` routing everything to `upstream` through `chain`, whose `keys` is an
    `llm-keys` middleware with the options `keys`; `extra` adds blocks (an `api`, a `jwt` ...)."""
    names = ", ".join(f'"{name}"' for name in chain)
    return f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
services "llm" {{
  load_balancer {{
    servers = [{{ url = "{upstream}" }}]
  }}
}}
routers "llm" {{
  rule        = "PathPrefix(`/`)"
  service     = "llm"
  middlewares = [{names}]
}}
middlewares "keys" {{
  type = "llm-keys"
{keys}
}}
{extra}
"""
