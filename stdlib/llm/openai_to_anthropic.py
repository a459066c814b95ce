"""An OpenAI Chat Completions client served by an Anthropic Messages upstream.

Pure functions over parsed JSON (and one stream converter object), no I/O:

- `convert_request(openai_body, default_max_tokens=...)` -> the Anthropic request;
- `convert_response(anthropic_body)` -> the OpenAI `chat.completion`;
- `convert_error(status, anthropic_body)` -> (status, OpenAI error body);
- `convert_models(anthropic_body)` -> OpenAI's model list (`GET /v1/models`);
- `StreamConverter(openai_body)`: fed one upstream SSE event at a time (`feed`), it returns the
  client's `chat.completion.chunk` events as bytes, ready to write.

What is mapped: system and developer messages -> the top-level `system`; text and image parts
(a `data:` URL -> a base64 source, any other URL -> a url source); assistant `tool_calls` ->
`tool_use` blocks, `tool` messages -> `tool_result` blocks in the next user turn (consecutive
messages of one role are merged: Anthropic requires alternating roles); `tools[].function` ->
`input_schema`; `tool_choice` and `parallel_tool_calls`; `stop` -> `stop_sequences`;
`max_completion_tokens` / `max_tokens` (a default when neither is sent: Anthropic requires one);
`user` -> `metadata.user_id`. Parameters Anthropic cannot express (`n > 1`, `logprobs`,
`logit_bias`, penalties, `seed`, `response_format`, audio, a temperature above 1 ...) are a
`ConversionError`, which the caller answers 400 in OpenAI's format.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ._fields import as_list, as_object, as_str, dumps, invalid, loads
from .errors import ConversionError, openai_error, openai_error_from_anthropic
from .sse import SseEvent, encode_event

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "FINISH_REASONS",
    "StreamConverter",
    "convert_error",
    "convert_models",
    "convert_request",
    "convert_response",
]

DEFAULT_MAX_TOKENS = 4096

# Anthropic stop_reason -> OpenAI finish_reason.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Parameters with no Anthropic equivalent, and the value that means "not used".
_INEXPRESSIBLE: dict[str, tuple[object, ...]] = {
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "seed": (None,),
    "audio": (None,),
    "prediction": (None,),
    "functions": (None,),
    "function_call": (None,),
    "reasoning_effort": (None,),
    "web_search_options": (None,),
}
# Accepted and carried or deliberately without effect on the answer (bookkeeping of OpenAI's).
_KNOWN = {
    "model", "messages", "max_tokens", "max_completion_tokens", "n", "stop", "stream",
    "stream_options", "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls",
    "user", "response_format", "modalities", "store", "metadata", "service_tier",
}  # fmt: skip


def convert_error(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    return openai_error_from_anthropic(status, body)


# ------------------------------------------------------------------ request


def convert_request(body: dict[str, Any], *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """The Anthropic Messages request that means what the OpenAI `body` means."""
    _refuse_inexpressible(body)
    out: dict[str, Any] = {"model": as_str(body.get("model"), "model")}
    system, messages = _messages(as_list(body.get("messages"), "messages"))
    out["max_tokens"] = _max_tokens(body, default_max_tokens)
    out["messages"] = messages
    if system:
        out["system"] = system
    _sampling(body, out)
    if body.get("tools"):
        out["tools"] = [_tool(t, i) for i, t in enumerate(as_list(body["tools"], "tools"))]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and (out.get("tools") or choice["type"] == "none"):
        out["tool_choice"] = choice
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if body.get("stream"):
        out["stream"] = True
    return out


def _max_tokens(body: dict[str, Any], default: int) -> int:
    """`max_completion_tokens` (OpenAI's current name), or `max_tokens`, or the default. Both at
    once is refused, as the OpenAI API refuses it (400 `invalid_parameter_combination`)."""
    completion, legacy = body.get("max_completion_tokens"), body.get("max_tokens")
    if completion is not None and legacy is not None:
        raise ConversionError(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            param="max_tokens",
            code="invalid_parameter_combination",
        )
    param, value = ("max_completion_tokens", completion) if completion is not None else ("max_tokens", legacy)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise invalid(param, "a positive integer")
    return value


def _refuse_inexpressible(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key in _INEXPRESSIBLE:
            if value not in _INEXPRESSIBLE[key]:
                raise ConversionError(f"'{key}' cannot be expressed to an Anthropic upstream", param=key)
        elif key not in _KNOWN:
            raise ConversionError(f"Unrecognized request argument supplied: {key}", param=key)
    n = body.get("n")
    if n is not None and n != 1:
        raise ConversionError("'n' must be 1: an Anthropic upstream returns one choice", param="n")
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise ConversionError(
            "'response_format' cannot be expressed to an Anthropic upstream", param="response_format"
        )
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise ConversionError(
            "only the text modality can be expressed to an Anthropic upstream", param="modalities"
        )


def _sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool) or temperature < 0:
            raise invalid("temperature", "a number between 0 and 2")
        if temperature > 1:
            raise ConversionError(
                "'temperature' above 1 cannot be expressed to an Anthropic upstream (its range is 0 to 1)",
                param="temperature",
            )
        out["temperature"] = temperature
    top_p = body.get("top_p")
    if top_p is not None:
        if not isinstance(top_p, int | float) or isinstance(top_p, bool) or not 0 <= top_p <= 1:
            raise invalid("top_p", "a number between 0 and 1")
        out["top_p"] = top_p
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif stop is not None:
        sequences = [as_str(s, "stop") for s in as_list(stop, "stop")]
        if sequences:
            out["stop_sequences"] = sequences


def _messages(messages: list[Any]) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    """The top-level system prompt and the alternating user/assistant turns."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, raw in enumerate(messages):
        message = as_object(raw, f"messages[{i}]")
        role = message.get("role")
        where = f"messages[{i}].content"
        if role in ("system", "developer"):
            system += [b for b in _text_blocks(message.get("content"), where) if b["text"]]
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), where)
        elif role == "assistant":
            blocks = _assistant_blocks(message, i)
        elif role == "tool":
            blocks = [_tool_result(message, i)]
            role = "user"
        else:
            raise invalid(f"messages[{i}].role", "one of system, developer, user, assistant, tool")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # one plain text block reads better (and is smaller) as a string
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            turn["content"] = content[0]["text"]
    if len(system) == 1:
        return system[0]["text"], turns
    return system, turns


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for j, part in enumerate(as_list(content, where)):
        part = as_object(part, f"{where}[{j}]")
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": as_str(part.get("text"), f"{where}[{j}].text")})
        elif part.get("type") == "refusal":
            blocks.append({"type": "text", "text": as_str(part.get("refusal"), f"{where}[{j}].refusal")})
        else:
            raise invalid(f"{where}[{j}].type", "text")
    return blocks


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(as_list(content, where)):
        part = as_object(part, f"{where}[{j}]")
        kind = part.get("type")
        if kind == "text":
            text = as_str(part.get("text"), f"{where}[{j}].text")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{where}[{j}].image_url"))
        else:
            raise ConversionError(
                f"content part type {kind!r} cannot be expressed to an Anthropic upstream",
                param=f"{where}[{j}].type",
            )
    return blocks


def _image(image: Any, where: str) -> dict[str, Any]:
    url = image if isinstance(image, str) else as_str(as_object(image, where).get("url"), f"{where}.url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise invalid(f"{where}.url", "a base64 data URL (data:image/png;base64,...)")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if not url.startswith(("http://", "https://")):
        raise invalid(f"{where}.url", "an http(s) URL or a base64 data URL")
    return {"type": "image", "source": {"type": "url", "url": url}}


def _assistant_blocks(message: dict[str, Any], i: int) -> list[dict[str, Any]]:
    blocks = [b for b in _text_blocks(message.get("content"), f"messages[{i}].content") if b["text"]]
    for j, call in enumerate(message.get("tool_calls") or ()):
        where = f"messages[{i}].tool_calls[{j}]"
        call = as_object(call, where)
        function = as_object(call.get("function"), f"{where}.function")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(as_str(arguments, f"{where}.function.arguments"))
        except ValueError:
            raise invalid(f"{where}.function.arguments", "a JSON object") from None
        if not isinstance(parsed, dict):
            raise invalid(f"{where}.function.arguments", "a JSON object")
        blocks.append(
            {
                "type": "tool_use",
                "id": as_str(call.get("id"), f"{where}.id"),
                "name": as_str(function.get("name"), f"{where}.function.name"),
                "input": parsed,
            }
        )
    return blocks


def _tool_result(message: dict[str, Any], i: int) -> dict[str, Any]:
    call_id = as_str(message.get("tool_call_id"), f"messages[{i}].tool_call_id")
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        result["content"] = content
    else:
        result["content"] = [b for b in _text_blocks(content, f"messages[{i}].content") if b["text"]]
    return result


def _tool(tool: Any, i: int) -> dict[str, Any]:
    tool = as_object(tool, f"tools[{i}]")
    if tool.get("type") != "function":
        raise ConversionError(
            f"tool type {tool.get('type')!r} cannot be expressed to an Anthropic upstream",
            param=f"tools[{i}].type",
        )
    function = as_object(tool.get("function"), f"tools[{i}].function")
    out: dict[str, Any] = {"name": as_str(function.get("name"), f"tools[{i}].function.name")}
    if function.get("description") is not None:
        out["description"] = as_str(function["description"], f"tools[{i}].function.description")
    parameters = function.get("parameters")
    out["input_schema"] = (
        as_object(parameters, f"tools[{i}].function.parameters")
        if parameters is not None
        else {"type": "object", "properties": {}}
    )
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        out: dict[str, Any] | None = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    else:
        function = as_object(as_object(choice, "tool_choice").get("function"), "tool_choice.function")
        out = {"type": "tool", "name": as_str(function.get("name"), "tool_choice.function.name")}
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


# ------------------------------------------------------------------ response


def convert_response(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI `chat.completion` for an Anthropic `message`."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in body.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = dumps(block.get("input") or {})
            function = {"name": block.get("name", ""), "arguments": arguments}
            calls.append({"id": block.get("id", ""), "type": "function", "function": function})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    message["refusal"] = None
    finish = FINISH_REASONS.get(body.get("stop_reason") or "end_turn", "stop")
    return {
        "id": body.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": convert_usage(body.get("usage") or {}),
    }


def convert_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic counts cache reads and writes apart from `input_tokens`; OpenAI's
    `prompt_tokens` includes them (and says how many were cached)."""
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached + (usage.get("cache_creation_input_tokens") or 0)
    completion = usage.get("output_tokens") or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def convert_models(body: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's `GET /v1/models` page as OpenAI's model list."""
    return {
        "object": "list",
        "data": [convert_model(m) for m in body.get("data") or () if isinstance(m, dict)],
    }


def convert_model(model: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": model.get("id", ""),
        "object": "model",
        "created": _epoch(model.get("created_at")),
        "owned_by": "anthropic",
    }


def _epoch(stamp: Any) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


# ------------------------------------------------------------------ streaming


class StreamConverter:
    """Anthropic's event sequence in, OpenAI `chat.completion.chunk` events out, one at a time.

    `feed(event)` returns the bytes to write for that upstream event at once (often one chunk,
    sometimes none: `ping`, `content_block_stop`). `end()` is called when the upstream body
    ended: after `message_stop` it returns nothing, before it the stream was cut and it returns
    an error event. `fail(message)` is that error event for a stream that broke.
    """

    __slots__ = ("_calls", "_done", "_head", "_include_usage", "_model", "_tool_index", "_usage")

    def __init__(self, request: dict[str, Any]) -> None:
        options = request.get("stream_options")
        self._include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
        self._model = str(request.get("model", ""))
        # The chunk's constant prefix, `{"id":...,"model":...,`, completed by message_start.
        self._head = _head("chatcmpl-a3s", self._model)
        self._calls: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._tool_index = 0
        self._usage: dict[str, Any] = {}
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: SseEvent) -> bytes:
        if self._done:
            return b""
        try:
            data = loads(event.data)
            kind = data.get("type") if isinstance(data, dict) else None
        except ValueError:
            return self.fail("the upstream sent an event that is not JSON")
        if kind == "content_block_delta":
            return self._delta(data)
        handler = _HANDLERS.get(kind or event.event)
        return handler(self, data) if handler is not None else b""

    def _chunk(self, delta: str, finish: str = "null") -> bytes:
        return f'data: {self._head}"choices":[{{"index":0,"delta":{delta},"finish_reason":{finish},"logprobs":null}}]}}\n\n'.encode()

    def _start(self, data: dict[str, Any]) -> bytes:
        message = data.get("message") or {}
        self._head = _head(message.get("id", ""), message.get("model") or self._model)
        self._usage = dict(message.get("usage") or {})
        return self._chunk('{"role":"assistant","content":""}')

    def _block_start(self, data: dict[str, Any]) -> bytes:
        block = data.get("content_block") or {}
        if block.get("type") == "tool_use":
            index = self._tool_index
            self._tool_index += 1
            self._calls[data.get("index", 0)] = index
            function = f'{{"name":{dumps(block.get("name", ""))},"arguments":""}}'
            call = f'{{"index":{index},"id":{dumps(block.get("id", ""))},"type":"function","function":{function}}}'
            return self._chunk(f'{{"tool_calls":[{call}]}}')
        if block.get("type") == "text" and block.get("text"):
            return self._chunk(f'{{"content":{dumps(block["text"])}}}')
        return b""

    def _delta(self, data: dict[str, Any]) -> bytes:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._chunk(f'{{"content":{dumps(delta.get("text", ""))}}}')
        if kind == "input_json_delta":
            index = self._calls.get(data.get("index", 0), 0)
            arguments = dumps(delta.get("partial_json", ""))
            return self._chunk(
                f'{{"tool_calls":[{{"index":{index},"function":{{"arguments":{arguments}}}}}]}}'
            )
        return b""  # thinking and signature deltas have no Chat Completions form

    def _message_delta(self, data: dict[str, Any]) -> bytes:
        self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        reason = (data.get("delta") or {}).get("stop_reason")
        if reason is None:
            return b""
        return self._chunk("{}", f'"{FINISH_REASONS.get(reason, "stop")}"')

    def _stop(self, data: dict[str, Any]) -> bytes:
        self._done = True
        out = b""
        if self._include_usage:
            usage = dumps(convert_usage(self._usage))
            out = f'data: {self._head}"choices":[],"usage":{usage}}}\n\n'.encode()
        return out + b"data: [DONE]\n\n"

    def _error(self, data: dict[str, Any]) -> bytes:
        _, body = convert_error(500, data)
        self._done = True
        return encode_event(dumps(body))

    def end(self) -> bytes:
        """The upstream body ended: nothing more when the message was complete, else an error."""
        if self._done:
            return b""
        return self.fail("the upstream stream ended before the message was complete")

    def fail(self, message: str) -> bytes:
        """The error event that ends a broken stream (the SDK raises it as an APIError)."""
        self._done = True
        return encode_event(dumps(openai_error(message, "server_error", code="upstream_stream_error")))

    @property
    def usage(self) -> dict[str, Any]:
        """The Anthropic usage seen so far (message_start, then message_delta's totals)."""
        return self._usage


def _head(ident: str, model: str) -> str:
    created = int(time.time())
    return (
        f'{{"id":{dumps(ident)},"object":"chat.completion.chunk","created":{created},"model":{dumps(model)},'
    )


_HANDLERS = {
    "message_start": StreamConverter._start,
    "content_block_start": StreamConverter._block_start,
    "message_delta": StreamConverter._message_delta,
    "message_stop": StreamConverter._stop,
    "error": StreamConverter._error,
}
