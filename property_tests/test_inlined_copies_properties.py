"""Copies the request path inlines for speed behave exactly as their originals.

- `Headers` made without its `__init__` (`object.__new__` and `raw` set: a Python frame less per
  request) by the ingress (`build_request`), the proxy (`_headers_up`) and the upstream client
  (its socket side is in tests/test_inlined_copies.py): for any field list and any sequence of
  calls of every public method, such a Headers answers and changes exactly as `Headers(list)`.
  A method added to Headers fails `test_every_public_method_is_exercised` until it is exercised
  here; a slot that `__init__` fills fails the comparison (the bare one lacks it).
- `Request.is_grpc`, which `proxy.forward` spells out on the field names it lists anyway: the
  client's `grpc-timeout` bounds the upstream exchange exactly for the requests `is_grpc` says
  are gRPC (the first Content-Type's value starts with `application/grpc`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.compiler.schema import EntrypointConfig, ProxyConfig, ServiceTimeouts
from a3s_gateway.runtime.api import Backend, Headers, Request, empty_body
from a3s_gateway.runtime.events import RequestHead
from a3s_gateway.runtime.ingress import ConnectionSettings, build_request
from a3s_gateway.runtime.proxy import _headers_up, forward
from a3s_gateway.runtime.upstream.client import UpstreamClient

NAMES = ["host", "Accept", "content-type", "x-request-id", "x-forwarded-for", "set-cookie", "x-a", "X-A"]
VALUES: list[str | bytes] = ["a.com", "", "text/plain", "1.2.3.4", "é", b"raw", b"a, b", "application/grpc"]

names = st.sampled_from(NAMES)
values = st.sampled_from(VALUES)
field_lists = st.lists(
    st.tuples(
        names.map(lambda n: n.lower().encode()),
        values.map(lambda v: v if isinstance(v, bytes) else v.encode()),
    ),
    max_size=6,
)

# Each public method of Headers, called with generated arguments: (name, arguments).
CALLS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "get": st.tuples(names, st.sampled_from([None, "default"])),
    "get_all": st.tuples(names),
    "get_joined": st.tuples(names),
    "set": st.tuples(names, values),
    "add": st.tuples(names, values),
    "remove": st.tuples(names),
    "setdefault": st.tuples(names, values),
    "items": st.just(()),
    "copy": st.just(()),
    "__contains__": st.tuples(st.one_of(names, st.just(b"host"), st.none())),
    "__len__": st.just(()),
    "__repr__": st.just(()),
}
calls = st.lists(
    st.one_of(*(args.map(lambda a, m=method: (m, a)) for method, args in CALLS.items())), max_size=8
)


def _observed(headers: Headers, sequence: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """What each call answers and the field list after it (a copy: its type and list too)."""
    seen: list[Any] = []
    for method, arguments in sequence:
        answer = getattr(headers, method)(*arguments)
        if method == "items":
            answer = list(answer)
        elif method == "copy":
            answer = (type(answer), answer.raw, answer.raw is headers.raw)
        seen.append((method, answer, list(headers.raw)))
    return seen


def _same_as_constructed(made: Headers, sequence: list[tuple[str, tuple[Any, ...]]]) -> None:
    assert type(made) is Headers
    reference = Headers(list(made.raw))
    assert _observed(made, sequence) == _observed(reference, sequence)


# What the class holds besides the methods called: the list itself (the slot), a constructor
# (it calls __init__) and the interpreter's bookkeeping.
NOT_CALLED = {"raw", "from_pairs", "__init__", "__slots__", "__module__", "__qualname__", "__doc__"}
NOT_CALLED |= {"__annotations__", "__firstlineno__", "__static_attributes__"}


def test_every_public_method_is_exercised() -> None:
    assert set(vars(Headers)) - NOT_CALLED == set(CALLS)
    assert Headers.__slots__ == ("raw",)  # the one attribute the bare copies set


@settings(max_examples=300, deadline=None)
@given(field_lists, calls)
def test_a_bare_headers_behaves_as_a_constructed_one(raw: list[tuple[bytes, bytes]], sequence: Any) -> None:
    bare = object.__new__(Headers)
    bare.raw = list(raw)
    _same_as_constructed(bare, sequence)


SETTINGS = ConnectionSettings.from_config(EntrypointConfig(address="127.0.0.1:0"), scheme="http")


@settings(max_examples=300, deadline=None)
@given(field_lists, calls, st.booleans())
def test_the_ingress_request_headers_behave_as_constructed_ones(
    raw: list[tuple[bytes, bytes]], sequence: Any, trusted: bool
) -> None:
    head = RequestHead(1, b"GET", b"/", raw)
    request = build_request(head, empty_body(), SETTINGS, ("10.0.0.1", 1234), peer_trusted=trusted, sni=None)
    _same_as_constructed(request.headers, sequence)


@settings(max_examples=300, deadline=None)
@given(field_lists, calls, st.sampled_from([None, b"backend:9000"]), st.sampled_from([0, None]))
def test_the_upstream_request_headers_behave_as_constructed_ones(
    raw: list[tuple[bytes, bytes]], sequence: Any, host: bytes | None, length: int | None
) -> None:
    request = Request(
        "GET", "/", Headers(raw), client_addr=("10.0.0.1", 1), client_ip="10.0.0.1", content_length=length
    )
    made = _headers_up(request, raw, [name for name, _ in raw], host, True, b"fallback")
    _same_as_constructed(made, sequence)


# --------------------------------------------------------------------------- Request.is_grpc

CONTENT_TYPES = [b"application/grpc", b"application/grpc+proto", b"application/grpc-web", b"Application/grpc"]
CONTENT_TYPES += [b"application/json", b"text/plain", b"", b" application/grpc"]
DEADLINE = 0.005  # grpc-timeout 5m: shorter than any total configured here
grpc_fields = st.lists(
    st.one_of(
        st.tuples(st.just(b"content-type"), st.sampled_from(CONTENT_TYPES)),
        st.tuples(st.sampled_from([b"accept", b"te", b"x-content-type"]), st.sampled_from(CONTENT_TYPES)),
    ),
    max_size=4,
)


def _sent_total(forwarded: Any) -> float | None:
    """The total deadline `forward` handed the upstream client: its coroutine's argument."""
    assert forwarded.cr_code is UpstreamClient.send.__code__, "forward returns the client's send"
    try:
        timeouts: ServiceTimeouts = forwarded.cr_frame.f_locals["timeouts"]
        return timeouts.total
    finally:
        forwarded.close()


@settings(max_examples=300, deadline=None)
@given(grpc_fields, st.sampled_from([None, 60.0]))
def test_forward_bounds_exactly_the_requests_is_grpc_says_are_grpc(
    raw: list[tuple[bytes, bytes]], total: float | None
) -> None:
    request = Request("POST", "/", Headers([*raw, (b"grpc-timeout", b"5m")]), client_addr=("10.0.0.1", 1))
    config = ProxyConfig(timeouts=ServiceTimeouts(total=total))
    sent = _sent_total(forward(request, Backend("http://127.0.0.1:9"), config, _CLIENT))
    assert (sent == DEADLINE) is request.is_grpc
    assert request.is_grpc or sent == total


_CLIENT = UpstreamClient()
