"""Sticky sessions: pin a client to one backend with a cookie.

```hcl
load_balancer {
  strategy = "least-connections"
  servers  = [{ url = "http://gpu-1:8000" }, { url = "http://gpu-2:8000" }]
  sticky {
    cookie    = "a3s_sticky"   # cookie_name
    ttl       = "1h"           # Max-Age; omitted: a session cookie
    secure    = true
    http_only = true
    same_site = "lax"          # lax | strict | none
    max_entries = 100000       # server-side re-pin table (LRU)
  }
}
```

The first request of a client is balanced by the service's strategy; the response carries a
`Set-Cookie` naming the chosen backend, and later requests presenting that cookie go to the same
backend while it is available. The cookie value is a short hash of the service name and the
backend key (its URL), so it never shows backend addresses, and every gateway worker and every
restart maps it to the same backend with no shared state.

When the pinned backend is unhealthy, draining or gone, the strategy picks a healthy one, the
response re-pins the client with a new cookie, and the server remembers the re-pin in a bounded
LRU table (`max_entries`): a client that ignores the new cookie and keeps sending the old one
(many API clients do) stays on its new backend instead of being rebalanced on every request.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...compiler.schema import StickyConfig
from ...runtime.api import Backend, Request

__all__ = ["StickySessions", "cookie_value", "read_cookie", "set_cookie_header"]

# 64 bits of a hash: collisions between the backends of one service are out of the question.
_HASH_CHARS = 16


def cookie_value(service: str, backend_key: str) -> str:
    """The opaque cookie value pinning to `backend_key` within `service`."""
    return hashlib.sha256(f"{service}\0{backend_key}".encode()).hexdigest()[:_HASH_CHARS]


def read_cookie(request: Request, name: str) -> str | None:
    """The value of cookie `name` in the request's Cookie header(s) (RFC 6265 §5.4), or None."""
    for header in request.headers.get_all("cookie"):
        for pair in header.split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"')
    return None


def set_cookie_header(config: StickyConfig, value: str) -> str:
    """The Set-Cookie field value (RFC 6265 §4.1) for a pin."""
    parts = [f"{config.cookie_name}={value}", "Path=/"]
    if config.ttl is not None:
        parts.append(f"Max-Age={int(config.ttl)}")
    if config.secure or config.same_site == "none":  # browsers drop SameSite=None without Secure
        parts.append("Secure")
    if config.http_only:
        parts.append("HttpOnly")
    parts.append(f"SameSite={config.same_site.capitalize()}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class StickyChoice:
    backend: Backend
    # The Set-Cookie value to add to the response, or None when the client is already pinned.
    set_cookie: str | None


class StickySessions:
    """Cookie pinning for one service. Long-lived: keep it in the service's state."""

    def __init__(self, config: StickyConfig, service: str) -> None:
        self.config = config
        self.service = service
        self._repins: OrderedDict[str, str] = OrderedDict()
        self._values: dict[str, str] = {}

    def value_for(self, backend: Backend) -> str:
        value = self._values.get(backend.key)
        if value is None:
            if len(self._values) > self.config.max_entries:
                self._values.clear()
            value = self._values[backend.key] = cookie_value(self.service, backend.key)
        return value

    def pinned(self, value: str, backends: Sequence[Backend]) -> Backend | None:
        """The available backend the cookie `value` pins to, or None."""
        repinned = self._repins.get(value)
        if repinned is not None:
            self._repins.move_to_end(value)
        for backend in backends:
            if backend.key == repinned or (repinned is None and self.value_for(backend) == value):
                return backend if backend.available else None
        return None

    def choose(
        self,
        request: Request,
        backends: Sequence[Backend],
        pick: Callable[[Sequence[Backend], Request], Backend | None],
    ) -> StickyChoice | None:
        """The pinned backend if available, else `pick`'s choice, pinned. None: nothing available."""
        value = read_cookie(request, self.config.cookie_name)
        if value:
            backend = self.pinned(value, backends)
            if backend is not None:
                return StickyChoice(backend, None)
        backend = pick(backends, request)
        if backend is None:
            return None
        if value:
            self._remember(value, backend.key)
        return StickyChoice(backend, set_cookie_header(self.config, self.value_for(backend)))

    def _remember(self, old_value: str, backend_key: str) -> None:
        self._repins[old_value] = backend_key
        self._repins.move_to_end(old_value)
        while len(self._repins) > self.config.max_entries:
            self._repins.popitem(last=False)

    def statistics(self) -> dict[str, int]:
        return {"repins": len(self._repins)}
