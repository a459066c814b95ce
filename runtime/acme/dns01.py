"""DNS-01 (RFC 8555 §8.4): the TXT record `_acme-challenge.<domain>` through a DNS provider kind
(stdlib/resolvers/), published, checked on every authoritative server, and removed.

The hook made here is what the solver (solvers.py) runs on the event loop: "present" publishes
the value and returns once `propagated()` sees it on the zone's authoritative servers (so the
ACME server, asking any of them, finds it) or fails after `propagation_timeout`; "cleanup"
removes that value, leaving any other at the same name (a wildcard and its bare domain share it).
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from ...compiler.acme import ResolverPlan
from ...compiler.resolvers import DnsChallenge
from ...stdlib import registry
from .client import Challenge
from .propagation import authoritative_servers, missing_on

__all__ = ["PropagationTimeout", "dns_hook"]


class PropagationTimeout(Exception):
    """The TXT value did not reach every authoritative server in time."""


def dns_hook(plan: ResolverPlan) -> Callable[[str, Challenge], Awaitable[None]]:
    config = plan.acme.dns_challenge
    assert config is not None
    kind = registry.lookup("dns_provider", config.provider)
    assert kind is not None, "the compiler checked the provider"
    provider: Any = kind.impl(kind.config.model_validate(config.options))

    async def hook(action: str, challenge: Challenge) -> None:
        fqdn = "_acme-challenge." + challenge.domain.removeprefix("*.") + "."
        if action == "present":
            await provider.set_txt(fqdn, challenge.validation)
            await propagated(fqdn, challenge.validation, config)
        else:
            await provider.delete_txt(fqdn, challenge.validation)

    return hook


async def propagated(fqdn: str, value: str, config: DnsChallenge) -> None:
    """Return once every authoritative server of `fqdn`'s zone answers `value`."""
    servers = await anyio.to_thread.run_sync(authoritative_servers, fqdn, config.resolvers)
    deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=config.propagation_timeout)
    while True:
        missing = await anyio.to_thread.run_sync(missing_on, servers, fqdn, value)
        if not missing:
            return
        if datetime.datetime.now(datetime.UTC) >= deadline:
            names = ", ".join(f"{host}:{port}" for host, port in missing)
            raise PropagationTimeout(
                f"{fqdn} TXT not seen on {names} after {config.propagation_timeout:g}s (propagation_timeout)"
            )
        await anyio.sleep(config.polling_interval)
