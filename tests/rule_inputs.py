"""What the rule matchers read, as plain data: an HTTP request and a TCP connection.

The compiled matchers take any object with these attributes (HttpMatchInput, TcpMatchInput);
the rule tests build them from a URL or a table row.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fields:
    pairs: tuple[tuple[str, str], ...] = ()

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k.lower() == name.lower()]


@dataclass(frozen=True)
class Req:
    method: str = "GET"
    host: str = "example.com"
    path: str = "/"
    query: str = ""
    headers: Fields = field(default_factory=Fields)
    client_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class Conn:
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    client_ip: str = "127.0.0.1"
