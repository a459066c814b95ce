"""The `privacy_router` service kind's configuration (its implementation: services/privacy_router.py)."""

from __future__ import annotations

import re
from typing import Literal

import re2
from pydantic import Field

from ....compiler.rules._re2 import Re2Error, translate_re2
from ...base import ConfigModel, Size
from ...privacy.classify import LEVELS
from ...privacy.detectors import DETECTORS
from ...privacy.scanner import Rule
from ...registry import declare
from .model_router import Problem

__all__ = ["DEFAULT_DETECTORS", "PrivacyRouterConfig", "PrivacyRule"]

Level = Literal["public", "internal", "confidential", "restricted"]
DetectorName = Literal["email", "phone", "card", "iban", "national_id", "api_key", "private_key"]

DEFAULT_DETECTORS: dict[str, str] = {
    "email": "confidential",
    "phone": "confidential",
    "card": "restricted",
    "iban": "restricted",
    "national_id": "restricted",
    "api_key": "restricted",
    "private_key": "restricted",
}


class PrivacyRule(ConfigModel):
    """A `rule "<name>" { ... }` block: keywords and regexps that give a request a level."""

    level: Level = Field(description="The level a match gives the request.")
    keywords: list[str] = Field(
        default=[],
        description="Words or phrases, matched whole (at word boundaries where they begin or end "
        "with a letter or digit).",
    )
    patterns: list[str] = Field(default=[], description="Regular expressions, RE2 (Go) syntax.")
    case_sensitive: bool = Field(
        default=False, description="Match the keywords' case (patterns: write `(?i)`)."
    )

    def pattern(self) -> str:
        """The rule as one RE2 alternation."""
        words = [_keyword(word) for word in self.keywords]
        if words and not self.case_sensitive:
            words = ["(?i:" + "|".join(words) + ")"]
        return "|".join([*words, *(f"(?:{p})" for p in self.patterns)])


def _keyword(word: str) -> str:
    """A keyword as an RE2 pattern: literal, whole words where its ends are ASCII word characters
    (RE2's `\\b` is ASCII: a CJK keyword has no word boundary to hold to)."""
    escaped = re.escape(word)
    start = r"\b" if word[:1].isascii() and (word[:1].isalnum() or word[:1] == "_") else ""
    end = r"\b" if word[-1:].isascii() and (word[-1:].isalnum() or word[-1:] == "_") else ""
    return start + escaped + end


class PrivacyRouterConfig(ConfigModel):
    route: dict[Level, str] = Field(
        description='The service for each level: `{ public = "hosted", restricted = "local" }`. `public` '
        "is required; a level not named takes the service of the level below it."
    )
    detectors: dict[DetectorName, Level | Literal["off"]] = Field(
        default={},
        description="The built-in detectors' levels, over the defaults (email and phone confidential, the "
        'others restricted); "off" turns one off.',
    )
    rules: dict[str, PrivacyRule] = Field(
        default={},
        alias="rule",
        description='`rule "<name>" { level = ..., keywords = [...] }`, tried in order.',
    )
    redact: list[str] = Field(
        default=[],
        description='Rules and detectors whose matches are replaced before forwarding ("*": all of them).',
    )
    mask: str = Field(
        default="[REDACTED:{rule}]", description="What a redacted match becomes; `{rule}` is its rule's name."
    )
    max_body: Size = Field(default=8 * 1024 * 1024, description="Largest request body read (413 past it).")

    def service_references(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [(("route", level), service) for level, service in self.route.items()]

    def level_services(self) -> tuple[str, ...]:
        """The service of each level, in LEVELS' order (a level not named: the one below's)."""
        out: list[str] = []
        for level in LEVELS:
            out.append(self.route.get(level, out[-1] if out else ""))  # type: ignore[call-overload]
        return tuple(out)

    def scan_rules(self) -> list[Rule]:
        """The rules in the order they are tried: the configured ones, then the detectors on."""
        out = [Rule(name, LEVELS.index(rule.level), rule.pattern()) for name, rule in self.rules.items()]
        levels: dict[str, str] = dict(DEFAULT_DETECTORS)
        for name, level in self.detectors.items():
            levels[name] = level
        for detector in DETECTORS:
            chosen = levels[detector.name]
            if chosen != "off":
                out.append(Rule(detector.name, LEVELS.index(chosen), detector.pattern, detector.check))
        return out

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        if "public" not in self.route:
            out.append((("route",), "route needs a `public` service (the levels above it default to it)"))
        for name, rule in self.rules.items():
            if name in DEFAULT_DETECTORS or name == "*":
                out.append((("rule", name), f"rule name '{name}' is a detector's name; choose another"))
            if not rule.keywords and not rule.patterns:
                out.append((("rule", name), f"rule '{name}' has neither keywords nor patterns"))
            out += [
                (("rule", name, "keywords", i), "an empty keyword")
                for i, w in enumerate(rule.keywords)
                if not w
            ]
            for index, pattern in enumerate(rule.patterns):
                error = _pattern_error(pattern)
                if error is not None:
                    out.append((("rule", name, "patterns", index), error))
        known = {*self.rules, *DEFAULT_DETECTORS, "*"}
        for index, name in enumerate(self.redact):
            if name not in known:
                out.append((("redact", index), f"redact names '{name}', which is no rule or detector"))
        if not out:
            error = _alternation_error(self.scan_rules())
            if error is not None:
                out.append((("rule",) if self.rules else (), error))
        try:
            self.mask.format(rule="x")
        except (KeyError, IndexError, ValueError) as exc:
            out.append((("mask",), f"mask is not a template with only `{{rule}}` in it ({exc})"))
        return out


def _pattern_error(pattern: str) -> str | None:
    """Why an RE2 pattern cannot be a rule's (Go's reason, as the router rules give it)."""
    try:
        translate_re2(pattern)
    except Re2Error as exc:
        return f"bad regexp at offset {exc.offset}: {exc.message}"
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        return f"bad regexp: {exc}"
    if compiled.search("") is not None:
        return "this regexp matches the empty string"
    return None


def _alternation_error(rules: list[Rule]) -> str | None:
    """Why the rules cannot be compiled into the one alternation the scanner runs (RE2 bounds
    a program's memory: thousands of long keywords can exceed it)."""
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile("|".join(f"({rule.pattern})" for rule in rules), options)
    except re2.error as exc:
        return f"the rules are too large to compile together ({exc})"
    return None


declare("service", "privacy_router", config=PrivacyRouterConfig, impl="services.privacy_router")
