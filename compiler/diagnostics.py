"""Collected diagnostics: every problem in a configuration, each at file:line:col.

The compiler never stops at the first error. Each pass appends to one `Diagnostics`
collection and keeps going with whatever it could still understand; the CLI prints them all
(`file:line:col: error: message`, a caret under the column, an optional hint) or emits JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from .source import SourceFile, Span

Severity = Literal["error", "warning"]

_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "hint": "\x1b[36m", "bold": "\x1b[1m"}
_RESET = "\x1b[0m"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: its severity, a message, where it is, and optionally how to fix it."""

    severity: Severity
    message: str
    span: Span | None = None
    hint: str | None = None
    code: str = "config"

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.message)
        return (self.span.file, self.span.line, self.span.col, self.message)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Diagnostic:
        """The inverse of `to_json` (the admin client reads a rejected reload's diagnostics)."""
        file, line, col, hint = data.get("file"), data.get("line"), data.get("col"), data.get("hint")
        span = (
            Span(file, line, col)
            if isinstance(file, str) and isinstance(line, int) and isinstance(col, int)
            else None
        )
        severity: Severity = "warning" if data.get("severity") == "warning" else "error"
        return cls(
            severity,
            str(data.get("message", "")),
            span,
            hint if isinstance(hint, str) else None,
            str(data.get("code", "config")),
        )

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.span is not None:
            out.update(file=self.span.file, line=self.span.line, col=self.span.col)
        if self.hint:
            out["hint"] = self.hint
        return out


class Diagnostics:
    """An ordered, de-duplicated collection of diagnostics, appended to by every pass."""

    def __init__(self) -> None:
        self._items: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()

    def add(self, diagnostic: Diagnostic) -> None:
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
            self._items.append(diagnostic)

    def error(
        self, message: str, span: Span | None = None, *, hint: str | None = None, code: str = "config"
    ) -> None:
        self.add(Diagnostic("error", message, span, hint, code))

    def warning(
        self, message: str, span: Span | None = None, *, hint: str | None = None, code: str = "config"
    ) -> None:
        self.add(Diagnostic("warning", message, span, hint, code))

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        for diagnostic in diagnostics:
            self.add(diagnostic)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self._items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self._items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self._items if d.severity == "warning"]

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(sorted(self._items, key=Diagnostic.sort_key))

    def __len__(self) -> int:
        return len(self._items)


class CompileError(Exception):
    """Raised when a configuration has errors; carries every diagnostic, not just the first."""

    def __init__(self, diagnostics: Diagnostics, sources: Mapping[str, SourceFile] | None = None) -> None:
        self.diagnostics = diagnostics
        self.sources: Mapping[str, SourceFile] = sources or {}
        first = diagnostics.errors[0] if diagnostics.errors else None
        summary = f"{len(diagnostics.errors)} error(s)"
        if first is not None:
            where = f"{first.span}: " if first.span else ""
            summary += f"; first: {where}{first.message}"
        super().__init__(summary)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt key or name, or None when nothing is close."""
    import difflib  # only a diagnostic needs it: a configuration that compiles never loads it

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def render_text(
    diagnostics: Iterable[Diagnostic], sources: Mapping[str, SourceFile] | None = None, *, color: bool = False
) -> str:
    """Render as `file:line:col: severity: message`, the source line, a caret, and the hint."""
    sources = sources or {}

    def paint(key: str, text: str) -> str:
        return f"{_COLORS[key]}{text}{_RESET}" if color else text

    out: list[str] = []
    for d in diagnostics:
        where = f"{d.span}: " if d.span else ""
        out.append(f"{paint('bold', where)}{paint(d.severity, d.severity + ':')} {d.message}")
        source = sources.get(d.span.file) if d.span else None
        line = source.line(d.span.line) if source and d.span else None
        if d.span is not None and line is not None:
            out.append(f"    {line}")
            out.append("    " + _caret_padding(line, d.span.col) + paint(d.severity, "^"))
        if d.hint:
            out.append(f"    {paint('hint', 'hint:')} {d.hint}")
    return "\n".join(out)


def _caret_padding(line: str, col: int) -> str:
    # Keep tabs so the caret lines up under the same column in any terminal.
    prefix = line[: max(col - 1, 0)]
    return "".join("\t" if ch == "\t" else " " for ch in prefix)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    items = [d.to_json() for d in diagnostics]
    errors = sum(1 for d in items if d["severity"] == "error")
    return json.dumps({"errors": errors, "warnings": len(items) - errors, "diagnostics": items}, indent=2)
