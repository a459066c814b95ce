"""The dns provider's lookups against a real DNS server (Debian's dnsmasq, tests/dns_zone.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from a3s_gateway.compiler import compile_config
from a3s_gateway.stdlib.providers._dns_lookup import (
    LookupFailed,
    Target,
    lookup_host,
    lookup_srv,
    make_resolver,
)

from ..dns_zone import dns_zone


@pytest.mark.anyio
async def test_addresses_srv_ttl_and_bad_answers(anyio_backend: object, tmp_path: Path) -> None:
    with dns_zone(tmp_path, ttl=7) as zone:
        zone.set_hosts({"llm.test": ["10.0.0.1", "10.0.0.2", "fd00::1"], "gpu.test": ["10.1.0.1"]})
        zone.set_srv(["_http._tcp.llm.test,gpu.test,9000,0,5", "_http._tcp.llm.test,llm.test,9001,10,1"])
        resolver = make_resolver([zone.address], timeout=5.0)

        found = await lookup_host(resolver, "llm.test", max_records=100)
        assert found.targets == (Target("10.0.0.1", None), Target("10.0.0.2", None), Target("fd00::1", None))
        assert found.ttl == 7

        srv = await lookup_srv(resolver, "_http._tcp.llm.test", max_records=100)
        assert srv.targets == (Target("10.1.0.1", 9000, 5),)  # priority 10 is a backup, left out

        with pytest.raises(LookupFailed, match="no such name"):
            await lookup_host(resolver, "nothing.test", max_records=100)

        zone.set_hosts({"big.test": [f"10.2.{i // 256}.{i % 256}" for i in range(4000)]})
        with pytest.raises(LookupFailed, match="the A answer has 4000 records, more than max_records"):
            await lookup_host(resolver, "big.test", max_records=1000)
        zone.kill()
        with pytest.raises(LookupFailed) as failed:
            await lookup_host(make_resolver([zone.address], timeout=1.0), "llm.test", max_records=100)
        assert failed.value.unreachable


def test_a_server_key_of_the_other_form_is_an_error_at_its_line(tmp_path: Path) -> None:
    # `scheme` makes SRV targets' URLs and `weight` weighs a URL's addresses: on the other form
    # they would validate and do nothing.
    path = tmp_path / "gw.hcl"
    for server, wanted in (
        ('{ url = "http://llm.test:80", scheme = "https" }', "scheme is for srv servers"),
        ('{ srv = "_http._tcp.llm.test", weight = 5 }', "weight is for url servers"),
    ):
        path.write_text(
            f"providers {{\n  dns {{\n    services = {{ llm = {{ servers = [{server}] }} }}\n  }}\n}}\n"
        )
        errors = compile_config([str(path)], {}).diagnostics.errors
        assert [(e.span.line, wanted in e.message) for e in errors] == [(3, True)], errors
