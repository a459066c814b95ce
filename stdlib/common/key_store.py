"""Virtual API keys for `llm-keys`: what a key allows, how it is hashed, and where it is kept.

A key is stored only as its digest: HMAC-SHA256 under the node's `hash_secret` when one is set,
plain SHA-256 otherwise. Both are fast (about a microsecond), which matters because every
request is checked. Slow password hashes (bcrypt, argon2) exist to make guessing low-entropy
passwords expensive; a gateway key is 256 random bits (`new_secret`), which no guessing reaches,
so the slow hash would only add ~50 ms to every request. This is what GitHub, Stripe and
Kubernetes' bootstrap tokens do. The HMAC secret adds that a copied store (a Redis dump, the key
file) cannot even be checked against a candidate key without the secret.

Three sources, asked in this order: keys written in the config (`ConfigKeys`), and keys created
through the admin API, kept either in a JSON file written atomically (`FileKeyStore`: a
temporary file in the same folder, flushed, then renamed over the old one, so a reader sees the
old file or the new one, never half of one) or in Redis (`RedisKeyStore`, so every replica sees
a key as soon as it is created). Lookups of stored keys are cached for `refresh` seconds; the
replica that revokes a key forgets it at once, the others within `refresh`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import anyio.to_thread

from .key_spec import KeySpec
from .redis_scripts import RedisScripts, Script

__all__ = [
    "ConfigKeys",
    "FileKeyStore",
    "KeyExists",
    "KeyRecord",
    "KeyStore",
    "RedisKeyStore",
    "digest",
    "new_secret",
]

SECRET_PREFIX = "sk-a3s-"


class KeyExists(Exception):
    """A key of that name exists already."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    name: str
    digest: str
    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    budget: float | None = None
    budget_unit: str = "tokens"
    budget_period: float = 0.0
    expires: float | None = None  # Unix seconds
    tier: str | None = None  # what `priority` rules read (`key = "tier"`)
    source: str = "config"  # or "api"
    created: float = 0.0

    @classmethod
    def from_spec(cls, name: str, key_digest: str, spec: KeySpec, source: str, created: float) -> KeyRecord:
        return cls(
            name=name,
            digest=key_digest,
            models=tuple(spec.models),
            rpm=spec.rpm,
            tpm=spec.tpm,
            budget=spec.budget,
            budget_unit=spec.budget_unit,
            budget_period=spec.budget_period,
            expires=spec.expires.timestamp() if spec.expires is not None else None,
            tier=spec.tier,
            source=source,
            created=created,
        )

    def allows(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, glob) for glob in self.models)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRecord:
        data = json.loads(text)
        data["models"] = tuple(data.get("models", ()))
        return cls(**data)

    def public(self) -> dict[str, Any]:
        """What the admin API shows: everything but the digest."""
        out = asdict(self)
        del out["digest"]
        out["models"] = list(self.models)
        return out


def digest(secret: str, hash_secret: bytes | None) -> str:
    data = secret.encode("utf-8", "surrogateescape")
    if hash_secret:
        return hmac.new(hash_secret, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def new_secret() -> str:
    """A new key: 256 random bits, URL-safe, with a prefix that secret scanners can recognise."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class KeyStore(Protocol):
    async def find(self, key_digest: str, now: float) -> KeyRecord | None: ...

    async def create(self, record: KeyRecord) -> None:
        """Add `record`; KeyExists when its name is taken."""

    async def delete(self, name: str) -> bool: ...

    async def all(self) -> list[KeyRecord]: ...


@dataclass(eq=False)
class ConfigKeys:
    """The keys written in the config: read-only."""

    by_digest: dict[str, KeyRecord]

    def find(self, key_digest: str) -> KeyRecord | None:
        return self.by_digest.get(key_digest)

    def names(self) -> set[str]:
        return {record.name for record in self.by_digest.values()}


@dataclass(eq=False)
class FileKeyStore:
    """Keys created through the admin API, in a JSON file; re-read when another process changed it."""

    path: str
    refresh: float
    records: dict[str, KeyRecord] = field(default_factory=dict)  # by name
    _by_digest: dict[str, KeyRecord] = field(default_factory=dict)
    _stamp: tuple[int, int] | None = None
    _checked: float = float("-inf")

    def __post_init__(self) -> None:
        self._load()

    def _load(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self.records, self._by_digest, self._stamp = {}, {}, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        with open(self.path, encoding="utf-8") as f:
            data = json.load(f)
        records = [KeyRecord.from_json(json.dumps(item)) for item in data.get("keys", [])]
        self.records = {r.name: r for r in records}
        self._by_digest = {r.digest: r for r in records}
        self._stamp = stamp

    async def find(self, key_digest: str, now: float) -> KeyRecord | None:
        if now - self._checked >= self.refresh:
            self._checked = now
            self._load()
        return self._by_digest.get(key_digest)

    async def create(self, record: KeyRecord) -> None:
        self._load()
        if record.name in self.records:
            raise KeyExists(record.name)
        await self._write({**self.records, record.name: record})

    async def delete(self, name: str) -> bool:
        self._load()
        if name not in self.records:
            return False
        await self._write({k: v for k, v in self.records.items() if k != name})
        return True

    async def all(self) -> list[KeyRecord]:
        self._load()
        return list(self.records.values())

    async def _write(self, records: dict[str, KeyRecord]) -> None:
        payload = {"keys": [json.loads(r.to_json()) for r in records.values()]}
        await anyio.to_thread.run_sync(_write_atomically, self.path, json.dumps(payload, indent=2) + "\n")
        self._stamp = None
        self._load()


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException:
        os.unlink(tmp)
        raise


# KEYS: names hash (name -> digest), records hash (digest -> record). ARGV: name, digest, record.
_CREATE = Script("""
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
""")
# KEYS as above. ARGV: name. Returns the revoked key's digest, or false.
_DELETE = Script("""
local d = redis.call('HGET', KEYS[1], ARGV[1])
if not d then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], d)
return d
""")


@dataclass(eq=False)
class RedisKeyStore:
    """Keys created through the admin API, in Redis: every replica sees them."""

    redis: RedisScripts
    prefix: str
    refresh: float
    max_cached: int = 10_000
    _cache: dict[str, tuple[KeyRecord | None, float]] = field(default_factory=dict)

    @property
    def _keys(self) -> list[str]:
        return [self.prefix + "key-names", self.prefix + "keys"]

    async def find(self, key_digest: str, now: float) -> KeyRecord | None:
        cached = self._cache.get(key_digest)
        if cached is not None and now - cached[1] < self.refresh:
            return cached[0]
        raw = await self.redis.command("HGET", self._keys[1], key_digest)
        record = KeyRecord.from_json(raw) if raw is not None else None
        if len(self._cache) >= self.max_cached:
            self._cache.clear()  # unknown keys flooding in must not grow memory
        self._cache[key_digest] = (record, now)
        return record

    async def create(self, record: KeyRecord) -> None:
        if not await self.redis.run(_CREATE, self._keys, [record.name, record.digest, record.to_json()]):
            raise KeyExists(record.name)
        self._cache.pop(record.digest, None)

    async def delete(self, name: str) -> bool:
        revoked = await self.redis.run(_DELETE, self._keys, [name])
        if not revoked:
            return False
        self._cache.pop(revoked.decode() if isinstance(revoked, bytes) else str(revoked), None)
        return True

    async def all(self) -> list[KeyRecord]:
        raw = await self.redis.command("HGETALL", self._keys[1])
        values = list(raw.values()) if isinstance(raw, dict) else raw[1::2]
        return sorted((KeyRecord.from_json(v) for v in values), key=lambda r: r.name)
