"""TCP health checks: a connect, optionally a payload sent and an answer expected.

```hcl
services "db" {
  load_balancer {
    servers = [{ address = "10.0.0.5:5432" }, { address = "10.0.0.6:5432" }]
    health_check {
      interval = "5s"
      timeout  = "2s"
      send     = "PING\r\n"   # optional
      expect   = "+PONG"      # optional: good once these bytes are read back
    }
  }
}
```

A probe is good when the connection opens within `timeout` (and, with `expect`, when the bytes
read back contain `expect` before `timeout`); a refused connection, a reset, a timeout or an
answer without `expect` is a failed probe. The thresholds, the interval and its jitter are the
HTTP checker's (stdlib/health/http.py), which runs this probe for services whose servers are
given by `address`. The connection is closed right after the probe.
"""

from __future__ import annotations

import anyio
import anyio.abc

from ...compiler.schema import HealthCheckConfig

__all__ = ["probe_tcp"]

# An answer is read up to this many bytes while looking for `expect`.
_MAX_ANSWER = 64 * 1024


async def probe_tcp(address: str, config: HealthCheckConfig) -> bool:
    """One probe of `address` (host:port; the check's `port` overrides the port)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        with anyio.fail_after(config.timeout):
            async with await anyio.connect_tcp(host, config.port or int(port)) as stream:
                if config.send:
                    await stream.send(config.send.encode())
                if not config.expect:
                    return True
                return await _read_until(stream, config.expect.encode())
    except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream):
        return False


async def _read_until(stream: anyio.abc.ByteStream, expect: bytes) -> bool:
    answer = b""
    while expect not in answer:
        if len(answer) > _MAX_ANSWER:
            return False
        answer += await stream.receive()
    return True
