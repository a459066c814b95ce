"""Properties of trace context propagation (runtime/protocols/trace_context.py), with hypothesis.

- Formatting a context and parsing it back gives the same context, for W3C traceparent, B3
  single and B3 multi-header, with 64- and 128-bit B3 trace ids.
- What the gateway sends up (`inject`) is read back (`extract`) as the same trace, the attempt's
  span as parent and the same decision, whatever the configured formats.
- Any garbage in the propagation headers never raises, and the trace that follows is a fresh,
  valid one: `extract` gives either nothing or a context whose ids are well formed and not zero.
- A tracestate that is passed on is valid again, at most 32 members and 512 characters.
"""

from __future__ import annotations

import random
import re

from hypothesis import example, given
from hypothesis import strategies as st

from a3s_gateway.runtime.protocols.trace_context import (
    FORMATS,
    Incoming,
    Propagation,
    SpanContext,
    format_b3,
    format_b3_multi,
    format_traceparent,
    parse_b3,
    parse_b3_multi,
    parse_traceparent,
    parse_tracestate,
)
from a3s_gateway.runtime.protocols.trace_context import new_span_id as _new_span
from a3s_gateway.runtime.protocols.trace_context import new_trace_id as _new_trace

trace_ids = st.integers(1, 2**128 - 1).map(lambda n: f"{n:032x}")
span_ids = st.integers(1, 2**64 - 1).map(lambda n: f"{n:016x}")
contexts = st.builds(SpanContext, trace_ids, span_ids, st.booleans(), st.just(""), st.just(False))
formats = st.lists(st.sampled_from(FORMATS), min_size=1, max_size=3, unique=True)
FIELDS = [b"traceparent", b"tracestate", b"b3", b"x-b3-traceid", b"x-b3-spanid", b"x-b3-parentspanid",
          b"x-b3-sampled", b"x-b3-flags"]  # fmt: skip
HEXISH = st.text(alphabet="0123456789abcdefABCDEF-_ xyz,=@", max_size=80)
garbage_values = st.one_of(st.binary(max_size=120), HEXISH.map(str.encode))
garbage_headers = st.lists(st.tuples(st.sampled_from(FIELDS), garbage_values), max_size=8)
_HEX = re.compile(r"[0-9a-f]+")


@given(contexts)
def test_traceparent_round_trip(ctx: SpanContext) -> None:
    assert parse_traceparent(format_traceparent(ctx)) == Incoming(ctx.trace_id, ctx.span_id, ctx.sampled)


@given(contexts, st.one_of(st.none(), span_ids), st.booleans(), st.booleans())
def test_b3_round_trips(ctx: SpanContext, parent: str | None, narrow: bool, debug: bool) -> None:
    ctx = SpanContext(ctx.trace_id, ctx.span_id, ctx.sampled or debug, debug=debug)  # debug implies sampled
    if narrow:  # a 64-bit trace id: sent as it was read, padded to 128 bits
        ctx = SpanContext("0" * 16 + ctx.trace_id[16:], ctx.span_id, ctx.sampled, debug=debug)
        if ctx.trace_id == "0" * 32:
            return
    expected = Incoming(ctx.trace_id, ctx.span_id, ctx.sampled, debug=debug)
    assert parse_b3(format_b3(ctx, parent)) == expected
    multi = {name: value.decode() for name, value in format_b3_multi(ctx, parent)}
    assert parse_b3_multi(multi) == expected
    if narrow:
        sampling = "d" if debug else str(int(ctx.sampled))
        assert parse_b3(f"{ctx.trace_id[16:]}-{ctx.span_id}-{sampling}") == expected


@given(contexts, span_ids, formats, st.sampled_from(["", "a=1", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"]))
def test_inject_then_extract_is_the_same_trace(ctx: SpanContext, parent: str, fmts: list, state: str) -> None:
    ctx = SpanContext(ctx.trace_id, ctx.span_id, ctx.sampled, state)
    propagation = Propagation(fmts)
    incoming = propagation.extract(propagation.inject(ctx, parent))
    assert (incoming.trace_id, incoming.span_id, incoming.sampled) == (ctx.trace_id, ctx.span_id, ctx.sampled)
    if fmts[0] == "w3c":
        assert incoming.tracestate == state


@given(garbage_headers, formats)
@example([(b"traceparent", b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01")], ["w3c"])
@example([(b"b3", b"\xff\xfe-\x00")], ["b3"])
@example([(b"x-b3-traceid", b"1" * 32), (b"x-b3-spanid", b"0" * 16)], ["b3multi"])
def test_garbage_never_raises_and_yields_a_valid_trace(raw: list, fmts: list) -> None:
    incoming = Propagation(fmts).extract(raw)
    assert (incoming.trace_id is None) == (incoming.span_id is None)
    if incoming.trace_id is not None and incoming.span_id is not None:
        assert len(incoming.trace_id) == 32 and _HEX.fullmatch(incoming.trace_id)
        assert len(incoming.span_id) == 16 and _HEX.fullmatch(incoming.span_id)
        assert incoming.trace_id != "0" * 32 and incoming.span_id != "0" * 16
    # Whatever came in, the trace the gateway then starts or continues is one a peer accepts.
    rng = random.Random(0)
    ctx = SpanContext(incoming.trace_id or _new_trace(rng), _new_span(rng), bool(incoming.sampled))
    assert parse_traceparent(format_traceparent(ctx)) is not None
    if incoming.tracestate:
        assert parse_tracestate([incoming.tracestate]) == incoming.tracestate


@given(st.lists(st.text(max_size=300), max_size=40))
def test_tracestate_passed_on_is_valid_and_bounded(values: list[str]) -> None:
    kept = parse_tracestate(values)
    if kept:
        assert len(kept) <= 512
        assert len(kept.split(",")) <= 32
        assert parse_tracestate([kept]) == kept
