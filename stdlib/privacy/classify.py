"""A request body -> its sensitivity level, the rules that gave it, and the body to forward
(with the matches of the redacted rules replaced).

The text scanned is the body's prompt text (stdlib/llm/prompt_text.py: OpenAI, Anthropic and
the channel-normalised event), each string encoded to UTF-8 and the strings joined by a
separator no rule can match across (a NUL between newlines), so one scan covers the whole
prompt. A body that is not a JSON object is scanned whole, as bytes: the classifier fails
closed, never letting an unparsed body through as public.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..llm.prompt_text import Slot, json_object, text_slots
from .scanner import Finding, Scanner, merged_spans

__all__ = ["LEVELS", "Classifier", "Decision"]

LEVELS = ("public", "internal", "confidential", "restricted")

_SEPARATOR = b"\n\x00\n"


@dataclass(frozen=True, slots=True)
class Decision:
    level: int  # an index into LEVELS
    rules: tuple[str, ...]  # the rules that matched, the most severe first; never the text
    redacted: int  # how many spans were replaced

    @property
    def level_name(self) -> str:
        return LEVELS[self.level]


PUBLIC = Decision(0, (), 0)


class Classifier:
    __slots__ = ("mask", "redact", "scanner")

    def __init__(self, scanner: Scanner, redact: frozenset[str], mask: str = "[REDACTED:{rule}]") -> None:
        self.scanner = scanner
        self.redact = redact  # the rule names whose matches are replaced ("*": every rule's)
        self.mask = mask

    def classify(self, data: bytes) -> tuple[Decision, bytes]:
        """The decision for a request body, and the body to forward (`data` itself when nothing
        was redacted)."""
        if not data:
            return PUBLIC, data
        body = json_object(data)
        slots: list[Slot] | None = None
        if body is None:
            pieces = [data]
        else:
            slots = text_slots(body)
            if not slots:
                return PUBLIC, data
            pieces = [container[key].encode("utf-8", "surrogatepass") for container, key in slots]
        findings = self.scanner.scan(pieces[0] if len(pieces) == 1 else _SEPARATOR.join(pieces))
        if not findings:
            return PUBLIC, data
        severity = {finding.rule.name: finding.rule.level for finding in findings}
        level = max(severity.values())
        names = tuple(sorted(severity, key=lambda name: (-severity[name], name)))
        redact = self.redact
        masked = [f for f in findings if "*" in redact or f.rule.name in redact]
        if not masked:
            return Decision(level, names, 0), data
        texts = self._masked(pieces, masked)
        decision = Decision(level, names, len(masked))
        if body is None or slots is None:  # the raw body, scanned whole
            return decision, texts[0]
        for (container, key), text in zip(slots, texts, strict=True):
            container[key] = text.decode("utf-8", "surrogatepass")
        return decision, _dump(body)

    def _masked(self, pieces: Sequence[bytes], findings: list[Finding]) -> list[bytes]:
        """Each piece with the findings' spans in it replaced by the mask (offsets are in the
        pieces joined by the separator)."""
        out: list[bytes] = []
        offset = 0
        for piece in pieces:
            spans = merged_spans(findings, offset, offset + len(piece))
            if spans:
                parts: list[bytes] = []
                at = 0
                for start, end, rule in spans:
                    parts += [piece[at : start - offset], self.mask.format(rule=rule).encode()]
                    at = end - offset
                parts.append(piece[at:])
                out.append(b"".join(parts))
            else:
                out.append(piece)
            offset += len(piece) + len(_SEPARATOR)
        return out


def _dump(body: dict[str, Any]) -> bytes:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate the client escaped (`"\ud800"`): keep it escaped
        return json.dumps(body, separators=(",", ":")).encode()
