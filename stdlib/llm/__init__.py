"""The LLM layer's library: OpenAI Chat Completions ⇄ Anthropic Messages, sans-IO.

Two modules, one per direction (named client format -> upstream format), each with the same
shape: `convert_request`, `convert_response`, `convert_error`, `convert_models` and a
`StreamConverter` fed one upstream SSE event (`sse.SseParser` turns bytes into events) and
returning the client's events as bytes. `ConversionError` is a request the other side cannot
express (answered 400 in the client's format). Nothing here does I/O: the `llm-convert`
middleware (stdlib/middlewares/llm_convert.py) and the model router use these on the request
path, and tests and benchmarks call them directly.
"""

from __future__ import annotations

from . import anthropic_to_openai, openai_to_anthropic
from .errors import ConversionError
from .sse import SseEvent, SseParser, encode_event

__all__ = [
    "ConversionError",
    "SseEvent",
    "SseParser",
    "anthropic_to_openai",
    "encode_event",
    "openai_to_anthropic",
]
