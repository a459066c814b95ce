"""Tracing through a running gateway: real clients, a real backend that records the context it
receives, and a real OTLP/HTTP endpoint (tests/otlp_collector.py) that decodes the spans the
gateway exports with the OpenTelemetry SDK."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from a3s_gateway.runtime.gateway import Gateway
from a3s_gateway.runtime.protocols.trace_context import parse_b3, parse_traceparent

from .backends import Backend, Ex, Seen
from .otlp_collector import Collector, otlp_collector
from .stubs import eventually, free_port, refusing_port

pytestmark = pytest.mark.anyio

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
PARENT = {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "congo=t61rcWkgMzE"}


class FlakyBackend(Backend):
    """`/flaky` answers 503 the first time, then 200 (a retry middleware tries it twice)."""

    flaky_left = 1

    async def _do_flaky(self, ex: Ex) -> None:
        await self._body(ex)
        if self.flaky_left:
            self.flaky_left -= 1
            await ex.respond(503, b"busy")
        else:
            await ex.respond(200, b"ok")


@dataclass
class Running:
    backend: FlakyBackend
    gateway: Gateway
    client: httpx.AsyncClient
    base: str
    path: Path

    def configure(self, tracing: str, servers: list[str] | None = None) -> None:
        port = int(self.base.rpartition(":")[2])
        self.path.write_text(_config(port, servers or [self.backend.url], tracing))


@asynccontextmanager
async def running(tmp_path: Path, tracing: str, dead: int | None = None) -> AsyncIterator[Running]:
    """A gateway with `tracing` in front of a FlakyBackend (behind a refusing server first, if
    `dead`); it is stopped, and its exporter flushed, when the block ends."""
    port = free_port()
    async with anyio.create_task_group() as tg:
        be = FlakyBackend()
        await tg.start(be._serve)
        path = tmp_path / "gw.hcl"
        servers = [*([f"http://127.0.0.1:{dead}"] if dead else []), be.url]
        path.write_text(_config(port, servers, tracing))
        async with Gateway(str(path)) as gateway, httpx.AsyncClient() as client:
            yield Running(be, gateway, client, f"http://127.0.0.1:{port}", path)
        tg.cancel_scope.cancel()


def _config(port: int, servers: list[str], tracing: str) -> str:
    urls = ", ".join(f'{{ url = "{u}" }}' for u in servers)
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{port}" }}
middlewares "retry" {{
  type              = "retry"
  max_retries       = 2
  retry_interval_ms = 0
  retry_on_statuses = [503]
}}
routers "app" {{
  rule        = "PathPrefix(`/`)"
  service     = "app"
  middlewares = ["retry"]
}}
services "app" {{
  load_balancer {{ servers = [{urls}] }}
}}
{tracing}
"""


def _otlp(collector: Collector, extra: str = "") -> str:
    return f'tracing {{\n  {extra}\n  otlp {{ endpoint = "{collector.url}" }}\n}}'


def _context(seen: Seen) -> tuple[str, str, bool]:
    parsed = parse_traceparent(seen.header("traceparent") or "")
    assert parsed is not None and parsed.trace_id and parsed.span_id and parsed.sampled is not None
    return parsed.trace_id, parsed.span_id, parsed.sampled


async def test_spans_are_exported_with_their_parents(tmp_path: Path) -> None:
    """server span -> chain span -> one client span per attempt; the backend's parent is its attempt."""
    with otlp_collector() as collector:
        async with running(tmp_path, _otlp(collector, 'service_name = "edge"')) as run:
            headers = {**PARENT, "authorization": "Bearer sekret", "user-agent": "tester"}
            reply = await run.client.get(f"{run.base}/flaky?api_key=sekret", headers=headers)
            assert reply.status_code == 200
        be = run.backend
        # The gateway's shutdown flushed its exporter: every span is there now.
        server, chain, attempts = (
            collector.by_kind("SERVER"),
            collector.by_kind("INTERNAL"),
            collector.by_kind("CLIENT"),
        )
        assert len(server) == 1 and len(chain) == 1 and len(attempts) == 2
        assert {s.trace_id for s in collector.spans} == {TRACE}
        assert server[0].parent_id == SPAN
        assert chain[0].parent_id == server[0].span_id and chain[0].name == "router app"
        assert all(a.parent_id == chain[0].span_id for a in attempts)
        # The backend saw each attempt as its parent, in the caller's trace, with its tracestate.
        assert [_context(seen) for seen in be.seen] == [(TRACE, a.span_id, True) for a in attempts]
        assert [seen.header("tracestate") for seen in be.seen] == ["congo=t61rcWkgMzE"] * 2
        first, second = attempts
        assert first.attributes["http.response.status_code"] == 503 and first.error
        assert "http.request.resend_count" not in first.attributes
        assert second.attributes["http.request.resend_count"] == 1 and not second.error
        assert second.attributes["url.full"] == be.url + "/flaky"
        assert second.attributes["server.port"] == be.port
        attrs = server[0].attributes
        assert attrs["http.request.method"] == "GET" and attrs["http.response.status_code"] == 200
        assert (
            attrs["url.path"] == "/flaky" and attrs["a3s.router"] == "app" and attrs["a3s.service"] == "app"
        )
        assert attrs["a3s.retry_attempts"] == 1 and attrs["user_agent.original"] == "tester"
        assert server[0].resource["service.name"] == "edge"
        assert "sekret" not in repr(collector.spans)


async def test_a_request_without_context_starts_a_new_trace(tmp_path: Path) -> None:
    with otlp_collector() as collector, refusing_port() as dead:
        # The refusing server first: the connect failure moves the request to the live one, one
        # attempt span each.
        async with running(tmp_path, _otlp(collector), dead) as run:
            for bad in ({}, {"traceparent": "00-xyz"}, {"traceparent": f"00-{'0' * 32}-{SPAN}-01"}):
                assert (await run.client.get(f"{run.base}/json", headers=bad)).status_code == 200
        be = run.backend
        servers = collector.by_kind("SERVER")
        assert len(servers) == 3 and all(s.parent_id == "" for s in servers)
        assert len({s.trace_id for s in servers}) == 3 and TRACE not in {s.trace_id for s in servers}
        received = [_context(seen) for seen in be.seen]
        assert {t for t, _, _ in received} == {s.trace_id for s in servers}
        attempts = collector.by_kind("CLIENT")
        failed = [a for a in attempts if a.error]
        assert failed and all(a.attributes.get("error.type") for a in failed)
        assert {s for _, s, _ in received} <= {a.span_id for a in attempts if not a.error}


async def test_propagation_only_w3c_and_b3(tmp_path: Path) -> None:
    """No exporter: each attempt still gets a fresh span id; the client's B3 fields are replaced."""
    async with running(tmp_path, 'tracing { propagation = ["b3", "w3c", "b3multi"] }') as run:
        b3 = {"b3": f"{TRACE}-{SPAN}-1", "x-b3-traceid": "1" * 32, "x-b3-spanid": "2" * 16}
        assert (await run.client.get(f"{run.base}/flaky", headers=b3)).status_code == 200
        assert (await run.client.get(f"{run.base}/json", headers={"b3": "0"})).status_code == 200
    first, second, unsampled = run.backend.seen
    spans = set()
    for seen in (first, second):
        single = parse_b3(seen.header("b3") or "")
        assert single is not None and (single.trace_id, single.sampled) == (TRACE, True)
        assert (seen.header("b3") or "").endswith(f"-{SPAN}")  # the caller's span is the parent
        assert _context(seen) == (TRACE, single.span_id, True)
        assert seen.header("x-b3-traceid") == TRACE and seen.header("x-b3-spanid") == single.span_id
        assert [k for k, _ in seen.headers].count("x-b3-traceid") == 1
        spans.add(single.span_id)
    assert len(spans) == 2 and SPAN not in spans
    # `b3: 0`: a new trace, not sampled, and the decision goes on.
    trace_id, _, sampled = _context(unsampled)
    assert trace_id != TRACE and sampled is False and unsampled.header("x-b3-sampled") == "0"


async def test_sample_rate_zero_samples_nothing_new_but_follows_a_sampled_parent(tmp_path: Path) -> None:
    with otlp_collector() as collector:
        async with running(tmp_path, _otlp(collector, "sample_rate = 0")) as run:
            await run.client.get(f"{run.base}/json")
            await run.client.get(f"{run.base}/json", headers=PARENT)
        assert [_context(seen)[2] for seen in run.backend.seen] == [False, True]
        assert {s.trace_id for s in collector.spans} == {TRACE}


async def test_a_reload_that_moves_the_exporter_flushes_the_old_one(tmp_path: Path) -> None:
    """A stream in flight across the reload ends its spans in the old exporter, which is shut
    down (flushed) after them; the next request's spans go to the new one."""
    with otlp_collector() as old, otlp_collector() as new:
        async with running(tmp_path, _otlp(old)) as run:
            async with run.client.stream("GET", f"{run.base}/sse?n=2", headers=PARENT) as stream:
                chunks = stream.aiter_bytes()
                assert b"event 0" in await chunks.__anext__()
                run.configure(_otlp(new))
                await run.gateway.reload()
                await run.backend.step()
                async for _ in chunks:
                    pass
            await run.client.get(f"{run.base}/json")
            # The old exporter is retired once the stream is over: its spans are flushed.
            await eventually(lambda: len(old.by_kind("SERVER")) == 1)
        assert {s.trace_id for s in old.spans} == {TRACE} and len(old.spans) == 3
        assert len(new.by_kind("SERVER")) == 1 and TRACE not in {s.trace_id for s in new.spans}


def test_export_without_the_otel_extra_is_a_compile_error(tmp_path: Path) -> None:
    """Hide the SDK as an install without the extra would, and compile: the error names the extra."""
    path = tmp_path / "gw.hcl"
    path.write_text(_config(8080, ["http://127.0.0.1:1"], "tracing {\n  otlp { }\n}"))
    propagation_only = tmp_path / "ok.hcl"
    propagation_only.write_text(_config(8080, ["http://127.0.0.1:1"], 'tracing { propagation = ["w3c"] }'))
    script = (
        "import sys; sys.modules['opentelemetry'] = None; "
        "from a3s_gateway.runtime.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "NO_COLOR": "1"}
    failed = subprocess.run(
        [sys.executable, "-c", script, "compile", "--check", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert failed.returncode == 1, failed.stderr
    out = failed.stdout + failed.stderr
    assert f"{path}:" in out and "pip install 'a3s-gateway[otel]'" in out and "Traceback" not in out
    ok = subprocess.run(
        [sys.executable, "-c", script, "compile", "--check", str(propagation_only)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


async def test_a_reload_turns_tracing_on_and_off(tmp_path: Path) -> None:
    """Without tracing nothing is read or sent (the dispatcher observes nothing, the proxy has no
    wrapper); a reload that adds the block traces the next request, one that removes it stops."""
    async with running(tmp_path, "") as run:
        assert not run.gateway._observing
        await run.client.get(f"{run.base}/json", headers=PARENT)
        run.configure('tracing { propagation = ["b3"] }')
        await run.gateway.reload()
        await run.client.get(f"{run.base}/json", headers=PARENT)
        run.configure("")
        await run.gateway.reload()
        assert not run.gateway._observing
        await run.client.get(f"{run.base}/json", headers=PARENT)
    before, traced, after = run.backend.seen
    # Untraced, the caller's context goes through untouched, as any other header.
    assert before.header("traceparent") == after.header("traceparent") == PARENT["traceparent"]
    assert before.header("b3") is after.header("b3") is None
    single = parse_b3(traced.header("b3") or "")
    assert single is not None and single.trace_id not in (None, TRACE)  # `b3` reads B3 only: a new trace
    assert traced.header("traceparent") == PARENT["traceparent"]  # not a configured format: untouched


async def test_a_request_cancelled_before_its_head_ends_its_spans(tmp_path: Path) -> None:
    """A client that leaves while the backend stalls: the request is cancelled, its spans end
    (error.type "cancelled"), and a reload's retired exporter is not kept waiting for them."""
    with otlp_collector() as old, otlp_collector() as new:
        async with running(tmp_path, _otlp(old)) as run:
            with anyio.move_on_after(0.5):  # the client gives up (not a timing assertion)
                await run.client.get(f"{run.base}/stall", headers=PARENT)
            await eventually(lambda: run.backend.abandoned == 1)
            run.configure(_otlp(new))
            await run.gateway.reload()
            await eventually(lambda: len(old.by_kind("SERVER")) == 1)
        (server,), (chain,), (attempt,) = (
            old.by_kind("SERVER"),
            old.by_kind("INTERNAL"),
            old.by_kind("CLIENT"),
        )
        assert server.error and server.attributes["error.type"] == "cancelled"
        assert chain.error and attempt.error and attempt.parent_id == chain.span_id


async def test_an_http2_request_is_traced(tmp_path: Path) -> None:
    """HTTP/2 in, HTTP/1.1 up: the context is read from the HTTP/2 fields and sent on."""
    with otlp_collector() as collector:
        async with running(tmp_path, _otlp(collector)) as run:
            async with httpx.AsyncClient(http1=False, http2=True) as h2:
                reply = await h2.get(f"{run.base}/json", headers=PARENT)
            assert reply.status_code == 200 and reply.http_version == "HTTP/2"
        (server,), (attempt,) = collector.by_kind("SERVER"), collector.by_kind("CLIENT")
        assert server.parent_id == SPAN and server.attributes["network.protocol.version"] == "2"
        assert _context(run.backend.seen[0]) == (TRACE, attempt.span_id, True)
