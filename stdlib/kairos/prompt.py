"""The question put to the router model, and the strict reading of its answer.

The prompt is an OpenAI chat completion: a system message that lists the candidates, one
`- name: description` line each, and asks for exactly one name; the user message is the
request's text (cut to a bound). `max_tokens` is small and `temperature` 0: the answer is a
name, nothing to sample. The answer is accepted only when, once trimmed of whitespace, of one
pair of quotes or backticks and of a final period, it is one candidate's name (in any case);
anything else (a sentence, two names, an empty answer) is unparsable, and the caller falls back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Candidate", "RouterPrompt"]

_INSTRUCTIONS = (
    "You are a request router. Choose the one service below best suited to handle the user's "
    "request.\n\nServices:\n{services}\n\nAnswer with the service name only, exactly as written "
    "above, and nothing else."
)
_QUOTES = "\"'`"


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    service: str
    description: str


class RouterPrompt:
    """The prompt for one set of candidates (built once per configuration)."""

    __slots__ = ("_by_folded", "max_tokens", "model", "system")

    def __init__(self, candidates: list[Candidate], model: str, max_tokens: int = 16) -> None:
        lines = "\n".join(f"- {c.name}: {' '.join(c.description.split())}" for c in candidates)
        self.system = _INSTRUCTIONS.format(services=lines)
        self.model = model
        self.max_tokens = max_tokens
        self._by_folded = {c.name.casefold(): c for c in candidates}

    def body(self, text: str) -> bytes:
        """The chat completion request asking about `text`."""
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": text}]
        request = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "stream": False,
        }
        return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()

    def key(self, text: str) -> bytes:
        """The cache key of the prompt for `text`: a hash of everything that is asked."""
        digest = hashlib.sha256(self.model.encode())
        digest.update(b"\0" + self.system.encode() + b"\0" + text.encode("utf-8", "surrogatepass"))
        return digest.digest()

    def read(self, answer: bytes) -> Candidate | None:
        """The candidate a chat completion answer names, or None when it names none (strictly)."""
        try:
            content: Any = json.loads(answer)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        if not isinstance(content, str):
            return None
        name = content.strip()
        if len(name) >= 2 and name[0] in _QUOTES and name[-1] == name[0]:
            name = name[1:-1].strip()
        name = name.removesuffix(".")
        return self._by_folded.get(name.casefold())
