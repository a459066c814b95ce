"""The dns provider in a running gateway, against Debian's dnsmasq started by the test
(tests/dns_zone.py): every address of a name is a server, an SRV record's targets too; a changed
answer is one reload; a server gone from the answer is drained, not cut; dnsmasq killed and
restarted mid-run costs no request; a name that vanishes or an answer too large is a diagnostic
and the last good servers keep serving.

The backends listen on other loopback addresses (127.0.0.2, 127.0.0.3, ...) on one port, as the
machines a name resolves to would.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway

from ..backends import backend
from ..dns_zone import Zone, dns_zone
from ..stubs import eventually, free_port
from .running import weighted

pytestmark = pytest.mark.anyio

CONFIG = """
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
middlewares "strip" {{
  type     = "strip-prefix"
  prefixes = ["/llm", "/gpu"]
}}
providers {{
  throttle = "0.1s"
  dns {{
    resolvers   = ["{resolver}"]
    min_ttl     = "0.2s"
    max_ttl     = "2s"
    timeout     = "1s"
    max_records = {max_records}
    services = {{
      llm = {{ servers = [{{ url = "http://llm.test:{backend_port}" }}] }}
      gpu = {{ servers = [{{ srv = "_http._tcp.gpu.test" }}], strategy = "weighted" }}
    }}
  }}
}}
routers "llm" {{
  rule        = "PathPrefix(`/llm`)"
  service     = "llm@dns"
  middlewares = ["strip"]
}}
routers "gpu" {{
  rule        = "PathPrefix(`/gpu`)"
  service     = "gpu@dns"
  middlewares = ["strip"]
}}
"""


def write_config(tmp_path: Path, zone: Zone, backend_port: int, max_records: int = 1000) -> tuple[str, int]:
    port = free_port()
    path = tmp_path / "gateway.hcl"
    path.write_text(
        CONFIG.format(port=port, resolver=zone.address, backend_port=backend_port, max_records=max_records)
    )
    return str(path), port


async def test_addresses_srv_changes_and_draining(tmp_path: Path) -> None:
    port = free_port()
    with dns_zone(tmp_path, ttl=1) as zone:
        zone.set_hosts({"llm.test": ["127.0.0.2"], "gpu.test": ["127.0.0.4"]})
        zone.set_srv([f"_http._tcp.gpu.test,gpu.test,{port},0,3"])
        path, gw_port = write_config(tmp_path, zone, port)
        async with (
            backend(host="127.0.0.2", port=port) as a,
            backend(host="127.0.0.3", port=port) as b,
            backend(host="127.0.0.4", port=port) as gpu,
            Gateway(path) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(
                lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.2:{port}", 1)], timeout=20
            )
            assert weighted(gateway, "gpu@dns") == [(f"http://127.0.0.4:{port}", 3)]
            assert (await client.get("/llm/json")).status_code == 200 and len(a.seen) == 1
            assert (await client.get("/gpu/json")).status_code == 200 and len(gpu.seen) == 1

            # A stream in flight on a, then the name moves to b: a is drained, not cut.
            async with client.stream("GET", "/llm/sse?n=2") as stream:
                lines = stream.aiter_lines()
                assert (await anext(lines)).startswith("data:")
                zone.set_hosts({"llm.test": ["127.0.0.3"], "gpu.test": ["127.0.0.4"]})
                await eventually(
                    lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.3:{port}", 1)], timeout=20
                )
                assert (await client.get("/llm/json")).status_code == 200 and len(b.seen) == 1
                await a.step()
                rest = [line async for line in lines if line.startswith("data:")]
                assert len(rest) == 1  # the second event came through the drained backend

            # Both addresses: both are servers.
            zone.set_hosts({"llm.test": ["127.0.0.2", "127.0.0.3"], "gpu.test": ["127.0.0.4"]})
            await eventually(lambda: len(weighted(gateway, "llm@dns")) == 2, timeout=20)


async def test_dnsmasq_killed_and_restarted_mid_run_drops_no_request(tmp_path: Path) -> None:
    port = free_port()
    with dns_zone(tmp_path, ttl=1) as zone:
        zone.set_hosts({"llm.test": ["127.0.0.2"], "gpu.test": ["127.0.0.4"]})
        zone.set_srv([f"_http._tcp.gpu.test,gpu.test,{port},0,1"])
        path, gw_port = write_config(tmp_path, zone, port)
        async with (
            backend(host="127.0.0.2", port=port),
            backend(host="127.0.0.3", port=port) as b,
            Gateway(path) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(lambda: len(weighted(gateway, "llm@dns")) == 1, timeout=20)
            providers = gateway.providers
            assert providers is not None
            statuses: list[int] = []
            zone.kill()
            await eventually(lambda: providers.status["dns"].state == "lost", timeout=20)
            for _ in range(20):  # served all along from the last answer
                statuses.append((await client.get("/llm/json")).status_code)
            zone.set_hosts({"llm.test": ["127.0.0.3"], "gpu.test": ["127.0.0.4"]})
            await anyio.to_thread.run_sync(zone.start)
            await eventually(
                lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.3:{port}", 1)], timeout=30
            )
            statuses.append((await client.get("/llm/json")).status_code)
            assert statuses == [200] * 21 and len(b.seen) == 1
            assert providers.status["dns"].state == "ok"


async def test_a_vanished_name_and_a_huge_answer_are_diagnostics(tmp_path: Path) -> None:
    port = free_port()
    with dns_zone(tmp_path, ttl=1) as zone:
        zone.set_hosts({"llm.test": ["127.0.0.2"], "gpu.test": ["127.0.0.4"]})
        zone.set_srv([f"_http._tcp.gpu.test,gpu.test,{port},0,1"])
        path, gw_port = write_config(tmp_path, zone, port, max_records=1000)
        async with (
            backend(host="127.0.0.2", port=port) as a,
            Gateway(path) as gateway,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client,
        ):
            await eventually(lambda: len(weighted(gateway, "llm@dns")) == 1, timeout=20)
            providers = gateway.providers
            assert providers is not None

            zone.set_hosts({"gpu.test": ["127.0.0.4"]})  # llm.test is gone: NXDOMAIN
            await eventually(lambda: providers.status["dns"].state == "rejected", timeout=20)
            error = providers.status["dns"].last_error or ""
            assert "services.llm.servers.0 (http://llm.test:" in error and "no such name" in error
            assert (await client.get("/llm/json")).status_code == 200 and len(a.seen) == 1

            # As many A records as a DNS message holds (over TCP: the UDP answer is truncated).
            zone.set_hosts(
                {
                    "llm.test": [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(4000)],
                    "gpu.test": ["127.0.0.4"],
                }
            )
            await eventually(lambda: "4000 records" in (providers.status["dns"].last_error or ""), timeout=30)
            assert "more than max_records (1000)" in (providers.status["dns"].last_error or "")
            assert weighted(gateway, "llm@dns") == [(f"http://127.0.0.2:{port}", 1)]
            assert (await client.get("/llm/json")).status_code == 200


ONE_NAME = """
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
providers {{
  throttle = "0.1s"
  dns {{
    resolvers = ["{resolver}"]
    min_ttl   = "0.2s"
    max_ttl   = "1h"
    timeout   = "1s"
    services = {{
      llm   = {{ servers = [{{ url = "http://llm.test:{backend_port}" }}] }}
      fixed = {{ servers = [{{ url = "http://127.0.0.4:{backend_port}" }}] }}
    }}
  }}
}}
routers "llm" {{
  rule    = "PathPrefix(`/`)"
  service = "llm@dns"
}}
"""


async def test_a_name_that_comes_back_is_served_again_within_min_ttl(tmp_path: Path) -> None:
    # The only name with a TTL is gone: its retry must not wait for max_ttl (an hour here), or
    # the whole fragment stays rejected that long after the name is back.
    port, gw_port = free_port(), free_port()
    with dns_zone(tmp_path, ttl=1) as zone:
        zone.set_hosts({"llm.test": ["127.0.0.2"]})
        path = tmp_path / "gateway.hcl"
        path.write_text(ONE_NAME.format(port=gw_port, resolver=zone.address, backend_port=port))
        async with backend(host="127.0.0.3", port=port) as b, Gateway(str(path)) as gateway:
            await eventually(lambda: weighted(gateway, "llm@dns") == [(f"http://127.0.0.2:{port}", 1)])
            providers = gateway.providers
            assert providers is not None
            zone.set_hosts({})
            await eventually(lambda: providers.status["dns"].state == "rejected", timeout=20)
            zone.set_hosts({"llm.test": ["127.0.0.3"]})
            await eventually(lambda: providers.status["dns"].state == "ok", timeout=20)
            assert weighted(gateway, "llm@dns") == [(f"http://127.0.0.3:{port}", 1)]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client:
                assert (await client.get("/json")).status_code == 200 and len(b.seen) == 1
