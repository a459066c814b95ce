"""One pass of RE2 over a prompt's text finds every rule's matches: the rules' patterns are one
alternation, compiled once.

RE2 (google-re2) rather than Python's `re`: it runs the whole alternation as one automaton, in
time linear in the text whatever the patterns (a prompt is hostile input; a backtracking engine
can be made to take seconds by one crafted line), and about twenty times faster than `re` on the
alternation of the built-in detectors. It scans UTF-8 bytes: that avoids the library's mapping of
byte offsets back to characters on every match, so spans are byte offsets.

Each rule is one group of the alternation; the match's outermost group says which rule it was
(RE2 runs its slower submatch engine on the matched span only: a prompt with nothing sensitive
costs one automaton pass). A rule with a check of its own (Luhn, mod 97) that fails hands
the position to the rules after it, tried one by one: an 18-digit number that is not a valid
Chinese ID may still be a card number.

Only google-re2's public API (`re2.compile`, `finditer`, the match's `span` and `lastindex`).
Calling its private binding (`re2._re2`, which that API wraps) directly saves the wrapper's
Python work per match (a match object, its accessors), but a private binding may change in any
release. Measured in instructions, the wrapper costs 4 % of a classification of a 4 KiB prompt
with nothing sensitive and 10 % of one with four findings, about 10,000 instructions (1 µs) a
match (benchmarks/analysis.md, "Privacy classification"). `re2.Set` does not serve: it says
which patterns match, not where.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from .detectors import Check

__all__ = ["Finding", "Rule", "Scanner"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    level: int  # the sensitivity it gives a request: an index into the levels, 0 = public
    pattern: str  # RE2 syntax
    check: Check | None = None


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a call per field
class Finding:
    rule: Rule
    start: int  # byte offsets in the scanned text
    end: int


class Scanner:
    """The rules, compiled into one alternation. Build it once (at config build time)."""

    __slots__ = ("_alone", "_grouped", "_rule_of_group", "rules")

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        patterns = [rule.pattern.encode() for rule in self.rules]
        options = re2.Options()
        options.log_errors = False
        alternation = b"|".join(b"(" + p + b")" for p in patterns)
        self._grouped: Any = re2.compile(alternation, options) if patterns else None
        self._alone: list[Any] = [re2.compile(p, options) for p in patterns]
        # The rule of each group number in `_grouped`: a rule's own group, and the groups of its
        # pattern after it (-1).
        self._rule_of_group: list[int] = [-1]
        for index, alone in enumerate(self._alone):
            self._rule_of_group += [index] + [-1] * alone.groups

    def scan(self, data: bytes) -> list[Finding]:
        """Every match in `data`, in order, none overlapping another."""
        if self._grouped is None:
            return []
        out: list[Finding] = []
        position, size = 0, len(data)
        while position <= size:
            position = self._scan_from(data, position, out)
        return out

    def _scan_from(self, data: bytes, position: int, out: list[Finding]) -> int:
        """Append the findings from `position` on to `out`, as long as the next search starts
        where the alternation's match ended (the wrapper's iterator goes on from there); the
        position to search from next (past the end when the text is done)."""
        rules, rule_of_group = self.rules, self._rule_of_group
        start: int
        end: int
        for match in self._grouped.finditer(data, position):
            start, end = match.span()
            # The rule's own group ends last, and is the outermost (lowest) of those that do.
            index = rule_of_group[match.lastindex]
            rule = rules[index]
            if rule.check is None or rule.check(data[start:end]):
                finding: Finding | None = Finding(rule, start, end)
            else:
                finding = self._after(data, start, index)
            if finding is not None:
                out.append(finding)
                if finding.end != end:  # a later rule's match, of another length
                    return finding.end if finding.end > start else finding.end + 1
            if end == start:  # an empty match (no rule compiles to one): step over it
                return end + 1
        return len(data) + 1

    def _after(self, data: bytes, start: int, index: int) -> Finding | None:
        """The match at `start` of the first rule after `index` whose pattern matches there and
        whose check (if any) holds: rule `index` matched, but its check failed."""
        for later in range(index + 1, len(self.rules)):
            match = self._alone[later].match(data, start)
            if match is not None and match.end() > start:
                rule = self.rules[later]
                if rule.check is None or rule.check(data[start : match.end()]):
                    return Finding(rule, start, match.end())
        return None


def merged_spans(findings: Iterable[Finding], lo: int, hi: int) -> list[tuple[int, int, str]]:
    """The findings' spans clipped to [lo, hi), as (start, end, rule name), overlaps merged."""
    out: list[tuple[int, int, str]] = []
    for finding in findings:
        start, end = max(finding.start, lo), min(finding.end, hi)
        if start >= end:
            continue
        if out and start <= out[-1][1]:
            last = out[-1]
            out[-1] = (last[0], max(last[1], end), last[2])
        else:
            out.append((start, end, finding.rule.name))
    return out
