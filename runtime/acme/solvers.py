"""Answering challenges: HTTP-01 tokens, TLS-ALPN-01 certificates, DNS-01 TXT records.

`present` and `cleanup` are called from the ACME worker thread (client.py). HTTP-01 answers are
a dict the `acme-http@internal` service reads; TLS-ALPN-01 answers are challenge contexts in the
certificate table; DNS-01 goes through the resolver's DNS provider (stdlib/resolvers/), an async
kind called back on the event loop with `anyio.from_thread.run`, then waits for the record to
reach every authoritative server of the zone (propagation.py).

With `run --workers N` the ACME server may connect to any worker, not only the one ordering: the
answers are also written to a board, a folder beside the storage file (`<storage>.challenges/`,
mode 0700), where the other workers look a token up on a miss (HTTP-01) or find the challenge
certificates by polling it once a second (TLS-ALPN-01; the ordering worker waits for that
before answering).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any

import anyio.from_thread

from ..atomic_file import replacing
from .client import Challenge
from .keys import alpn_challenge_certificate
from .table import CertificateTable

__all__ = ["Board", "ChallengeSolver", "HttpTokens"]

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# How long the ordering worker gives the others to pick a TLS-ALPN-01 answer up from the board.
BOARD_POLL = 1.0


class HttpTokens:
    """token -> key authorization, for `GET /.well-known/acme-challenge/<token>` (RFC 8555 §8.3)."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self.boards: set[Board] = set()  # where other workers' tokens are found

    def put(self, token: str, key_authorization: str) -> None:
        self._tokens[token] = key_authorization

    def pop(self, token: str) -> None:
        self._tokens.pop(token, None)

    def find(self, token: str) -> str | None:
        """The answer to `token` (this process's, or from a board); runs in a thread on a miss."""
        found = self._tokens.get(token)
        if found is not None or not _TOKEN.fullmatch(token):
            return found
        for board in list(self.boards):
            found = board.read("http-01", token)
            if found is not None:
                return found
        return None

    def known(self, token: str) -> str | None:
        return self._tokens.get(token)


class Board:
    """Pending challenges shared with the other processes that use the same storage file."""

    def __init__(self, storage: str) -> None:
        self.folder = os.path.abspath(storage) + ".challenges"

    def _path(self, kind: str, name: str) -> str:
        return os.path.join(self.folder, f"{kind}-{name.replace('*', '_')}")

    def write(self, kind: str, name: str, value: str) -> None:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        with replacing(self._path(kind, name)) as fh:
            fh.write(value.encode())

    def remove(self, kind: str, name: str) -> None:
        try:
            os.unlink(self._path(kind, name))
        except OSError:
            pass

    def read(self, kind: str, name: str) -> str | None:
        try:
            with open(self._path(kind, name)) as fh:
                return fh.read()
        except OSError:
            return None

    def pending(self, kind: str) -> dict[str, str]:
        """name -> value of every pending challenge of `kind`."""
        try:
            entries = os.listdir(self.folder)
        except OSError:
            return {}
        found: dict[str, str] = {}
        for entry in entries:
            if entry.startswith(kind + "-") and not entry.endswith(".tmp"):
                value = self.read(kind, entry[len(kind) + 1 :])
                if value is not None:
                    found[entry[len(kind) + 1 :]] = value
        return found


class ChallengeSolver:
    """The solver of one resolver's orders (client.Solver), for its challenge kind."""

    def __init__(
        self,
        tokens: HttpTokens,
        table: CertificateTable,
        board: Board,
        dns: Callable[[str, Challenge], Any] | None = None,
        share: bool = True,
    ) -> None:
        self._tokens, self._table, self._board = tokens, table, board
        # The DNS-01 hook: an async callable (action, challenge), run on the event loop.
        self._dns = dns
        self._share = share

    def present(self, challenge: Challenge) -> None:
        if challenge.kind == "http-01":
            self._tokens.put(challenge.token, challenge.key_authorization)
            if self._share:
                self._board.write("http-01", challenge.token, challenge.key_authorization)
        elif challenge.kind == "tls-alpn-01":
            chain, key = alpn_challenge_certificate(challenge.domain, challenge.key_authorization)
            self._table.add_challenge(challenge.domain, chain, key)
            if self._share:
                self._board.write("tls-alpn-01", challenge.domain, challenge.key_authorization)
                time.sleep(BOARD_POLL * 1.5)  # the other workers poll the board once a second
        else:
            assert self._dns is not None, "a DNS-01 resolver has a DNS provider"
            anyio.from_thread.run(self._dns, "present", challenge)

    def cleanup(self, challenge: Challenge) -> None:
        if challenge.kind == "http-01":
            self._tokens.pop(challenge.token)
            self._board.remove("http-01", challenge.token)
        elif challenge.kind == "tls-alpn-01":
            self._table.remove_challenge(challenge.domain)
            self._board.remove("tls-alpn-01", challenge.domain)
        else:
            assert self._dns is not None
            anyio.from_thread.run(self._dns, "cleanup", challenge)
