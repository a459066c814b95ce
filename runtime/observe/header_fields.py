"""Header fields of the access log, opt-in as Traefik's `accessLog.fields.headers`.

Each header the configuration keeps becomes a field `<prefix><Name>` (the name in Go's
canonical form, `User-Agent`, as Traefik writes it), its values joined with `,`; a redacted one
is written as `REDACTED`; a dropped one is not written. `default_mode` covers the names that
`names` does not list (matched in any case). A header whose name says it carries a credential
(`Authorization`, `Cookie`, `Set-Cookie`, `Proxy-Authorization`, `X-Api-Key`, `*-Token` ...,
the rule `compiler/model.py` applies to the config API) is redacted whatever the mode says.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...compiler.model import names_credential
from ...compiler.schema import AccessLogHeaders

__all__ = ["REDACTED", "HeaderFields"]

REDACTED = "REDACTED"
_ALWAYS_REDACTED = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
_CACHE_LIMIT = 1024  # header names remembered; clients choose names, so the cache is bounded


class HeaderFields:
    """The compiled modes: `add(raw, prefix, entry)` writes one message's header fields."""

    __slots__ = ("_default", "_modes", "_seen")

    def __init__(self, config: AccessLogHeaders) -> None:
        self._modes = {name.lower(): mode for name, mode in config.names.items()}
        self._default = config.default_mode
        # Per wire name: (the field's name without prefix, its mode), decided once.
        self._seen: dict[bytes, tuple[str, str]] = {}

    @staticmethod
    def wanted(config: AccessLogHeaders) -> bool:
        """Whether any header can be written: if not, the access log does no header work at all."""
        return config.default_mode != "drop" or any(mode != "drop" for mode in config.names.values())

    def add(self, raw: Iterable[tuple[bytes, bytes]], prefix: str, entry: dict[str, Any]) -> None:
        for name, value in raw:
            label, mode = self._seen.get(name) or self._decide(name)
            if mode == "drop":
                continue
            key = prefix + label
            if mode == "redact":
                entry[key] = REDACTED
            else:
                text = value.decode("latin-1")
                previous = entry.get(key)
                entry[key] = text if previous is None else f"{previous},{text}"

    def _decide(self, name: bytes) -> tuple[str, str]:
        lowered = name.decode("latin-1").lower()
        mode = self._modes.get(lowered, self._default)
        if mode == "keep" and (lowered in _ALWAYS_REDACTED or names_credential(lowered)):
            mode = "redact"
        decided = ("-".join(part.capitalize() for part in lowered.split("-")), mode)
        if len(self._seen) < _CACHE_LIMIT:
            self._seen[name] = decided
        return decided
