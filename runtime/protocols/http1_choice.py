"""Which HTTP/1.1 adapter this process speaks: `h11` (http1.py, the reference) or `fast`
(http1_fast.py, llhttp through httptools; the default when httptools is importable).

One choice per process, made before serving (`a3s-gateway run --http1 h11|fast`, passed on to
every worker): a connection takes its adapter class from `HTTP1` when it opens, so the client
side and the upstream side always speak through the same implementation. The two agree on
every input (property_tests/test_http1_differential.py); `h11` stays as the reference and as
the way back should they ever not.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Literal

from .http1 import ClientConnection, ServerConnection

if TYPE_CHECKING:
    from .http1_fast import FastClientConnection, FastServerConnection

__all__ = ["HTTP1", "Http1", "default_http1"]  # and the Http1Name type, HTTP1_ADAPTERS

Http1Name = Literal["h11", "fast"]
HTTP1_ADAPTERS: tuple[Http1Name, ...] = ("h11", "fast")


def default_http1() -> Http1Name:
    """`fast` when httptools is installed (it is a default dependency), else `h11`."""
    return "fast" if importlib.util.find_spec("httptools") is not None else "h11"


_Classes = tuple[
    "type[ServerConnection] | type[FastServerConnection]",
    "type[ClientConnection] | type[FastClientConnection]",
]


class Http1:
    """The adapter classes in use: `server` for client connections, `client` towards upstreams.
    They are imported on first use, so a process told `h11` never loads httptools."""

    __slots__ = ("_classes", "name")

    def __init__(self, name: Http1Name) -> None:
        self.name = name
        self._classes: _Classes | None = None

    def use(self, name: Http1Name) -> None:
        """Speak `name` on the connections opened from now on. ImportError when `fast` is
        asked for and httptools is not installed."""
        if name not in HTTP1_ADAPTERS:
            raise ValueError(f"unknown HTTP/1.1 adapter {name!r} (h11 or fast)")
        self.name = name
        self._classes = None
        if name == "fast":
            self._load()  # fail now, not at the first connection

    def _load(self) -> _Classes:
        if self.name == "fast":
            from .http1_fast import FastClientConnection, FastServerConnection

            self._classes = (FastServerConnection, FastClientConnection)
        else:
            self._classes = (ServerConnection, ClientConnection)
        return self._classes

    @property
    def server(self) -> type[ServerConnection] | type[FastServerConnection]:
        return (self._classes or self._load())[0]

    @property
    def client(self) -> type[ClientConnection] | type[FastClientConnection]:
        return (self._classes or self._load())[1]


HTTP1 = Http1(default_http1())
