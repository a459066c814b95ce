"""Prometheus metrics through a running gateway: real sockets, the exposition parsed with
prometheus-client's own parser, `/metrics` on the api address, `prometheus@internal` behind a
router and its middlewares, `GET /api/gateway/metrics`, and the registry kept across reloads."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from a3s_gateway.compiler import CompileError
from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.observe.metric_names import SERIES
from a3s_gateway.runtime.observe.tally import BATCH

from .backends import backend, make_certs
from .stubs import eventually, free_ports, refusing_port
from .test_access_log import _config as access_log_config

pytestmark = pytest.mark.anyio

METRICS = """
metrics {
  prometheus {
    buckets            = [0.05, 0.5, 5]
    add_routers_labels = true
  }
}
"""


def config(port: int, api: int, upstream: str, dead: str, extra: str = METRICS) -> str:
    """The access log tests' routers `app` (a backend) and `gone` (a refusing port), with the
    admin API on `api` and `extra` (the metrics block by default)."""
    return access_log_config(port, upstream, dead, f'api {{\n  address = "127.0.0.1:{api}"\n}}\n{extra}')


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


@asynccontextmanager
async def serving(tmp_path: Path, extra: str = METRICS) -> AsyncIterator[tuple[Gateway, str, str, Path]]:
    port, api = free_ports(2)
    with refusing_port() as dead:
        async with backend() as be:
            path = tmp_path / "gw.hcl"
            path.write_text(config(port, api, be.url, f"http://127.0.0.1:{dead}", extra))
            async with Gateway(str(path)) as gateway:
                yield gateway, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api}", path


@pytest.mark.parametrize("access_log", [False, True])
async def test_requests_are_counted_by_entrypoint_router_and_service(
    tmp_path: Path, access_log: bool
) -> None:
    # With the access log on too, the log's end-of-body callback runs the metrics' (meters.py
    # `record(share=True)`): the counts and durations must be the same.
    log = tmp_path / "access.json"
    extra = METRICS + (f'access_log {{\n  path = "{log}"\n}}\n' if access_log else "")
    async with serving(tmp_path, extra) as (_gw, web, api, _path), httpx.AsyncClient() as client:
        for _ in range(3):
            assert (await client.get(f"{web}/app/json")).status_code == 200
        assert (await client.post(f"{web}/gone", content=b"x")).status_code == 502
        assert (await client.get(f"{web}/nowhere")).status_code == 404
        reply = await client.get(f"{api}/metrics")
    if access_log:  # and every request has its line (the scrape's own left out)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert sorted(line["status"] for line in lines if line["path"] != "/metrics") == [
            200,
            200,
            200,
            404,
            502,
        ]
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    web_ok = {"entrypoint": "web", "code": "200", "method": "GET", "protocol": "http"}
    assert value(text, "a3s_gateway_entrypoint_requests_total", **web_ok) == 3
    assert value(text, "a3s_gateway_entrypoint_request_duration_seconds_count", **web_ok) == 3
    assert value(text, "a3s_gateway_entrypoint_requests_total", **{**web_ok, "code": "404"}) == 1
    assert (
        value(
            text,
            "a3s_gateway_router_requests_total",
            router="gone",
            service="gone",
            code="502",
            method="POST",
            protocol="http",
        )
        == 1
    )
    app_ok = {"service": "app", "code": "200", "method": "GET", "protocol": "http"}
    assert value(text, "a3s_gateway_service_requests_total", **app_ok) == 3
    # The configured buckets, and every observation under the largest.
    assert value(text, "a3s_gateway_service_request_duration_seconds_bucket", **app_ok, le="5.0") == 3
    assert value(text, "a3s_gateway_service_request_duration_seconds_bucket", **app_ok, le="+Inf") == 3
    # State series: the healthy server is up; the 404 reached no router or service.
    up = samples(text)
    assert any(k[0] == "a3s_gateway_service_server_up" and ("service", "app") in k[1] for k in up)
    assert not any(k[0].startswith("a3s_gateway_router_") and ("code", "404") in k[1] for k in up)
    assert value(text, "a3s_gateway_config_last_reload_success_timestamp_seconds") is not None


@pytest.mark.parametrize("access_log", [False, True])
async def test_batched_durations_are_all_counted_at_every_scrape(tmp_path: Path, access_log: bool) -> None:
    # The request series batch their durations (tally.py: folded every BATCH requests, and
    # before any read): a scrape in the middle of a batch, on a batch's edge and after two
    # batches sees every request that was over, in the counters and the histograms alike.
    log = tmp_path / "access.json"
    extra = METRICS + (f'access_log {{\n  path = "{log}"\n}}\n' if access_log else "")
    ok = {"service": "app", "code": "200", "method": "GET", "protocol": "http"}
    async with serving(tmp_path, extra) as (gw, web, api, _path), httpx.AsyncClient() as client:
        sent = 0
        for total in (5, BATCH, 2 * BATCH + 3):
            while sent < total:
                assert (await client.get(f"{web}/app/json")).status_code == 200
                sent += 1
            text = (await client.get(f"{api}/metrics")).text
            assert value(text, "a3s_gateway_service_requests_total", **ok) == total
            assert value(text, "a3s_gateway_service_request_duration_seconds_count", **ok) == total
            assert (
                value(text, "a3s_gateway_service_request_duration_seconds_bucket", **ok, le="+Inf") == total
            )
            assert value(text, "a3s_gateway_service_time_to_first_byte_seconds_count", service="app") == total
            router = {"router": "app", "service": "app", "code": "200", "method": "GET", "protocol": "http"}
            assert value(text, "a3s_gateway_router_request_duration_seconds_count", **router) == total
            # The in-process API reads the same registry.
            assert gw.metrics is not None
            assert gw.metrics.value("a3s_gateway_service_requests_total", ok) == total


async def test_every_series_of_the_table_is_exported(tmp_path: Path) -> None:
    async with serving(tmp_path) as (gw, web, api, _path), httpx.AsyncClient() as client:
        await client.get(f"{web}/app/json")
        text = (await client.get(f"{api}/metrics")).text
        assert gw.metrics is not None
    families = {f.name for f in text_string_to_metric_families(text)}
    for series in SERIES:
        assert series.name.removesuffix("_total") in families, series.name


async def test_a_reload_keeps_counting_and_counts_itself(tmp_path: Path) -> None:
    async with serving(tmp_path) as (gw, web, api, path), httpx.AsyncClient() as client:
        await client.get(f"{web}/app/json")
        before = gw.metrics
        path.write_text(
            path.read_text().replace('rule    = "PathPrefix(`/app`)"', 'rule = "PathPrefix(`/ap`)"')
        )
        await gw.reload()
        assert gw.metrics is before  # same buckets: the registry is kept
        await client.get(f"{web}/app/json")
        path.write_text("this is not hcl {")
        with pytest.raises(CompileError):
            await gw.reload()
        text = (await client.get(f"{api}/metrics")).text
    ok = {"service": "app", "code": "200", "method": "GET", "protocol": "http"}
    assert value(text, "a3s_gateway_service_requests_total", **ok) == 2
    assert value(text, "a3s_gateway_config_reloads_total", result="success") == 1
    assert value(text, "a3s_gateway_config_reloads_total", result="failure") == 1


async def test_a_failed_reload_adds_no_series(tmp_path: Path) -> None:
    """A reload whose new entrypoint cannot bind is built in full, then fails: the routers (HTTP
    and TCP) and the service it would have added must not appear in the registry the running
    gateway keeps."""
    async with serving(tmp_path) as (gw, _web, _api, path):
        assert gw.metrics is not None
        before = samples(gw.metrics.exposition()[0].decode())
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            path.write_text(
                path.read_text()
                + f"""
entrypoints "other" {{ address = "127.0.0.1:{port}" }}
routers "newr" {{
  rule        = "PathPrefix(`/x`)"
  service     = "fresh"
  entrypoints = ["other"]
}}
services "fresh" {{
  load_balancer {{ servers = [{{ url = "demo://fresh" }}] }}
}}
entrypoints "raw" {{
  address  = "127.0.0.1:0"
  protocol = "tcp"
}}
tcp_routers "relay" {{
  rule        = "HostSNI(`*`)"
  service     = "upstream"
  entrypoints = ["raw"]
}}
services "upstream" {{
  load_balancer {{ servers = [{{ address = "127.0.0.1:9" }}] }}
}}
"""
            )
            with pytest.raises(OSError):
                await gw.reload()
        after = samples(gw.metrics.exposition()[0].decode())
    added = [key for key in after if key not in before]
    assert added == [("a3s_gateway_config_reloads_total", (("result", "failure"),))]


async def test_a_reload_that_changes_the_buckets_builds_a_new_registry(tmp_path: Path) -> None:
    async with serving(tmp_path) as (gw, web, api, path), httpx.AsyncClient() as client:
        await client.get(f"{web}/app/json")
        before = gw.metrics
        path.write_text(path.read_text().replace("[0.05, 0.5, 5]", "[0.25, 2.5]"))
        await gw.reload()
        assert gw.metrics is not before
        await client.get(f"{web}/app/json")
        text = (await client.get(f"{api}/metrics")).text
    ok = {"service": "app", "code": "200", "method": "GET", "protocol": "http"}
    assert value(text, "a3s_gateway_service_request_duration_seconds_bucket", **ok, le="2.5") == 1
    assert value(text, "a3s_gateway_service_request_duration_seconds_bucket", **ok, le="5.0") is None


async def test_the_admin_api_serves_the_same_text(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_gw, web, api, _path), httpx.AsyncClient() as client:
        await client.get(f"{web}/app/json")
        reply = await client.get(f"{api}/api/gateway/metrics")
        head = await client.head(f"{api}/metrics")
        post = await client.post(f"{api}/metrics")
    assert reply.status_code == 200 and "a3s_gateway_service_requests_total" in reply.text
    assert head.status_code == 200 and head.content == b""
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"


async def test_without_metrics_the_admin_endpoint_says_so_and_nothing_is_served(tmp_path: Path) -> None:
    async with serving(tmp_path, extra="") as (gw, _web, api, _path), httpx.AsyncClient() as client:
        reply = await client.get(f"{api}/api/gateway/metrics")
        assert (await client.get(f"{api}/metrics")).status_code == 404
        assert gw.metrics is None
    assert reply.status_code == 404 and "metrics are not configured" in reply.json()["error"]["message"]


async def test_a_router_names_prometheus_internal_behind_basic_auth(tmp_path: Path) -> None:
    extra = (
        METRICS.replace("add_routers_labels = true", "manual_routing = true")
        + """
middlewares "admin-auth" {
  type  = "basic-auth"
  users = ["admin:$2y$05$FlskX7XEMP54uN.Sbu2.iOvK7MNfk51s8Wat4tuM1OUzq9hcESntu"]
}
routers "scrape" {
  rule        = "Path(`/internal/metrics`)"
  service     = "prometheus@internal"
  middlewares = ["admin-auth"]
}
"""
    )
    async with serving(tmp_path, extra) as (_gw, web, api, _path), httpx.AsyncClient() as client:
        assert (await client.get(f"{api}/metrics")).status_code == 404  # manual_routing: no default route
        assert (await client.get(f"{web}/internal/metrics")).status_code == 401
        reply = await client.get(f"{web}/internal/metrics", auth=("admin", "change-me"))
    assert reply.status_code == 200 and "a3s_gateway_entrypoint_requests_total" in reply.text


async def test_the_label_switches_turn_series_off(tmp_path: Path) -> None:
    extra = "metrics {\n  prometheus {\n    add_entrypoints_labels = false\n    add_services_labels = false\n  }\n}\n"
    async with serving(tmp_path, extra) as (_gw, web, api, _path), httpx.AsyncClient() as client:
        await client.get(f"{web}/app/json")
        text = (await client.get(f"{api}/metrics")).text
    names = {k[0] for k in samples(text)}
    # Traefik's defaults: routers off; here entrypoints and services are switched off too.
    assert not any(
        n.startswith(("a3s_gateway_entrypoint_", "a3s_gateway_router_req", "a3s_gateway_service_req"))
        for n in names
    )
    assert "a3s_gateway_service_server_up" in names


async def test_open_connections_follow_the_clients(tmp_path: Path) -> None:
    async with serving(tmp_path) as (gw, web, _api, _path):
        assert gw.metrics is not None
        open_web = {"entrypoint": "web", "protocol": "TCP"}
        async with httpx.AsyncClient() as client:
            await client.get(f"{web}/app/json")  # keep-alive: the connection stays open
            assert gw.metrics.value("a3s_gateway_open_connections", open_web) == 1
        await eventually(
            lambda: gw.metrics is not None and gw.metrics.value("a3s_gateway_open_connections", open_web) == 0
        )


async def test_certificates_report_their_expiry(tmp_path: Path) -> None:
    from cryptography import x509

    certs = make_certs(tmp_path, ["a.test"])
    cert_file, key_file = certs.leaves["a.test"]
    # The same certificate at a second path, on a second entrypoint: one sample, not two with
    # the same labels (Prometheus rejects a whole scrape with a duplicate series).
    copy = tmp_path / "copy.pem"
    copy.write_bytes(Path(cert_file).read_bytes())
    port, port2 = free_ports(2)
    path = tmp_path / "gw.hcl"
    path.write_text(
        f'entrypoints "tls" {{\n  address = "127.0.0.1:{port}"\n'
        f'  tls {{\n    cert_file = "{cert_file}"\n    key_file = "{key_file}"\n  }}\n}}\n'
        f'entrypoints "tls2" {{\n  address = "127.0.0.1:{port2}"\n'
        f'  tls {{\n    cert_file = "{copy}"\n    key_file = "{key_file}"\n  }}\n}}\n'
        'routers "r" {\n  rule = "PathPrefix(`/`)"\n  service = "s"\n}\n'
        'services "s" { load_balancer { servers = [{ url = "http://127.0.0.1:9" }] } }\n' + METRICS
    )
    expected = x509.load_pem_x509_certificate(Path(cert_file).read_bytes()).not_valid_after_utc.timestamp()
    async with Gateway(str(path)) as gw:
        assert gw.metrics is not None
        text = gw.metrics.exposition()[0].decode()
    assert value(text, "a3s_gateway_tls_certs_not_after", cn="a.test", sans="a.test") == expected
    assert text.count('a3s_gateway_tls_certs_not_after{cn="a.test",sans="a.test"}') == 1


async def test_the_number_of_series_stays_fixed_however_varied_the_requests(tmp_path: Path) -> None:
    """No path, host, query, client key or header value becomes a label: after a first round of
    each kind of request, 300 more with distinct paths, hosts, keys and invented methods add no
    series."""
    async with serving(tmp_path) as (gw, web, _api, _path), httpx.AsyncClient() as client:
        assert gw.metrics is not None

        async def round_of(i: int) -> None:
            await client.get(
                f"{web}/app/json/{i}?api_key=k{i}", headers={"host": f"h{i}.example", "x-api-key": f"{i}"}
            )
            await client.get(f"{web}/nowhere/{i}", headers={"authorization": f"Bearer t{i}"})
            await client.request(f"BREW{i % 7}", f"{web}/app/json/{i}")
            await client.post(f"{web}/gone/{i}", content=str(i))

        await round_of(0)
        before = samples(gw.metrics.exposition()[0].decode())
        for i in range(1, 76):
            await round_of(i)
        after = samples(gw.metrics.exposition()[0].decode())
    assert sorted(after) == sorted(before)
    text = "".join(f"{k}" for k in after)
    assert "h5.example" not in text and "/app/json/5" not in text and "BREW" not in text


@pytest.mark.parametrize("access_log", [False, True])
async def test_the_protocol_label_follows_the_request_fields(tmp_path: Path, access_log: bool) -> None:
    """Traefik's `protocol` label: websocket (Upgrade: websocket, any case), sse (an Accept that
    takes text/event-stream), grpc (a gRPC Content-Type), else http; a browser's dozen fields,
    and a marker word in an unrelated field, leave a request http."""
    log = tmp_path / "access.json"
    extra = METRICS + (f'access_log {{\n  path = "{log}"\n}}\n' if access_log else "")
    browser = {
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
        "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "accept-language": "en-GB,en;q=0.9",
        "accept-encoding": "gzip, deflate, br",
        "cache-control": "no-cache",
        "pragma": "no-cache",
        "sec-fetch-dest": "document",
        "sec-fetch-mode": "navigate",
        "sec-fetch-site": "none",
        "upgrade-insecure-requests": "1",
        "cookie": "session=abc; theme=dark",
        "x-note": "about websocket, text/event-stream and application/grpc",  # not a marker's field
    }
    async with serving(tmp_path, extra) as (_gw, web, api, _path), httpx.AsyncClient() as client:
        await client.get(f"{web}/app/json", headers=browser)
        await client.get(f"{web}/app/json", headers={"accept": "text/event-stream"})
        await client.get(f"{web}/app/json", headers={"accept": "application/json, text/event-stream"})
        await client.get(f"{web}/app/json", headers={"upgrade": "WebSocket", "connection": "Upgrade"})
        await client.post(f"{web}/app/json", headers={"content-type": "application/grpc+proto"}, content=b"")
        text = (await client.get(f"{api}/metrics")).text

    def requests(protocol: str) -> float:
        return sum(
            v
            for (name, labels), v in samples(text).items()
            if name == "a3s_gateway_router_requests_total"
            and ("router", "app") in labels
            and ("protocol", protocol) in labels
        )

    assert requests("http") == 1
    assert requests("sse") == 2
    assert requests("websocket") == 1
    assert requests("grpc") == 1
