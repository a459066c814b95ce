"""Reload is a pure swap: after any sequence of valid and invalid configurations, a gateway serves
exactly what a fresh gateway started on the last valid one serves.

Configurations are drawn small: which paths route to which of two services, the weights of
the first service's two real backends (0 takes no traffic) and the second's backend, a response
header, a second entrypoint or not, and settings that
change listeners and pools without changing answers (an idle timeout, a connect timeout). An
invalid one either fails to compile (a router naming a missing service) or fails after the
build (an entrypoint on a port that is in use). Each step compares the answers of every
(entrypoint, path) pair on the reloaded gateway and on a fresh one; an entrypoint that does not
exist must refuse connections. Bounded: a few examples of up to four configurations.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler import CompileError
from a3s_gateway.runtime.gateway import Gateway
from tests.stubs import free_port, free_ports, json_stub

PATHS = ("/a/1", "/b/1", "/c")
Ports = dict[str, int]
ENTRYPOINTS = ("main", "side")


@dataclass(frozen=True)
class Spec:
    routes: tuple[tuple[str, str], ...]  # (path prefix, service)
    weights: tuple[int, int]  # of s1's two backends, x and y (0: no traffic)
    backend: str  # s2's one backend, "x" or "y"
    tag: str
    side: bool  # a second entrypoint
    idle: str  # the entrypoints' idle timeout
    connect: str  # s1's connect timeout (a new upstream pool when it changes)
    broken: str | None = None  # None, "compile" or "bind"


def specs(broken: st.SearchStrategy[str | None]) -> st.SearchStrategy[Spec]:
    route = st.tuples(st.sampled_from(["/a", "/b"]), st.sampled_from(["s1", "s2"]))
    return st.builds(
        Spec,
        routes=st.lists(route, max_size=2, unique_by=lambda r: r[0]).map(tuple),
        weights=st.sampled_from([(1, 1), (1, 0), (0, 1)]),
        backend=st.sampled_from("xy"),
        tag=st.sampled_from(["1", "2"]),
        side=st.booleans(),
        idle=st.sampled_from(["30s", "60s"]),
        connect=st.sampled_from(["5s", "6s"]),
        broken=broken,
    )


def render(spec: Spec, ports: dict[str, int], urls: dict[str, str]) -> str:
    text = f"""
entrypoints "main" {{
  address = "127.0.0.1:{ports["main"]}"
  timeouts {{ idle = "{spec.idle}" }}
}}
middlewares "tag" {{
  type             = "headers"
  response_headers = {{ "x-tag" = "{spec.tag}" }}
}}
services "s1" {{
  load_balancer {{
    strategy = "weighted"
    servers = [
      {{ url = "{urls["x"]}", weight = {spec.weights[0]} }},
      {{ url = "{urls["y"]}", weight = {spec.weights[1]} }},
    ]
  }}
  timeouts {{ connect = "{spec.connect}" }}
}}
services "s2" {{
  load_balancer {{ servers = [{{ url = "{urls[spec.backend]}" }}] }}
}}
"""
    if spec.side:
        text += f'entrypoints "side" {{ address = "127.0.0.1:{ports["side"]}" }}\n'
    if spec.broken == "bind":
        text += f'entrypoints "more" {{ address = "127.0.0.1:{ports["busy"]}" }}\n'
    routes = [*spec.routes, ("/zzz", "nope")] if spec.broken == "compile" else spec.routes
    for i, (prefix, service) in enumerate(routes):
        text += f"""
routers "r{i}" {{
  rule        = "PathPrefix(`{prefix}`)"
  service     = "{service}"
  middlewares = ["tag"]
}}
"""
    return text


async def observe(ports: dict[str, int]) -> dict[tuple[str, str], Any]:
    """What each entrypoint answers on each path, on fresh connections: the set of (status,
    backend, header) over four requests, so a round robin over two backends shows both."""
    seen: dict[tuple[str, str], Any] = {}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        for entrypoint in ENTRYPOINTS:
            for path in PATHS:
                answers: set[Any] = set()
                for _ in range(4):
                    try:
                        response = await client.get(
                            f"http://127.0.0.1:{ports[entrypoint]}{path}", headers={"connection": "close"}
                        )
                    except httpx.TransportError:
                        answers.add("refused")
                        break
                    name = response.json().get("name") if response.status_code == 200 else None
                    answers.add((response.status_code, name, response.headers.get("x-tag")))
                seen[entrypoint, path] = answers
    return seen


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, str]]:
    with json_stub(lambda *_: (200, {"name": "x"})) as x, json_stub(lambda *_: (200, {"name": "y"})) as y:
        yield {"x": x, "y": y}


async def reload_sequence(sequence: list[Spec], urls: dict[str, str], directory: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        fresh: dict[Spec, dict[tuple[str, str], Any]] = {}

        async def on_free_ports(
            spec: Spec, path: Path, use: Callable[[Gateway, Ports], Awaitable[None]]
        ) -> None:
            """`use(gateway, ports)` on a gateway started on `spec`. The ports do not show in the
            answers, so they are picked just before it starts, and again when one was taken in
            between: free_ports() only names ports that were free, and the other test worker's
            clients draw their ephemeral ports from the same range."""
            for attempt in range(5):
                main, side = free_ports(2)
                ports = {"main": main, "side": side, "busy": busy}
                path.write_text(render(spec, ports, urls))
                started = False
                try:
                    async with Gateway(str(path)) as gateway:
                        started = True
                        return await use(gateway, ports)
                except OSError as exc:
                    if started or exc.errno != errno.EADDRINUSE or attempt == 4:
                        raise

        async def served_fresh(spec: Spec) -> dict[tuple[str, str], Any]:
            async def record(_gateway: Gateway, ports: Ports) -> None:
                fresh[spec] = await observe(ports)

            if spec not in fresh:
                await on_free_ports(spec, directory / "fresh.hcl", record)
            return fresh[spec]

        async def reloads(gateway: Gateway, ports: Ports) -> None:
            path, last = directory / "gw.hcl", sequence[0]
            for spec in sequence[1:]:
                binds_side = spec.side and not last.side
                for attempt in range(5):
                    if not last.side:  # a reload binds `side`, if at all: its port is picked now
                        ports["side"] = free_port()
                    path.write_text(render(spec, ports, urls))
                    try:
                        await gateway.reload()
                    except (CompileError, OSError) as exc:
                        # The new `side` port of a valid spec may have been taken since it was
                        # picked (see on_free_ports): that reload changed nothing; try another.
                        in_use = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
                        if spec.broken is None and binds_side and in_use and attempt < 4:
                            continue
                        assert spec.broken is not None
                    else:
                        assert spec.broken is None
                        last = spec
                    break
                assert await observe(ports) == await served_fresh(last), spec

        await on_free_ports(sequence[0], directory / "gw.hcl", reloads)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=specs(st.none()),
    rest=st.lists(specs(st.sampled_from([None, None, "compile", "bind"])), min_size=1, max_size=3),
)
def test_after_any_reloads_the_gateway_serves_what_a_fresh_one_on_the_last_valid_config_serves(
    anyio_backend: Any,
    backends: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    first: Spec,
    rest: list[Spec],
) -> None:
    name, options = anyio_backend
    directory = tmp_path_factory.mktemp("reload")
    anyio.run(reload_sequence, [first, *rest], backends, directory, backend=name, backend_options=options)
