"""Properties of the request-target normal form (compiler/request_target.py), with hypothesis.

- For any path, what the backend receives, read by an RFC 3986 resolver (dot-segments removed,
  §5.2.4) and by a percent-decoding resolver (decode, merge slashes, then remove dot-segments, as
  nginx and most frameworks do), falls under the router prefix that matched. The router is the
  gateway's own compiled matcher, run on the target the gateway forwards.
- The same through a running gateway: raw request lines to an HTTP/1.1 listener, a real backend
  that records the target it received and which router sent it.
- The normal form is a fixed point: normalising it again changes nothing.
- The query string is never changed; a refused target raises BadTarget, nothing else.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import anyio.from_thread
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.request_target import DEFAULT_PATHS, BadTarget
from a3s_gateway.compiler.route import HttpProbe
from a3s_gateway.compiler.rules import compile_http, parse_rule
from a3s_gateway.runtime.gateway import Gateway

SETTINGS = settings(max_examples=500, deadline=None)
PREFIXES = ["/admin", "/admin/keys", "/public", "/"]
ROUTERS = []
for prefix in PREFIXES:
    parsed = parse_rule(f"PathPrefix(`{prefix}`)", "http")
    assert parsed.ast is not None
    ROUTERS.append((prefix, compile_http(parsed.ast)))
ROUTERS.sort(key=lambda r: -len(r[0]))  # Traefik's default priority: the longer rule first

# Segments an attacker would combine: dot-segments spelled every way, the guarded names (some of
# their letters encoded), empty segments (`//`), parameters, a query; and, less often, what is refused:
# encodings of the guarded characters in both cases, backslashes, fragments, broken escapes.
ACCEPTED = (
    ["admin", "public", "keys", "..", ".", "%2e%2e", ".%2E", "%2e", "", "%61dmin", "p%75blic", "~",
     "a;b", "%41", "%c3%a9", "-", "Admin", "?q=/../"]
)  # fmt: skip
REFUSED = (
    ["%2f", "%2F", "%5c", "\\", "%25", "%252e", "%00", "%3b", "..;", ".;x", "%3f", "%23", "#", "%",
     "%g1"]
)  # fmt: skip
piece = st.sampled_from(ACCEPTED * 12 + REFUSED)  # about one piece in thirteen is refused
segment = st.lists(piece, min_size=1, max_size=3)
paths = st.lists(segment.map("".join), min_size=1, max_size=8).map(lambda parts: "/" + "/".join(parts))


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, written out as the RFC does (input buffer, output buffer)."""
    inp, out = path, ""
    while inp:
        if inp.startswith("../"):
            inp = inp[3:]
        elif inp.startswith("./"):
            inp = inp[2:]
        elif inp.startswith("/./"):
            inp = "/" + inp[3:]
        elif inp == "/.":
            inp = "/"
        elif inp.startswith("/../"):
            inp = "/" + inp[4:]
            out = out[: max(out.rfind("/"), 0)]
        elif inp == "/..":
            inp = "/"
            out = out[: max(out.rfind("/"), 0)]
        elif inp in (".", ".."):
            inp = ""
        else:
            cut = inp.find("/", 1)
            cut = len(inp) if cut < 0 else cut
            out, inp = out + inp[:cut], inp[cut:]
    return out


def rfc3986_reading(path: str) -> str:
    return remove_dot_segments(path)


def decoding_reading(path: str) -> str:
    decoded = unquote(path, encoding="latin-1")
    return remove_dot_segments(re.sub("/{2,}", "/", decoded))


def router_of(path: str) -> str:
    """Which prefix a backend-side reading of the path falls under (longest first)."""
    return next(prefix for prefix in sorted(PREFIXES, key=len, reverse=True) if path.startswith(prefix))


def routed(target: str) -> str:
    probe = HttpProbe("GET", "gw.test", *target.partition("?")[::2])
    return next(prefix for prefix, matches in ROUTERS if matches(probe))


@SETTINGS
@given(paths, st.sampled_from(["", "?q=/../%2f", "?%zz#"]))
@example("/public/../admin", "")
@example("/public/%2e%2e/admin", "")
@example("/public//..//admin/keys", "")
@example("/public/..;/admin", "")
@example("/public\\..\\admin", "")
def test_backend_readings_fall_under_the_prefix_that_matched(path: str, query: str) -> None:
    sent = path + query
    try:
        target = DEFAULT_PATHS.target("GET", sent)
    except BadTarget:
        return  # refused with 400: nothing is forwarded
    forwarded, sep, rest = target.partition("?")
    assert sep + rest == sent[len(sent.partition("?")[0]) :]  # the query string exactly as sent
    prefix = routed(target)
    assert router_of(rfc3986_reading(forwarded)) == prefix, (path, forwarded)
    assert router_of(decoding_reading(forwarded)) == prefix, (path, forwarded)
    assert DEFAULT_PATHS.target("GET", target) == target  # a fixed point


@SETTINGS
@given(st.text(max_size=40).map(lambda text: "/" + text))
def test_any_text_is_normalised_or_refused(path: str) -> None:
    try:
        target = DEFAULT_PATHS.target("GET", path)
    except BadTarget:
        return
    assert target.startswith("/")
    assert DEFAULT_PATHS.target("GET", target) == target


# -- through a running gateway ---------------------------------------------------------------------------


class Live:
    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, str]] = []  # (target, router) as the backend saw them

    def send(self, target: str) -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nhost: gw.test\r\nconnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return int(data.split(b" ", 2)[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    live = Live(_free_port())

    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            live.received.append((self.path, self.headers.get("x-router", "")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    backend = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{backend.server_address[1]}"
    config = [f'entrypoints "web" {{ address = "127.0.0.1:{live.port}" }}']
    config.append(f'services "app" {{\n  load_balancer {{ servers = [{{ url = "{upstream}" }}] }}\n}}')
    for i, prefix in enumerate(PREFIXES):
        config.append(
            f'routers "r{i}" {{\n  rule = "PathPrefix(`{prefix}`)"\n  service = "app"\n  middlewares = ["m{i}"]\n}}'
        )
        config.append(
            f'middlewares "m{i}" {{ type = "headers"; request_headers = {{ "X-Router" = "{prefix}" }} }}'
        )
    path: Path = tmp_path_factory.mktemp("live") / "gw.hcl"
    path.write_text("\n".join(config) + "\n")
    try:
        with (
            anyio.from_thread.start_blocking_portal() as portal,
            portal.wrap_async_context_manager(Gateway(str(path))),
        ):
            yield live
    finally:
        backend.shutdown()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths)
@example(path="/public/../admin/keys")
@example(path="/public/%2e%2E/admin")
def test_what_the_backend_receives_lies_under_the_prefix_that_matched(live: Live, path: str) -> None:
    live.received.clear()
    status = live.send(path)
    if status == 400:
        assert not live.received  # refused: nothing forwarded
        return
    assert status == 200, path
    ((forwarded, prefix),) = live.received
    forwarded = forwarded.partition("?")[0]
    assert router_of(rfc3986_reading(forwarded)) == prefix, (path, forwarded)
    assert router_of(decoding_reading(forwarded)) == prefix, (path, forwarded)
