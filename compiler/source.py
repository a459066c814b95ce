"""Source files and spans: where a piece of configuration came from.

Every diagnostic the compiler emits points at a `Span` (file, 1-based line and column).
Spans survive the whole pipeline: the HCL front end attaches them to every block and
attribute, lowering copies them onto IR nodes, and the runtime logs them when a reload fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A position in a source file: 1-based line and column, with an optional end."""

    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def shifted(self, columns: int) -> Span:
        """The same span moved right by `columns` on its first line (for spans inside strings)."""
        return Span(self.file, self.line, self.col + columns, self.end_line, self.end_col)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The text of one configuration file, kept so diagnostics can quote the offending line."""

    path: str
    text: str
    _lines: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_text(cls, path: str, text: str) -> SourceFile:
        return cls(path, text, tuple(text.splitlines()))

    def line(self, number: int) -> str | None:
        """Line `number` (1-based) without its newline, or None when out of range."""
        if 1 <= number <= len(self._lines):
            return self._lines[number - 1]
        return None

    def position(self, offset: int) -> tuple[int, int]:
        """Convert a 0-based character offset into a 1-based (line, column)."""
        line = self.text.count("\n", 0, offset) + 1
        start = self.text.rfind("\n", 0, offset) + 1
        return line, offset - start + 1
