"""Pre-lexing HCL text for python-hcl2: the `;` separator and environment references.

python-hcl2 rejects `;` between attributes and reads `"${VAR:-default}"` as a broken HCL
expression. Rather than fork its grammar, we rewrite the text it sees, one character for one
character, so every offset in its parse tree is also an offset in the original file and columns
stay exact without any position map:

- a `;` outside strings, comments, heredocs and backtick spans becomes `\\n`, which python-hcl2
  accepts wherever a newline may end an item (it also accepts no separator at all inside a
  one-line block, so the line count change never matters to it);
- inside a quoted string, each `${NAME}` / `${NAME:-default}` and each escape `$${` / `%%{` is
  masked with `_`, leaving a plain literal. The front end reads the string's value from the
  *original* text at the same offsets, so the mask never reaches a value.

The scanner mirrors python-hcl2's lexer where the two must agree: a backslash escapes the next
character in a string, heredocs use the grammar's own regex, and comments are `#`, `//` and
`/* */`. It is stricter in two places and reports instead of guessing: a quoted string must end
on its line, and a `/*` comment or a heredoc must be closed.

It also notes where each top-level item (an attribute or a block of the file's body) starts: the
first character after a newline or `;` outside any brace, bracket or parenthesis. The front end
uses these to resynchronise after a syntax error, so one run reports a syntax error in each
broken item instead of stopping at the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .interpolate import match_reference

# Copied from python-hcl2's hcl2.lark (HEREDOC_TEMPLATE / HEREDOC_TEMPLATE_TRIM), so we agree
# with its lexer on where a heredoc ends.
HEREDOC = re.compile(r"<<-?(?P<marker>[a-zA-Z][a-zA-Z0-9._-]*)\r?\n(?:(?:.|\n)*?\r?\n)??\s*(?P=marker)\r?\n")
HEREDOC_START = re.compile(r"<<-?([a-zA-Z][a-zA-Z0-9._-]*)\r?\n")
MASK = "_"


@dataclass(frozen=True, slots=True)
class Prepared:
    """Text for python-hcl2 (same length as the source) and problems found while scanning."""

    text: str
    problems: tuple[tuple[int, str], ...]
    separators: frozenset[int]
    item_starts: tuple[int, ...] = ()


@dataclass(slots=True)
class _Scanner:
    src: str
    out: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    separators: set[int] = field(default_factory=set)
    item_starts: list[int] = field(default_factory=list)

    def run(self) -> None:
        src, i = self.src, 0
        if src.startswith("\ufeff"):
            self.out[0] = " "  # a byte-order mark is not HCL; blank it, keeping offsets
            i = 1
        depth, item_next = 0, True  # nesting outside strings; whether an item may start here
        while i < len(src):
            if not item_next:  # skip in one step what the branches below would pass one by one
                i = _skip(_PLAIN, src, i)
                if i >= len(src):
                    break
            c = src[i]
            if item_next and not c.isspace() and c != "#" and not src.startswith(("//", "/*"), i):
                self.item_starts.append(i)
                item_next = False
            if c in "{[(":
                depth += 1
                i += 1
            elif c in "}])":
                depth = max(depth - 1, 0)  # a stray closer is the parser's to report
                i += 1
            elif c == "\n":
                item_next = item_next or depth == 0
                i += 1
            elif c == '"':
                i = self.string(i)
            elif c == "#" or src.startswith("//", i):
                i = self.line_end(i)
            elif src.startswith("/*", i):
                i = self.block_comment(i)
            elif src.startswith("<<", i):
                i = self.heredoc(i)
            elif c == "`":
                end = src.find("`", i + 1, self.line_end(i))
                i = self.line_end(i) if end < 0 else end + 1
            elif c == ";":
                self.out[i] = "\n"
                self.separators.add(i)
                item_next = item_next or depth == 0
                i += 1
            else:
                i += 1

    def line_end(self, i: int) -> int:
        end = self.src.find("\n", i)
        return len(self.src) if end < 0 else end

    def block_comment(self, i: int) -> int:
        end = self.src.find("*/", i + 2)
        if end < 0:
            self.problems.append((i, "unterminated comment: '/*' is never closed by '*/'"))
            return len(self.src)
        return end + 2

    def heredoc(self, i: int) -> int:
        m = HEREDOC.match(self.src + "\n", i)
        if m is not None:
            return min(m.end(), len(self.src))
        start = HEREDOC_START.match(self.src, i)
        if start is None:
            return i + 2  # not a heredoc; python-hcl2 will say what it makes of `<<`
        marker = start.group(1)
        self.problems.append(
            (i, f"heredoc '<<{marker}' is never closed: expected a line holding only {marker}")
        )
        return len(self.src)

    def string(self, i: int) -> int:
        """Scan the quoted string opening at `i`; return the offset after its closing quote."""
        src, j = self.src, i + 1
        while j < len(src):
            j = _skip(_STRING_PLAIN, src, j)
            if j >= len(src):
                break
            c = src[j]
            if c == '"':
                return j + 1
            if c == "\n" or (c == "\\" and src.startswith("\n", j + 1)):
                break
            if c == "\\":
                j += 2
            elif src.startswith("$${", j) or src.startswith("%%{", j):
                j = self.mask(j, j + 3)
            elif src.startswith("${", j):
                ref = match_reference(src, j)
                j = self.mask(j, ref.end) if ref is not None else self.template(j + 2)
            elif src.startswith("%{", j):
                j = self.template(j + 2)
            else:
                j += 1
        self.problems.append(
            (
                i,
                "unterminated string: a quoted string must end on the line it starts (use a heredoc for more lines)",
            )
        )
        return j

    def template(self, j: int) -> int:
        """Skip an HCL expression inside `${...}` or `%{...}` up to its closing brace."""
        src, depth = self.src, 1
        while j < len(src):
            c = src[j]
            if c == '"':
                j = self.string(j)
                continue
            if c in "{}":
                depth += 1 if c == "{" else -1
                if depth == 0:
                    return j + 1
            j += 1
        return j

    def mask(self, start: int, end: int) -> int:
        self.out[start:end] = MASK * (end - start)
        return end


# Characters `run` passes over one by one outside strings (`/` and `<` start comments and
# heredocs only when doubled, so they stop the skip and are looked at there), and inside strings.
_PLAIN = re.compile(r'[^{}\[\]()\n"#/<`;]*')
_STRING_PLAIN = re.compile(r'[^"\n\\$%]*')


def _skip(plain: re.Pattern[str], src: str, i: int) -> int:
    found = plain.match(src, i)  # `*`: always matches, maybe nothing
    return found.end() if found is not None else i


def prepare(source: str) -> Prepared:
    """Rewrite `source` for python-hcl2 without moving any character."""
    scanner = _Scanner(source, list(source))
    try:
        scanner.run()
    except RecursionError:
        scanner.problems.append((0, "strings nested too deeply inside '${...}'"))
    text = "".join(scanner.out)
    assert len(text) == len(source)
    return Prepared(text, tuple(scanner.problems), frozenset(scanner.separators), tuple(scanner.item_starts))
