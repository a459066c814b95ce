"""The ACME storage file: account keys and certificates in one JSON file, as Traefik's acme.json.

    {"version": 1,
     "accounts": {"<directory url>": {"key": "<PEM>", "uri": "<account url>", "email": "..."}},
     "certificates": {"<directory url>": {"a.example,b.example": {"names": [...], "chain": "<PEM>",
                                                                    "key": "<PEM>"}}}}

Written atomically: a new file beside it (mode 0600 from its creation, never wider), flushed
to disk, then renamed over the old one, so a crash leaves the old file or the new one, never
half of either. Several resolvers, worker processes or gateways may share the file: every change
is a read-modify-write under `OrderLock` (lock.py), so one never loses another's certificate.

A file that does not parse is a `StorageError` naming the file and what is wrong; it is never
overwritten (the operator may want it back), and certificates already loaded are kept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..atomic_file import replacing

__all__ = ["StorageError", "Stored", "StoredCertificate", "certificate_key", "read_storage", "write_storage"]

VERSION = 1


class StorageError(Exception):
    """The storage file cannot be read or written; the message names it."""


@dataclass(frozen=True)
class StoredCertificate:
    names: tuple[str, ...]
    chain: bytes  # PEM, leaf first
    key: bytes  # PEM


@dataclass
class Stored:
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)
    certificates: dict[str, dict[str, StoredCertificate]] = field(default_factory=dict)

    def certificate(self, directory: str, names: tuple[str, ...]) -> StoredCertificate | None:
        return self.certificates.get(directory, {}).get(certificate_key(names))

    def put(self, directory: str, cert: StoredCertificate) -> None:
        self.certificates.setdefault(directory, {})[certificate_key(cert.names)] = cert


def certificate_key(names: tuple[str, ...]) -> str:
    return ",".join(names)


def read_storage(path: str) -> Stored:
    """The file's contents (empty when it does not exist yet)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return Stored()
    except OSError as exc:
        raise StorageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return _parse(json.loads(raw))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StorageError(f"{path}: not an ACME storage file ({exc}); it is left as it is") from None


def _parse(data: Any) -> Stored:
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"expected a JSON object with version {VERSION}")
    accounts = {str(d): {str(k): str(v) for k, v in a.items()} for d, a in data.get("accounts", {}).items()}
    certificates: dict[str, dict[str, StoredCertificate]] = {}
    for directory, certs in data.get("certificates", {}).items():
        certificates[str(directory)] = {
            str(key): StoredCertificate(tuple(c["names"]), c["chain"].encode(), c["key"].encode())
            for key, c in certs.items()
        }
    return Stored(accounts, certificates)


def write_storage(path: str, stored: Stored) -> None:
    """Replace the file with `stored`, atomically, mode 0600."""
    data = {
        "version": VERSION,
        "accounts": stored.accounts,
        "certificates": {
            directory: {
                key: {"names": list(c.names), "chain": c.chain.decode(), "key": c.key.decode()}
                for key, c in sorted(certs.items())
            }
            for directory, certs in sorted(stored.certificates.items())
        },
    }
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        with replacing(path, durable=True) as fh:  # mode 0600: the keys are never readable by others
            fh.write(json.dumps(data, indent=1, sort_keys=True).encode())
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
