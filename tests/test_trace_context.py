"""W3C Trace Context and B3 parsing and formatting (runtime/protocols/trace_context.py).

The cases follow the W3C Trace Context specification's own examples and its test suite's
categories (version, ids, flags, lengths, case) and the B3 propagation README's examples."""

from __future__ import annotations

import random

import pytest

from a3s_gateway.runtime.protocols.trace_context import (
    Incoming,
    Propagation,
    SpanContext,
    decide,
    format_b3,
    format_b3_multi,
    format_traceparent,
    parse_b3,
    parse_b3_multi,
    parse_traceparent,
    parse_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


def test_traceparent_valid() -> None:
    assert parse_traceparent(VALID) == Incoming(TRACE, SPAN, True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == Incoming(TRACE, SPAN, False)
    # Only bit 0 is read: other flag bits set by a newer sender do not matter.
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-03") == Incoming(TRACE, SPAN, True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-02") == Incoming(TRACE, SPAN, False)
    assert parse_traceparent(f"  {VALID}\t") == Incoming(TRACE, SPAN, True)  # OWS around the value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex
        f"00-{TRACE}-{SPAN.upper()}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",  # short trace id
        f"00-{TRACE}0-{SPAN}-01",  # long trace id
        f"00-{TRACE}-{SPAN[:-1]}-01",
        f"00-{TRACE}-{SPAN}-1",  # short flags
        f"00-{TRACE}-{SPAN}-0g",  # bad hex
        f"00-{TRACE}-{SPAN}-01-",  # version 00 is exactly 55 characters
        f"00-{TRACE}-{SPAN}-01-extra",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"0-{TRACE}-{SPAN}-01",
        f"zz-{TRACE}-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        f"cc-{TRACE}-{SPAN}-01x",  # a future version must go on with "-"
    ],
)
def test_traceparent_invalid(value: str) -> None:
    assert parse_traceparent(value) is None


def test_traceparent_future_version() -> None:
    """§3.2.4: a higher version is read as 00 from its first 55 characters, then '-' or the end."""
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01") == Incoming(TRACE, SPAN, True)
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01-what-the-future-holds") == Incoming(TRACE, SPAN, True)


def test_traceparent_format() -> None:
    assert format_traceparent(SpanContext(TRACE, SPAN, True)) == VALID
    assert format_traceparent(SpanContext(TRACE, SPAN, False)) == f"00-{TRACE}-{SPAN}-00"


def test_tracestate_kept_joined_and_validated() -> None:
    assert parse_tracestate(["congo=t61rcWkgMzE"]) == "congo=t61rcWkgMzE"
    assert parse_tracestate(["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"]) == (
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    assert parse_tracestate(["a=1 , ,b=2"]) == "a=1,b=2"  # empty members and OWS dropped
    assert parse_tracestate(["tenant@vendor=x"]) == "tenant@vendor=x"
    assert parse_tracestate([]) == ""
    for bad in (["Upper=1"], ["a=1,a=2"], ["novalue"], ["a=b=c"], ["a= "], ["@x=1"]):
        assert parse_tracestate(bad) == "", bad
    assert parse_tracestate([",".join(f"k{i}=v" for i in range(32))]).count("=") == 32
    assert parse_tracestate([",".join(f"k{i}=v" for i in range(33))]) == ""  # more than 32 members


def test_tracestate_truncated_past_512() -> None:
    """§3.3.1.5: members longer than 128 characters go first, then members from the end."""
    long = "big=" + "x" * 200
    members = [f"k{i}={'v' * 40}" for i in range(12)]  # 12 x 44 characters + commas: 539
    kept = parse_tracestate([",".join([members[0], long, *members[1:]])])
    assert "big=" not in kept
    assert len(kept) <= 512
    assert kept.split(",") == members[: len(kept.split(","))]
    assert len(kept.split(",")) == 11


def test_b3_single() -> None:
    tid64 = "a3ce929d0e0e4736"
    assert parse_b3(f"{TRACE}-{SPAN}-1-{'05e3ac9a4f6e3b90'}") == Incoming(TRACE, SPAN, True)
    assert parse_b3(f"{TRACE}-{SPAN}") == Incoming(TRACE, SPAN, None)
    assert parse_b3(f"{TRACE}-{SPAN}-0") == Incoming(TRACE, SPAN, False)
    assert parse_b3(f"{TRACE}-{SPAN}-d") == Incoming(TRACE, SPAN, True, debug=True)
    assert parse_b3(f"{tid64}-{SPAN}-1") == Incoming("0" * 16 + tid64, SPAN, True)  # 64-bit, padded
    assert parse_b3("0") == Incoming(sampled=False)
    assert parse_b3("1") == Incoming(sampled=True)
    assert parse_b3("d") == Incoming(sampled=True, debug=True)
    for bad in ("", "2", f"{TRACE}", f"{TRACE}-{SPAN}-x", f"{TRACE}-{SPAN}-1-zz", f"{'0' * 32}-{SPAN}",
                f"{TRACE}-{'0' * 16}", f"{TRACE[:20]}-{SPAN}", f"{TRACE}-{SPAN}-1-{SPAN}-1",
                f"{TRACE.upper()}-{SPAN}"):  # fmt: skip
        assert parse_b3(bad) is None, bad


def test_b3_format() -> None:
    ctx = SpanContext(TRACE, SPAN, True)
    assert format_b3(ctx, "05e3ac9a4f6e3b90") == f"{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90"
    assert format_b3(SpanContext(TRACE, SPAN, False), None) == f"{TRACE}-{SPAN}-0"
    assert format_b3(SpanContext(TRACE, SPAN, True, debug=True), None) == f"{TRACE}-{SPAN}-d"
    assert format_b3_multi(ctx, "05e3ac9a4f6e3b90") == [
        (b"x-b3-traceid", TRACE.encode()),
        (b"x-b3-spanid", SPAN.encode()),
        (b"x-b3-parentspanid", b"05e3ac9a4f6e3b90"),
        (b"x-b3-sampled", b"1"),
    ]
    assert format_b3_multi(SpanContext(TRACE, SPAN, True, debug=True), None)[-1] == (b"x-b3-flags", b"1")


def test_b3_multi() -> None:
    ids = {b"x-b3-traceid": TRACE, b"x-b3-spanid": SPAN}
    assert parse_b3_multi(ids) == Incoming(TRACE, SPAN, None)
    assert parse_b3_multi({**ids, b"x-b3-sampled": "1"}) == Incoming(TRACE, SPAN, True)
    assert parse_b3_multi({**ids, b"x-b3-sampled": "false"}) == Incoming(TRACE, SPAN, False)  # legacy
    assert parse_b3_multi({**ids, b"x-b3-flags": "1"}) == Incoming(TRACE, SPAN, True, debug=True)
    assert parse_b3_multi({b"x-b3-traceid": "a3ce929d0e0e4736", b"x-b3-spanid": SPAN}) == Incoming(
        "0" * 16 + "a3ce929d0e0e4736", SPAN, None
    )
    assert parse_b3_multi({b"x-b3-sampled": "0"}) == Incoming(sampled=False)  # a decision alone
    assert parse_b3_multi({b"x-b3-traceid": TRACE}) is None  # half a context
    assert parse_b3_multi({b"x-b3-traceid": TRACE, b"x-b3-spanid": "nope", b"x-b3-sampled": "1"}) == (
        Incoming(sampled=True)
    )


def _raw(**fields: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in fields.items()]


def test_extract_order_and_fallbacks() -> None:
    b3_trace = "1" * 32
    both = [*_raw(traceparent=VALID, tracestate="a=1"), (b"b3", f"{b3_trace}-{SPAN}-0".encode())]
    assert Propagation(["w3c", "b3"]).extract(both) == Incoming(TRACE, SPAN, True, "a=1")
    assert Propagation(["b3", "w3c"]).extract(both) == Incoming(b3_trace, SPAN, False)
    # An invalid traceparent falls through to B3; its tracestate is not kept.
    bad = [(b"traceparent", b"00-zz"), (b"tracestate", b"a=1"), (b"b3", f"{b3_trace}-{SPAN}".encode())]
    assert Propagation(["w3c", "b3"]).extract(bad) == Incoming(b3_trace, SPAN, None)
    # A format that is not configured is not read.
    assert Propagation(["w3c"]).extract([(b"b3", f"{b3_trace}-{SPAN}".encode())]) == Incoming()
    # A decision alone counts when no format has a context.
    assert Propagation(["w3c", "b3"]).extract([(b"b3", b"0")]) == Incoming(sampled=False)
    # Two traceparent fields cannot be one context.
    assert Propagation(["w3c"]).extract([(b"traceparent", VALID.encode())] * 2) == Incoming()
    # B3 multi-header through the `b3` format, and single through `b3multi`.
    multi = _raw(x_b3_traceid=TRACE, x_b3_spanid=SPAN, x_b3_sampled="1")
    assert Propagation(["b3"]).extract(multi) == Incoming(TRACE, SPAN, True)
    assert Propagation(["b3multi"]).extract([(b"b3", f"{TRACE}-{SPAN}-1".encode())]) == Incoming(
        TRACE, SPAN, True
    )


def test_inject_every_format() -> None:
    ctx = SpanContext(TRACE, SPAN, True, "a=1")
    out = Propagation(["w3c", "b3", "b3multi"]).inject(ctx, "05e3ac9a4f6e3b90")
    assert out[:3] == [
        (b"traceparent", VALID.encode()),
        (b"tracestate", b"a=1"),
        (b"b3", f"{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90".encode()),
    ]
    assert (b"x-b3-parentspanid", b"05e3ac9a4f6e3b90") in out
    assert Propagation(["w3c"]).fields == {b"traceparent", b"tracestate"}
    assert b"x-b3-sampled" in Propagation(["b3"]).fields


def test_decide_is_parent_based() -> None:
    rng = random.Random(1)
    assert decide(Incoming(TRACE, SPAN, True), 0.0, rng) is True
    assert decide(Incoming(TRACE, SPAN, False), 1.0, rng) is False
    assert decide(Incoming(sampled=False), 1.0, rng) is False  # b3: 0
    assert decide(Incoming(TRACE, SPAN, None), 1.0, rng) is True  # B3 deferred: our rate
    assert decide(Incoming(), 0.0, rng) is False
    drawn = [decide(Incoming(), 0.25, rng) for _ in range(4000)]
    assert 700 < sum(drawn) < 1300
