"""An Anthropic Messages client served by an OpenAI-compatible upstream (OpenAI, vLLM,
llama.cpp, TGI).

Pure functions over parsed JSON (and one stream converter object), no I/O:

- `convert_request(anthropic_body)` -> the Chat Completions request;
- `convert_response(openai_body)` -> the Anthropic `message`;
- `convert_error(status, openai_body)` -> (status, Anthropic error body);
- `convert_models(openai_body)` -> Anthropic's model page (`GET /v1/models`);
- `estimate_tokens(anthropic_body)` -> a `count_tokens` estimate, for upstreams without one;
- `StreamConverter(anthropic_body)`: fed one upstream SSE event at a time (`feed`), it returns
  Anthropic's events (`message_start`, `content_block_*`, `message_delta`, `message_stop`).

What is mapped: the top-level `system` -> a system message; text and image blocks (base64 -> a
`data:` URL, url -> the URL); `tool_use` blocks -> `tool_calls`; `tool_result` blocks -> `tool`
messages, placed before the rest of their user turn (OpenAI wants them right after the call);
`input_schema` -> `tools[].function.parameters`; `tool_choice` (`any` -> `required`,
`disable_parallel_tool_use` -> `parallel_tool_calls: false`); `stop_sequences` -> `stop`;
`metadata.user_id` -> `user`. Streams ask the upstream for usage (`stream_options`), which
becomes the final `message_delta` usage. `max_tokens` is required, as Anthropic requires it.
`top_k`, extended thinking, documents, server tools and images inside tool results have no
Chat Completions form: a `ConversionError`, answered 400 in Anthropic's format.
"""

from __future__ import annotations

import json
from typing import Any

from ._fields import as_list, as_object, as_str, dumps, invalid, loads
from .errors import ConversionError, anthropic_error, anthropic_error_from_openai
from .sse import SseEvent, encode_event

__all__ = [
    "STOP_REASONS",
    "StreamConverter",
    "convert_error",
    "convert_models",
    "convert_request",
    "convert_response",
    "estimate_tokens",
]

# OpenAI finish_reason -> Anthropic stop_reason (a matched stop string is `stop_sequence`).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_INEXPRESSIBLE: dict[str, tuple[object, ...]] = {
    "top_k": (None,),
    "thinking": (None, {"type": "disabled"}),
    "container": (None,),
    "mcp_servers": (None, []),
}
_KNOWN = {
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature",
    "top_p", "tools", "tool_choice", "metadata", "service_tier",
}  # fmt: skip


def convert_error(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    return anthropic_error_from_openai(status, body)


# ------------------------------------------------------------------ request


def convert_request(body: dict[str, Any], *, count_only: bool = False) -> dict[str, Any]:
    """The Chat Completions request that means what the Anthropic `body` means.

    `count_only`: the body of a `count_tokens` call (no `max_tokens`, nothing to generate).
    """
    _refuse_inexpressible(body)
    out: dict[str, Any] = {"model": as_str(body.get("model"), "model")}
    messages = _system(body.get("system"))
    for i, message in enumerate(as_list(body.get("messages"), "messages")):
        messages += _message(as_object(message, f"messages.{i}"), i)
    out["messages"] = messages
    if not count_only:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise ConversionError("max_tokens: Field required", param="max_tokens", code="invalid_value")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise invalid("max_tokens", "a positive integer")
        out["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                raise invalid(key, "a number between 0 and 1")
            out[key] = value
    stop = body.get("stop_sequences")
    if stop:
        out["stop"] = [as_str(s, "stop_sequences") for s in as_list(stop, "stop_sequences")]
    if body.get("tools"):
        out["tools"] = [_tool(t, i) for i, t in enumerate(as_list(body["tools"], "tools"))]
    _tool_choice(body.get("tool_choice"), out)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream") and not count_only:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _refuse_inexpressible(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key in _INEXPRESSIBLE:
            if value not in _INEXPRESSIBLE[key]:
                raise ConversionError(
                    f"{key}: cannot be expressed to an OpenAI-compatible upstream", param=key
                )
        elif key not in _KNOWN:
            raise ConversionError(f"{key}: Extra inputs are not permitted", param=key)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    parts = [_text(b, f"system.{j}") for j, b in enumerate(as_list(system, "system"))]
    return [{"role": "system", "content": parts[0]["text"] if len(parts) == 1 else parts}]


def _text(block: Any, where: str) -> dict[str, Any]:
    block = as_object(block, where)
    if block.get("type") != "text":
        raise invalid(f"{where}.type", "text")
    return {"type": "text", "text": as_str(block.get("text"), f"{where}.text")}


def _message(message: dict[str, Any], i: int) -> list[dict[str, Any]]:
    role, content = message.get("role"), message.get("content")
    if role not in ("user", "assistant"):
        raise invalid(f"messages.{i}.role", "'user' or 'assistant'")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = [
        as_object(b, f"messages.{i}.content.{j}")
        for j, b in enumerate(as_list(content, f"messages.{i}.content"))
    ]
    if role == "assistant":
        return [_assistant(blocks, i)]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type")
        if kind == "tool_result":
            tools.append(_tool_message(block, where))
        elif kind == "text":
            parts.append({"type": "text", "text": as_str(block.get("text"), f"{where}.text")})
        elif kind == "image":
            parts.append(_image(block, where))
        else:
            raise ConversionError(
                f"{where}.type: {kind!r} blocks cannot be expressed to an OpenAI-compatible upstream",
                param=f"{where}.type",
            )
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        tools.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return tools


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = as_object(block.get("source"), f"{where}.source")
    if source.get("type") == "base64":
        media_type = as_str(source.get("media_type"), f"{where}.source.media_type")
        url = f"data:{media_type};base64,{as_str(source.get('data'), f'{where}.source.data')}"
    elif source.get("type") == "url":
        url = as_str(source.get("url"), f"{where}.source.url")
    else:
        raise invalid(f"{where}.source.type", "'base64' or 'url'")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = as_str(block.get("tool_use_id"), f"{where}.tool_use_id")
    content = block.get("content", "")
    if not isinstance(content, str):
        texts = []
        for k, part in enumerate(as_list(content, f"{where}.content")):
            part = as_object(part, f"{where}.content.{k}")
            if part.get("type") != "text":
                raise ConversionError(
                    f"{where}.content.{k}: only text tool results can be expressed to an OpenAI-compatible upstream",
                    param=f"{where}.content.{k}.type",
                )
            texts.append(as_str(part.get("text"), f"{where}.content.{k}.text"))
        content = "".join(texts)
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _assistant(blocks: list[dict[str, Any]], i: int) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        kind = block.get("type")
        if kind == "text":
            texts.append(as_str(block.get("text"), f"{where}.text"))
        elif kind == "tool_use":
            function = {
                "name": as_str(block.get("name"), f"{where}.name"),
                "arguments": dumps(block.get("input") or {}),
            }
            calls.append(
                {"id": as_str(block.get("id"), f"{where}.id"), "type": "function", "function": function}
            )
        elif kind not in ("thinking", "redacted_thinking"):  # reasoning is the upstream's own business
            raise ConversionError(
                f"{where}.type: {kind!r} blocks cannot be expressed to an OpenAI-compatible upstream",
                param=f"{where}.type",
            )
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    return out


def _tool(tool: Any, i: int) -> dict[str, Any]:
    tool = as_object(tool, f"tools.{i}")
    if tool.get("type", "custom") != "custom":
        raise ConversionError(
            f"tools.{i}: server tool {tool.get('type')!r} cannot be expressed to an OpenAI-compatible upstream",
            param=f"tools.{i}.type",
        )
    function: dict[str, Any] = {"name": as_str(tool.get("name"), f"tools.{i}.name")}
    if tool.get("description") is not None:
        function["description"] = as_str(tool["description"], f"tools.{i}.description")
    function["parameters"] = as_object(tool.get("input_schema"), f"tools.{i}.input_schema")
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice is None:
        return
    choice = as_object(choice, "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {
            "type": "function",
            "function": {"name": as_str(choice.get("name"), "tool_choice.name")},
        }
    else:
        raise invalid("tool_choice.type", "one of auto, any, tool, none")
    if choice.get("disable_parallel_tool_use") and "tools" in out:
        out["parallel_tool_calls"] = False


# ------------------------------------------------------------------ response


def convert_response(body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic `message` for an OpenAI `chat.completion` (its first choice)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    elif message.get("refusal"):
        content.append({"type": "text", "text": message["refusal"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": _arguments(function),
            }
        )
    reason, sequence = stop_reason(choice)
    return {
        "id": body.get("id", ""),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": convert_usage(body.get("usage") or {}),
    }


def _arguments(function: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(function.get("arguments") or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):  # a model wrote broken JSON: keep it, visibly, rather than lose it
        return {"_raw_arguments": function.get("arguments")}
    return value


def stop_reason(choice: dict[str, Any]) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). vLLM names the stop string that matched in `stop_reason`."""
    finish = choice.get("finish_reason") or "stop"
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str):
        return "stop_sequence", matched
    return STOP_REASONS.get(finish, "end_turn"), None


def convert_usage(usage: dict[str, Any]) -> dict[str, Any]:
    prompt = usage.get("prompt_tokens") or 0
    details = usage.get("prompt_tokens_details")
    cached = (details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    out = {"input_tokens": prompt - cached, "output_tokens": usage.get("completion_tokens") or 0}
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def convert_models(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's model list as Anthropic's model page."""
    data = [convert_model(m) for m in body.get("data") or () if isinstance(m, dict)]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def convert_model(model: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    created = model.get("created")
    stamp = datetime.fromtimestamp(created if isinstance(created, int) else 0, UTC)
    ident = model.get("id", "")
    return {
        "type": "model",
        "id": ident,
        "display_name": ident,
        "created_at": stamp.isoformat().replace("+00:00", "Z"),
    }


def estimate_tokens(body: dict[str, Any]) -> int:
    """A `count_tokens` estimate: about four characters per token over every text the model
    reads (system, messages, tool definitions), a few tokens per message, ~1,600 per image
    (Anthropic's figure for a 1.15-megapixel image)."""
    converted = convert_request(body, count_only=True)
    chars, images = 0, 0
    for message in converted["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    images += 1
                else:
                    chars += len(part.get("text", ""))
        for call in message.get("tool_calls") or ():
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    if converted.get("tools"):
        chars += len(dumps(converted["tools"]))
    return max(1, (chars + 3) // 4 + 4 * len(converted["messages"]) + 1600 * images)


# ------------------------------------------------------------------ streaming


class StreamConverter:
    """OpenAI `chat.completion.chunk` events in, Anthropic's event sequence out.

    The first upstream chunk opens the message (`message_start`, then a `ping` as Anthropic
    sends one); text opens a text block, each tool call a `tool_use` block whose arguments
    stream as `input_json_delta`; a block is stopped when the next one starts. The finish
    reason and the usage chunk (which OpenAI sends after it) are held until `[DONE]`, which
    becomes `message_delta` (stop reason, usage) and `message_stop`. `end()` after an upstream
    body that stopped before `[DONE]` finishes the message when the finish reason had arrived
    (some servers omit `[DONE]`), else returns an error event; `fail(message)` is that event.
    """

    __slots__ = ("_block", "_blocks", "_calls", "_done", "_finish", "_model", "_started", "_usage")

    def __init__(self, request: dict[str, Any]) -> None:
        self._model = str(request.get("model", ""))
        self._started = False
        self._blocks = 0  # content blocks opened so far
        self._block: str | None = None  # the open block's kind: "text", "tool_use" or None
        self._calls: dict[int, int] = {}  # OpenAI tool call index -> Anthropic block index
        self._finish: tuple[str, str | None] | None = None
        self._usage: dict[str, Any] = {"input_tokens": 0, "output_tokens": 0}
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def usage(self) -> dict[str, Any]:
        return self._usage

    def feed(self, event: SseEvent) -> bytes:
        if self._done:
            return b""
        if event.data == "[DONE]":
            return self._close()
        try:
            chunk = loads(event.data)
        except ValueError:
            return self.fail("the upstream sent an event that is not JSON")
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            _, body = convert_error(500, chunk)
            self._done = True
            return encode_event(dumps(body), "error")
        out = b"" if self._started else self._start(chunk)
        if isinstance(chunk.get("usage"), dict):
            self._usage = convert_usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and not choice.get("index"):
                out += self._choice(choice)
        return out

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self._started = True
        message = {
            "id": chunk.get("id", ""),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        start = encode_event(dumps({"type": "message_start", "message": message}), "message_start")
        return start + b'event: ping\ndata: {"type":"ping"}\n\n'

    def _choice(self, choice: dict[str, Any]) -> bytes:
        out = b""
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if text:
            if self._block != "text":
                out += self._open('{"type":"text","text":""}', "text")
            block = self._blocks - 1
            out += _event(
                "content_block_delta",
                f'{{"type":"content_block_delta","index":{block},"delta":{{"type":"text_delta","text":{dumps(text)}}}}}',
            )
        for call in delta.get("tool_calls") or ():
            out += self._tool_call(call)
        if choice.get("finish_reason"):
            out += self._close_block()
            self._finish = stop_reason(choice)
        return out

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self._calls:
            block = f'{{"type":"tool_use","id":{dumps(call.get("id", ""))},"name":{dumps(function.get("name", ""))},"input":{{}}}}'
            out += self._open(block, "tool_use")
            self._calls[index] = self._blocks - 1
        arguments = function.get("arguments")
        if arguments:
            block_index = self._calls[index]
            delta = f'{{"type":"input_json_delta","partial_json":{dumps(arguments)}}}'
            out += _event(
                "content_block_delta",
                f'{{"type":"content_block_delta","index":{block_index},"delta":{delta}}}',
            )
        return out

    def _open(self, block: str, kind: str) -> bytes:
        out = self._close_block()
        index = self._blocks
        self._blocks += 1
        self._block = kind
        return out + _event(
            "content_block_start", f'{{"type":"content_block_start","index":{index},"content_block":{block}}}'
        )

    def _close_block(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return _event("content_block_stop", f'{{"type":"content_block_stop","index":{self._blocks - 1}}}')

    def _close(self) -> bytes:
        out = b"" if self._started else self._start({})
        out += self._close_block()
        reason, sequence = self._finish or ("end_turn", None)
        self._done = True
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        message_delta = dumps({"type": "message_delta", "delta": delta, "usage": self._usage})
        return (
            out + _event("message_delta", message_delta) + _event("message_stop", '{"type":"message_stop"}')
        )

    def end(self) -> bytes:
        """The upstream body ended. Complete when a finish reason came (some servers omit
        `[DONE]`); otherwise the stream was cut: an error event."""
        if self._done:
            return b""
        if self._finish is not None:
            return self._close()
        return self.fail("the upstream stream ended before the message was complete")

    def fail(self, message: str) -> bytes:
        """The `error` event that ends a broken stream (the SDK raises it as an APIError)."""
        self._done = True
        return _event("error", dumps(anthropic_error(message, "api_error")))


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()
