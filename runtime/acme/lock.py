"""Who orders a certificate: one process at a time, under a lock (synchronous: held in the
ACME worker thread for the whole order).

Workers of `run --workers N` (or gateways sharing the storage file on one machine) take an
exclusive `flock` on `<storage>.lock`; gateways on several machines set `redis_url` and take a
Redis lock instead (SET NX with an expiry, so a crashed holder frees it; released only by its
holder). Whoever gets the lock second reads the storage file again first and finds the
certificate the first one stored: exactly one order per certificate.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator

__all__ = ["LockTimeout", "file_lock", "order_lock", "redis_lock"]

# A Redis lock outlives a crashed holder by at most this long (an order takes seconds).
REDIS_LOCK_TTL = 600.0
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class LockTimeout(Exception):
    """Another process held the lock for longer than we wait."""


@contextlib.contextmanager
def file_lock(path: str, timeout: float, poll: float = 0.1) -> Iterator[None]:
    lock_path = path + ".lock"
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), mode=0o700, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{lock_path}: held by another process") from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def redis_lock(url: str, name: str, timeout: float, poll: float = 0.2) -> Iterator[None]:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    key, token = f"a3s-gateway:acme-lock:{name}", secrets.token_hex(16)
    try:
        deadline = time.monotonic() + timeout
        while not client.set(key, token, nx=True, px=int(REDIS_LOCK_TTL * 1000)):
            if time.monotonic() >= deadline:
                raise LockTimeout(f"Redis lock {key}: held by another gateway")
            time.sleep(poll)
        try:
            yield
        finally:
            client.eval(_RELEASE, 1, key, token)
    finally:
        client.close()


def order_lock(
    storage: str, redis_url: str | None, timeout: float
) -> contextlib.AbstractContextManager[None]:
    """The lock that orders against `storage`: Redis's when configured, else the file's."""
    if redis_url:
        return redis_lock(redis_url, os.path.abspath(storage), timeout)
    return file_lock(storage, timeout)
