"""Readable syntax errors from lark's exceptions over python-hcl2's grammar.

Lark reports the terminals it expected by their grammar names (`EQ`, `NL_OR_COMMENT`,
`HEREDOC_TEMPLATE_TRIM`, a dozen keywords...). A user wants "expected '=' or '{'". The sets
lark produces fall into a few shapes (after a name in a body, where a value starts, after a
value), so we recognise those shapes and spell the rest one terminal at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*|\$\{|%\{|<<-?|=>|==|!=|&&|\|\||\.\.\.|\S")
_KEYWORDS = {"IF", "IN", "FOR", "FOR_EACH", "ELSE", "ENDIF", "ENDFOR", "TRUE", "FALSE", "NULL"}
_NAMEISH = _KEYWORDS | {"NAME"}
_VALUE_START = {
    "INT_LITERAL", "FLOAT_LITERAL", "DBLQUOTE", "LSQB", "LBRACE", "LPAR", "MINUS", "NOT",
    "HEREDOC_TEMPLATE", "HEREDOC_TEMPLATE_TRIM", "TEMPLATE_STRING",
}  # fmt: skip
_TERMINALS = {
    "EQ": "'='", "COLON": "':'", "COMMA": "','", "DOT": "'.'", "QMARK": "'?'",
    "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'", "LPAR": "'('", "RPAR": "')'",
    "DBLQUOTE": "'\"'", "NL_OR_COMMENT": "a newline", "$END": "end of file", "NAME": "a name",
    "STRING_CHARS": "string text", "INTERP_START": "'${'", "DIRECTIVE_START": "'%{'",
    "ELLIPSIS": "'...'", "FOR_OBJECT_ARROW": "'=>'", "INT_LITERAL": "a number", "FLOAT_LITERAL": "a number",
}  # fmt: skip


def describe_syntax_error(
    exc: UnexpectedInput, text: str, separators: Set[int]
) -> tuple[int, str, str | None]:
    """(offset in `text`, message, hint) for a lark parse error over `text`."""
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        offset = token.start_pos if token.type != "$END" and token.start_pos is not None else len(text)
        expected: Iterable[str] = exc.expected
    elif isinstance(exc, UnexpectedCharacters):
        offset, expected = exc.pos_in_stream, exc.allowed or ()
    else:  # UnexpectedEOF and friends
        offset, expected = len(text), getattr(exc, "expected", None) or ()
    offset = max(0, min(offset, len(text)))
    while offset < len(text) and text[offset] in " \t":  # `=` and `:` tokens include leading blanks
        offset += 1
    found = _found(text, offset, separators)
    message = f"syntax error: unexpected {found}"
    wanted = describe_expected(expected)
    if wanted:
        message += f"; expected {wanted}"
    return offset, message, _hint(text, offset)


def _found(text: str, offset: int, separators: Set[int]) -> str:
    if offset >= len(text):
        return "end of file"
    if offset in separators:
        return "';'"
    if text[offset] in "\r\n":
        return "end of line"
    if text.startswith(("#", "//", "/*"), offset):
        return "a comment"
    word = _WORD.match(text, offset)
    shown = word.group() if word else text[offset]
    return repr(shown) if len(shown) <= 30 else repr(shown[:27] + "...")


def _hint(text: str, offset: int) -> str | None:
    if text.startswith("${", offset):
        return 'interpolation works inside quoted strings only: write "${NAME}"'
    if text.startswith(":", offset):
        return "HCL assigns with '=', not ':'"
    return None


def describe_expected(names: Iterable[str]) -> str:
    """A readable "a or b" for a set of lark terminal names."""
    pending = set(names)
    parts: list[str] = []
    if len(pending & _VALUE_START) >= 4:
        parts.append("a value")
        pending -= _VALUE_START | _NAMEISH
    elif {"EQ", "LBRACE"} <= pending:
        parts += ["'='", "'{'"]
        pending -= {"EQ", "LBRACE", "DBLQUOTE", "NL_OR_COMMENT"} | _NAMEISH
    elif {"LBRACE", "DBLQUOTE"} <= pending:
        parts += ["a block label", "'{'"]
        pending -= {"LBRACE", "DBLQUOTE", "NL_OR_COMMENT"} | _NAMEISH
    elif "NL_OR_COMMENT" in pending and pending & {"$END", "RBRACE"}:
        parts += ["a newline", "';'"]
        pending -= {"NL_OR_COMMENT"} | _NAMEISH
    elif "NAME" in pending:
        parts.append("a name")
        pending -= _NAMEISH
    parts += sorted({_TERMINALS.get(name, name.lower()) for name in pending} - set(parts))
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]
