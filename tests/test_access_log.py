"""The access log through a running gateway: real sockets, one line per request, written off the
event loop and flushed on shutdown (so a test reads the file once the gateway has stopped)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.observe.access_log import redact_query

from .backends import backend
from .stubs import eventually, free_port, refusing_port

pytestmark = pytest.mark.anyio


def _config(port: int, upstream: str, dead: str, access_log: str) -> str:
    return f"""
entrypoints "web" {{
  address = "127.0.0.1:{port}"
}}
routers "app" {{
  rule    = "PathPrefix(`/app`)"
  service = "app"
}}
routers "gone" {{
  rule    = "PathPrefix(`/gone`)"
  service = "gone"
}}
services "app" {{
  load_balancer {{ servers = [{{ url = "{upstream}" }}] }}
}}
services "gone" {{
  load_balancer {{ servers = [{{ url = "{dead}" }}] }}
}}
{access_log}
"""


SECRETS = {
    "Authorization": "Bearer sekret-token",
    "Cookie": "session=sekret-cookie",
    "X-API-Key": "sekret-key",
}


async def _serve(tmp_path: Path, access_log: str) -> list[int]:
    """Send a proxied 200, a 404 (no router) and a 502 (a backend that refuses) and stop."""
    port = free_port()
    with refusing_port() as dead:
        return await _requests(tmp_path, access_log, port, dead)


async def _requests(tmp_path: Path, access_log: str, port: int, dead: int) -> list[int]:
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(_config(port, be.url, f"http://127.0.0.1:{dead}", access_log))
        async with Gateway(str(path)), httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{port}"
            statuses = [
                (
                    await client.get(f"{base}/app/json?x=1&api_key=sekret-q&Token=sekret-t", headers=SECRETS)
                ).status_code,
                (await client.get(f"{base}/nowhere")).status_code,
                (await client.post(f"{base}/gone", content=b"12345")).status_code,
            ]
    return statuses


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_json_lines_have_the_fields_of_a_200_a_404_and_a_502(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    assert await _serve(tmp_path, f'access_log {{ path = "{log}" }}') == [200, 404, 502]
    ok, missing, bad = _lines(log)
    assert (
        ok["method"] == "GET"
        and ok["path"] == "/app/json?x=1&api_key=REDACTED&Token=REDACTED"
        and ok["protocol"] == "HTTP/1.1"
    )
    assert ok["status"] == ok["backend_status"] == 200
    assert (ok["router"], ok["service"]) == ("app", "app")
    assert ok["backend_url"].startswith("http://127.0.0.1:")
    assert ok["client_addr"] == "127.0.0.1"
    assert ok["response_size"] > 0 and ok["request_size"] == 0 and ok["retry_attempts"] == 0
    assert ok["duration"] >= ok["ttfb"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", ok["start_utc"])
    assert ok["request_id"]
    assert missing["status"] == 404 and missing["router"] is None and missing["backend_status"] is None
    assert bad["status"] == 502 and (bad["router"], bad["service"]) == ("gone", "gone")
    assert bad["backend_status"] is None and bad["request_size"] == 5 and bad["response_size"] > 0
    assert len({ok["request_id"], missing["request_id"], bad["request_id"]}) == 3


async def test_secrets_are_never_logged(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    await _serve(tmp_path, f'access_log {{ path = "{log}" }}')
    assert "sekret" not in log.read_text()


def test_credentials_in_the_query_are_redacted() -> None:
    assert redact_query("/v1/models") == "/v1/models"
    assert redact_query("/a?x=1&API-KEY=k&sig=s&flag") == "/a?x=1&API-KEY=REDACTED&sig=REDACTED&flag"
    assert redact_query("/a?keyword=k&token") == "/a?keyword=k&token"


async def test_filters_keep_only_the_matching_requests(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    await _serve(
        tmp_path, f'access_log {{\n path = "{log}"\n filters {{ status_codes = ["500-599", "404"] }}\n}}'
    )
    assert [line["status"] for line in _lines(log)] == [404, 502]


async def test_retry_filter_keeps_nothing_without_retries(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    await _serve(tmp_path, f'access_log {{\n path = "{log}"\n filters {{ retry_attempts = true }}\n}}')
    assert not log.exists() or log.read_text() == ""


async def test_min_duration_filter_drops_fast_requests(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    await _serve(tmp_path, f'access_log {{\n path = "{log}"\n filters {{ min_duration = "1h" }}\n}}')
    assert not log.exists() or log.read_text() == ""


async def test_common_format(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    await _serve(tmp_path, f'access_log {{\n path = "{log}"\n format = "common"\n}}')
    ok, missing, bad = log.read_text().splitlines()
    clf = r"127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "
    assert re.fullmatch(
        clf + r'"GET /app/json\?x=1&api_key=REDACTED&Token=REDACTED HTTP/1\.1" 200 \d+ "app" "app" \d+ms', ok
    )
    assert re.fullmatch(clf + r'"GET /nowhere HTTP/1\.1" 404 \d+ "-" "-" \d+ms', missing)
    assert re.fullmatch(clf + r'"POST /gone HTTP/1\.1" 502 \d+ "gone" "gone" \d+ms', bad)


async def test_true_writes_json_to_stdout(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    await _serve(tmp_path, "access_log = true")
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["status"] for line in lines] == [200, 404, 502]


async def test_http2_requests_are_logged_with_their_protocol(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "access.json"
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(_config(port, be.url, be.url, f'access_log {{ path = "{log}" }}'))
        async with Gateway(str(path)), httpx.AsyncClient(http1=False, http2=True) as client:
            r = await client.get(f"http://127.0.0.1:{port}/app/json")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
    (line,) = _lines(log)
    assert line["protocol"] == "HTTP/2" and line["status"] == line["backend_status"] == 200
    assert line["response_size"] == len(r.content)


async def test_a_reload_turns_the_access_log_on_and_off(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "access.json"
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(_config(port, be.url, be.url, ""))
        async with Gateway(str(path)) as gateway, httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/app/json"
            assert (await client.get(f"{url}?before")).status_code == 200
            path.write_text(_config(port, be.url, be.url, f'access_log {{ path = "{log}" }}'))
            await gateway.reload()
            assert (await client.get(f"{url}?during")).status_code == 200
            path.write_text(_config(port, be.url, be.url, ""))
            await gateway.reload()
            assert (await client.get(f"{url}?after")).status_code == 200
    assert [line["path"] for line in _lines(log)] == ["/app/json?during"]


SSE = '\nrouters "sse" {\n  rule = "Path(`/sse`)"\n  service = "app"\n}\n'  # the backend's /sse stream


async def test_a_stream_cut_by_the_shutdown_is_logged(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "access.json"
    drain = "shutdown_timeout_secs = 1\n"
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(_config(port, be.url, be.url, f'access_log {{ path = "{log}" }}' + SSE + drain))
        gateway = Gateway(str(path))
        async with httpx.AsyncClient() as client, anyio.create_task_group() as tg:
            await gateway.start(tg)
            async with client.stream("GET", f"http://127.0.0.1:{port}/sse?n=2") as stream:
                assert b"event 0" in await stream.aiter_bytes().__anext__()
                await gateway.shutdown()  # the stream never ends: the drain times out and cuts it
    assert [line["path"] for line in _lines(log)] == ["/sse?n=2"]


async def test_a_stream_in_flight_across_a_reload_is_logged(tmp_path: Path) -> None:
    # The stream started under the old access log: its line goes there once it ends, even though
    # a reload has moved the log to another file in between (and that file's writer flushed).
    port, old, new = free_port(), tmp_path / "old.json", tmp_path / "new.json"
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(_config(port, be.url, be.url, f'access_log {{ path = "{old}" }}' + SSE))
        async with Gateway(str(path)) as gateway, httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{port}"
            async with client.stream("GET", f"{base}/sse?n=2") as stream:
                events = stream.aiter_bytes()
                assert b"event 0" in await events.__anext__()
                assert (await client.get(f"{base}/app/json?before")).status_code == 200
                path.write_text(_config(port, be.url, be.url, f'access_log {{ path = "{new}" }}' + SSE))
                await gateway.reload()
                assert (await client.get(f"{base}/app/json?after")).status_code == 200
                # Both writers have flushed since the reload: the old one has had its chance to stop.
                await eventually(lambda: old.exists() and "?before" in old.read_text())
                await eventually(lambda: new.exists() and "?after" in new.read_text())
                await be.step()
                assert b"event 1" in b"".join([chunk async for chunk in events])
    assert [line["path"] for line in _lines(old)] == ["/app/json?before", "/sse?n=2"]
    assert [line["path"] for line in _lines(new)] == ["/app/json?after"]


async def test_a_logged_request_keeps_its_generation_busy_until_its_body_ends(tmp_path: Path) -> None:
    # With the log on, the log's end callback is what releases the graph generation (one
    # callback on the body, not two): a stream counts as in flight until it ends, and a request
    # answered by the gateway itself (a 404, a 502) is released once, not twice.
    port, log = free_port(), tmp_path / "access.json"
    with refusing_port() as dead:
        async with backend() as be:
            path = tmp_path / "gw.hcl"
            path.write_text(
                _config(port, be.url, f"http://127.0.0.1:{dead}", f'access_log {{ path = "{log}" }}' + SSE)
            )
            async with Gateway(str(path)) as gateway, httpx.AsyncClient() as client:
                base = f"http://127.0.0.1:{port}"
                statuses = [
                    (await client.get(f"{base}{p}")).status_code for p in ("/app/json", "/nowhere", "/gone")
                ]
                assert statuses == [200, 404, 502]
                await eventually(lambda: gateway.graph.active == 0)
                async with client.stream("GET", f"{base}/sse?n=2") as stream:
                    events = stream.aiter_bytes()
                    assert b"event 0" in await events.__anext__()
                    assert gateway.graph.active == 1
                    await be.step()
                    assert b"event 1" in b"".join([chunk async for chunk in events])
                await eventually(lambda: gateway.graph.active == 0)
    assert [line["status"] for line in _lines(log)] == [200, 404, 502, 200]


async def test_a_log_file_that_cannot_be_opened_fails_the_reload_and_changes_nothing(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "access.json"
    unwritable = f'access_log {{ path = "{tmp_path / "missing-dir" / "access.json"}" }}'
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(_config(port, be.url, be.url, unwritable))
        with pytest.raises(FileNotFoundError):
            async with Gateway(str(path)):
                pass
        path.write_text(_config(port, be.url, be.url, f'access_log {{ path = "{log}" }}'))
        async with Gateway(str(path)) as gateway, httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/app/json"
            keys = gateway.store.keys()
            path.write_text(_config(port, be.url, be.url, unwritable))
            with pytest.raises(FileNotFoundError):
                await gateway.reload()
            assert gateway.store.keys() == keys and gateway.graph.generation == 1
            assert (await client.get(f"{url}?after-the-failed-reload")).status_code == 200
    assert [line["path"] for line in _lines(log)] == ["/app/json?after-the-failed-reload"]


async def test_no_header_is_logged_by_default_and_the_trace_id_is_null_without_tracing(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.json"
    await _serve(tmp_path, f'access_log {{ path = "{log}" }}')
    for line in _lines(log):
        assert line["trace_id"] is None
        assert not [k for k in line if re.match(r"(request|downstream)_[A-Z]", k)]


async def test_opt_in_header_fields_with_credentials_always_redacted(tmp_path: Path) -> None:
    """Traefik's `fields.headers`: per-name modes over a default; credentials are redacted even
    when asked to keep them, and a redacted or dropped value never reaches the file."""
    log = tmp_path / "access.json"
    headers = """
  headers {
    default_mode = "drop"
    names = {
      "user-agent"    = "keep"
      "Authorization" = "keep"
      "X-API-Key"     = "keep"
      "Cookie"        = "drop"
      "Accept"        = "redact"
      "Content-Type"  = "keep"
      "X-Backend"     = "keep"
    }
  }"""
    await _serve(tmp_path, f'access_log {{\n path = "{log}"\n{headers}\n}}')
    ok = _lines(log)[0]
    assert ok["request_User-Agent"].startswith("python-httpx/")
    assert ok["request_Authorization"] == ok["request_X-Api-Key"] == "REDACTED"
    assert ok["request_Accept"] == "REDACTED"
    assert "request_Cookie" not in ok and "request_Host" not in ok  # dropped: listed, and by default
    assert ok["downstream_Content-Type"] == "application/json" and ok["downstream_X-Backend"] == "yes"
    assert "sekret" not in log.read_text()


async def test_default_mode_keep_still_redacts_credentials(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    await _serve(tmp_path, f'access_log {{\n path = "{log}"\n headers {{ default_mode = "keep" }}\n}}')
    ok = _lines(log)[0]
    assert ok["request_Host"].startswith("127.0.0.1:")
    assert ok["request_Authorization"] == ok["request_Cookie"] == ok["request_X-Api-Key"] == "REDACTED"
    assert "sekret" not in log.read_text()


async def test_the_trace_id_is_the_requests_w3c_trace_id(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    port = free_port()
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        tracing = 'tracing { propagation = ["w3c"] }'
        path.write_text(
            _config(port, be.url, "http://127.0.0.1:1", f'access_log {{ path = "{log}" }}\n{tracing}')
        )
        async with Gateway(str(path)), httpx.AsyncClient() as client:
            parent = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
            await client.get(f"http://127.0.0.1:{port}/app/json", headers=parent)
            await client.get(f"http://127.0.0.1:{port}/app/json")
    given, fresh = _lines(log)
    assert given["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert re.fullmatch(r"[0-9a-f]{32}", fresh["trace_id"]) and fresh["trace_id"] != given["trace_id"]
    sent = [s.header("traceparent") for s in be.seen]
    assert all(tp is not None and fresh["trace_id"] in tp for tp in sent[1:])


async def test_response_size_is_the_body_bytes_sent_whatever_the_framing(tmp_path: Path) -> None:
    """The size comes from the upstream exchange's own count (no wrapper counts chunks): a chunked
    stream, a body large enough to arrive in many reads, a HEAD (no body), a body the upstream
    cut short, and a response of the gateway's own."""
    port, log = free_port(), tmp_path / "access.json"
    async with backend() as be:
        path = tmp_path / "gw.hcl"
        path.write_text(
            f'entrypoints "web" {{ address = "127.0.0.1:{port}" }}\n'
            'routers "all" {\n  rule    = "PathPrefix(`/`) && !Path(`/nowhere`)"\n  service = "app"\n}\n'
            f'services "app" {{\n  load_balancer {{ servers = [{{ url = "{be.url}" }}] }}\n}}\n'
            f'access_log {{ path = "{log}" }}\n'
        )
        async with Gateway(str(path)), httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{port}"
            chunked = await client.get(f"{base}/chunked?n=5")
            big = await client.get(f"{base}/big?size=200000")
            head = await client.head(f"{base}/json")
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"{base}/cut")
            missing = await client.get(f"{base}/nowhere")
    assert chunked.content == b"".join(b"chunk%d;" % i for i in range(5)) and len(big.content) == 200000
    assert head.status_code == 200 and missing.status_code == 404
    sizes = {line["path"]: line["response_size"] for line in _lines(log)}
    assert sizes == {
        "/chunked?n=5": len(chunked.content),
        "/big?size=200000": 200000,
        "/json": 0,
        "/cut": 10,
        "/nowhere": len(missing.content),
    }
