"""What `/api/gateway/keys` does with one `llm-keys` node's keys: list, create, revoke.

The admin API (runtime/admin/keys.py) finds this object as the middleware's `keys_admin` and
passes it plain JSON; answers are (status, JSON) pairs, so the API needs nothing from stdlib.
A created key's secret is in the answer to its POST and nowhere else: only its digest is stored.
Keys written in the config are listed but cannot be revoked here (the config would bring them
back on the next reload): they are removed from the config.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from ...runtime.clock import Clock
from .key_spec import KeySpec
from .key_store import ConfigKeys, KeyExists, KeyRecord, KeyStore, digest, new_secret
from .redis_scripts import REDIS_ERRORS

__all__ = ["KeysAdmin"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
Answer = tuple[int, dict[str, Any]]


def _error(status: int, kind: str, message: str) -> Answer:
    return status, {"error": {"type": kind, "message": message, "status": status}}


class KeysAdmin:
    def __init__(
        self,
        config_keys: ConfigKeys,
        store: KeyStore | None,
        hash_secret: bytes | None,
        clock: Clock,
        spent: Callable[[KeyRecord], Awaitable[float | None]],
        statistics: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.config_keys = config_keys
        self.store = store
        self.hash_secret = hash_secret
        self.clock = clock
        self.spent = spent
        self.statistics = statistics

    async def list_keys(self) -> Answer:
        try:
            stored = await self.store.all() if self.store is not None else []
            records = sorted(self.config_keys.by_digest.values(), key=lambda r: r.name) + stored
            keys = [{**r.public(), "spent": await self.spent(r)} for r in records]
            return 200, {"keys": keys, "statistics": self.statistics()}
        except REDIS_ERRORS as exc:
            return _error(503, "unavailable", f"the key store is unavailable: {exc}")

    async def create_key(self, body: dict[str, Any]) -> Answer:
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            return _error(400, "bad_request", "name must be 1-64 letters, digits, '.', '_' or '-'")
        try:
            spec = KeySpec.model_validate({k: v for k, v in body.items() if k != "name"})
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "body"
            return _error(400, "bad_request", f"{where}: {problem['msg']}")
        if self.store is None:
            return _error(
                409, "conflict", "this llm-keys middleware has no store: set store_file or redis_url"
            )
        if name in self.config_keys.names():
            return _error(409, "conflict", f"key {name!r} is defined in the config")
        secret = new_secret()
        record = KeyRecord.from_spec(name, digest(secret, self.hash_secret), spec, "api", self.clock.wall())
        try:
            await self.store.create(record)
        except KeyExists:
            return _error(409, "conflict", f"key {name!r} exists: revoke it first")
        except REDIS_ERRORS as exc:
            return _error(503, "unavailable", f"the key store is unavailable: {exc}")
        return 201, {**record.public(), "key": secret}

    async def revoke_key(self, name: str) -> Answer:
        if name in self.config_keys.names():
            return _error(409, "conflict", f"key {name!r} is defined in the config: remove it there")
        try:
            found = self.store is not None and await self.store.delete(name)
        except REDIS_ERRORS as exc:
            return _error(503, "unavailable", f"the key store is unavailable: {exc}")
        if not found:
            return _error(404, "not_found", f"no key {name!r}")
        return 200, {"name": name, "status": "revoked"}
