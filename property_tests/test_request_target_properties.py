"""Properties of the request-target normal form (compiler/request_target.py), with hypothesis.

- For any path, what the backend receives, read by an RFC 3986 resolver (dot-segments removed,
  §5.2.4) and by a percent-decoding resolver (decode, merge slashes, then remove dot-segments, as
  nginx and most frameworks do), falls under the router prefix that matched. The router is the
  gateway's own compiled matcher, run on the target the gateway forwards.
- The normal form is a fixed point: normalising it again changes nothing.
- The query string is never changed; a refused target raises BadTarget, nothing else.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from hypothesis import example, given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.request_target import DEFAULT_PATHS, BadTarget
from a3s_gateway.compiler.route import HttpProbe
from a3s_gateway.compiler.rules import compile_http, parse_rule

SETTINGS = settings(max_examples=1000, deadline=None)
PREFIXES = ["/admin", "/admin/keys", "/public", "/"]
ROUTERS = []
for prefix in PREFIXES:
    parsed = parse_rule(f"PathPrefix(`{prefix}`)", "http")
    assert parsed.ast is not None
    ROUTERS.append((prefix, compile_http(parsed.ast)))
ROUTERS.sort(key=lambda r: -len(r[0]))  # Traefik's default priority: the longer rule first

# Pieces an attacker would combine: separators, dot-segments spelled every way, encodings of the
# guarded characters in both cases, backslashes, parameters, fragments, and the guarded names.
pieces = st.sampled_from(
    [
        "/", "//", ".", "..", "%2e", "%2E", "%2e%2e", ".%2E", "%2f", "%2F", "%5c", "%5C", "\\",
        "%25", "%252e", "%00", "%3b", "%3B", ";", "..;", "%3f", "%23", "#", "%41", "%61", "%64",
        "%7e", "%c3%a9", "%", "%g1", "admin", "Admin", "public", "keys", "a", "~", "-", "?",
    ]
)  # fmt: skip
paths = st.lists(pieces, min_size=1, max_size=14).map(lambda parts: "/" + "".join(parts))


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
