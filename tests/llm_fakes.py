"""Upstream fakes of the Anthropic Messages and OpenAI Chat Completions APIs for conversion tests.

Real HTTP/1.1 servers (h11 on anyio sockets) that check requests as strictly as the real APIs
do and refuse them with the real APIs' error shapes: a wrong key, a missing `max_tokens`,
unknown fields, roles that do not alternate, a `tool_result` whose id matches no `tool_use`, a
tool call left without its result, a bad image source, a temperature out of range.

What they answer is a `Turn` (the same neutral description for both APIs, rendered in each
one's format), chosen by the test per request; streamed turns are sent one event per send, and
a test can hold an event back (`gate`) or cut the connection mid-stream (`cut_after`).
"""

from __future__ import annotations

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


@dataclass
class Failure:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: Any = None


Script = Callable[[Seen], "Turn | Failure"]


@dataclass
class Fake:
    port: int
    seen: list[Seen] = field(default_factory=list)
    script: Script = lambda seen: Turn()

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
async def serve(
    answer: Callable[[Fake, Seen], tuple[int, list[tuple[str, str]], Any]],
) -> AsyncIterator[Fake]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    fake = Fake(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def receive(conn: h11.Connection, stream: anyio.abc.ByteStream) -> Any:
        while (event := conn.next_event()) is h11.NEED_DATA:
            try:
                conn.receive_data(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                conn.receive_data(b"")
        return event

    async def connection(stream: anyio.abc.ByteStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while isinstance(event := await receive(conn, stream), h11.Request):
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                    data = b""
                    while isinstance(part := await receive(conn, stream), h11.Data):
                        data += part.data
                    seen = Seen(event.method.decode(), event.target.decode(), headers)
                    try:
                        seen.body = json.loads(data) if data else None
                    except ValueError:
                        seen.body = data
                    fake.seen.append(seen)
                    status, out_headers, body = answer(fake, seen)
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


def _pieces(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


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


def _anthropic_answer(fake: Fake, seen: Seen) -> tuple[int, list[tuple[str, str]], Any]:
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
    reply = fake.script(seen)
    if isinstance(reply, Failure):
        return _json(reply.status, reply.body, reply.headers)
    if seen.body.get("stream"):
        events = anthropic_events(reply, seen.body["model"])
        return (
            200,
            [("content-type", "text/event-stream"), ("cache-control", "no-cache")],
            _events(events, reply),
        )
    return _json(200, anthropic_message(reply, seen.body["model"]))


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


def _openai_answer(fake: Fake, seen: Seen) -> tuple[int, list[tuple[str, str]], Any]:
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
    reply = fake.script(seen)
    if isinstance(reply, Failure):
        return _json(reply.status, reply.body, reply.headers)
    if seen.body.get("stream"):
        include_usage = bool((seen.body.get("stream_options") or {}).get("include_usage"))
        events = openai_chunks(reply, seen.body["model"], include_usage)
        return 200, [("content-type", "text/event-stream")], _events(events, reply)
    return _json(200, openai_completion(reply, seen.body["model"]))


def openai_fake() -> Any:
    """`async with openai_fake() as fake:` a strict OpenAI Chat Completions API on a free port."""
    return serve(_openai_answer)
