"""Trace context propagation, sans-IO: W3C Trace Context and B3, read from and written to header lists.

Bytes in, a `Incoming` out; a `SpanContext` in, header fields out. No socket, no clock: new ids
come from the random generator the caller passes.

- **W3C Trace Context** (https://www.w3.org/TR/trace-context/): `traceparent` is
  `version-traceid-parentid-flags`. Version `00` is exactly 55 characters of lower-case hex;
  an all-zero trace id or parent id, upper-case hex, a wrong length or version `ff` make it
  invalid (§3.2.2). A higher version is parsed as `00` from its first 55 characters, which must
  end the value or be followed by `-` (§3.2.4, "Versioning of traceparent"); only the
  `sampled` flag (bit 0) is read. `tracestate` is kept (and passed on unchanged) only with a
  valid `traceparent` (§3.3.1): all its headers joined, at most 32 list members, each key and
  value as §3.3.1.3 spells them, no key twice, or it is dropped whole; past 512 characters
  members longer than 128 go first, then members from the end (§3.3.1.5).
- **B3** (https://github.com/openzipkin/b3-propagation): the single header
  `b3: {traceid}-{spanid}[-{sampled}[-{parentspanid}]]`, or a sampling decision alone
  (`b3: 0`, `1`, `d`); and the multi-header form `X-B3-TraceId`, `X-B3-SpanId`,
  `X-B3-ParentSpanId`, `X-B3-Sampled` (`1`/`0`, and the legacy `true`/`false`), `X-B3-Flags: 1`
  (debug, which implies sampled). Trace ids are 16 or 32 lower-case hex characters: a 64-bit
  id is left-padded to 128 bits, as OpenTelemetry does, so every format and the OTLP export
  see one id. Reading `b3` accepts both forms, as OpenTelemetry's B3 propagators do; the two
  names differ in what they write (`b3`: the single header, `b3multi`: the X-B3-* fields).

A `Propagation` holds the configured formats. `extract` returns the first valid context in the
configured order (so `["w3c", "b3"]` prefers `traceparent`); `inject` writes every configured
format, and `fields` names the headers to remove from the request before (the client's context
never reaches the backend beside ours).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

# FORMATS (the format names) and Format (their type) are importable too; __all__ lists the
# functions and classes only (tests/test_protocol_purity.py reads their modules).
__all__ = [
    "Incoming",
    "Propagation",
    "SpanContext",
    "decide",
    "format_b3",
    "format_b3_multi",
    "format_traceparent",
    "new_span_id",
    "new_trace_id",
    "parse_b3",
    "parse_b3_multi",
    "parse_traceparent",
    "parse_tracestate",
]

Format = Literal["w3c", "b3", "b3multi"]
FORMATS: tuple[Format, ...] = ("w3c", "b3", "b3multi")

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
B3 = b"b3"
X_B3_TRACE_ID = b"x-b3-traceid"
X_B3_SPAN_ID = b"x-b3-spanid"
X_B3_PARENT_SPAN_ID = b"x-b3-parentspanid"
X_B3_SAMPLED = b"x-b3-sampled"
X_B3_FLAGS = b"x-b3-flags"
_B3_MULTI = frozenset({X_B3_TRACE_ID, X_B3_SPAN_ID, X_B3_PARENT_SPAN_ID, X_B3_SAMPLED, X_B3_FLAGS})
_FIELDS: dict[Format, frozenset[bytes]] = {
    "w3c": frozenset({TRACEPARENT, TRACESTATE}),
    "b3": frozenset({B3}) | _B3_MULTI,
    "b3multi": frozenset({B3}) | _B3_MULTI,
}

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
# §3.2.2: version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex only.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# §3.3.1.3: simple-key / multi-tenant-key, and the value's characters (no `,` nor `=`).
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}", re.ASCII
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", re.ASCII)
TRACESTATE_MEMBERS = 32
TRACESTATE_SIZE = 512
_LONG_MEMBER = 128


# NamedTuples, not frozen dataclasses: one is built per request and per attempt, and a frozen
# dataclass's __init__ makes a call per field.
class SpanContext(NamedTuple):
    """One span as the next hop should see it: ids in lower-case hex and the sampling decision."""

    trace_id: str  # 32 hex characters, not all zero
    span_id: str  # 16 hex characters, not all zero
    sampled: bool
    tracestate: str = ""  # the W3C tracestate passed on ("" when none)
    debug: bool = False  # B3's debug flag, passed on

    def child(self, span_id: str) -> SpanContext:
        return SpanContext(self.trace_id, span_id, self.sampled, self.tracestate, self.debug)


class Incoming(NamedTuple):
    """What a request's headers say: the parent span (both ids, or neither) and the sampling
    decision they carry (None: none, the gateway decides)."""

    trace_id: str | None = None
    span_id: str | None = None
    sampled: bool | None = None
    tracestate: str = ""
    debug: bool = False


NOTHING = Incoming()


def new_trace_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128) or 1:032x}"


def new_span_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(64) or 1:016x}"


def decide(incoming: Incoming, sample_rate: float, rng: random.Random) -> bool:
    """Parent-based sampling: the parent's (or B3's) decision when there is one, else `sample_rate`."""
    if incoming.sampled is not None:
        return incoming.sampled
    return sample_rate >= 1.0 or (sample_rate > 0.0 and rng.random() < sample_rate)


# --------------------------------------------------------------------------- W3C Trace Context


def parse_traceparent(value: str) -> Incoming | None:
    """The parent a `traceparent` value names, or None when it is invalid (§3.2)."""
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version == "00" and len(value) != 55:
        return None
    if len(value) > 55 and value[55] != "-":  # a higher version may only add "-..." fields
        return None
    return Incoming(trace_id, span_id, bool(int(flags, 16) & 1))


def format_traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id}-{ctx.span_id}-{'01' if ctx.sampled else '00'}"


def parse_tracestate(values: Iterable[str]) -> str:
    """The tracestate to pass on: every header's members joined, or "" when the list is invalid
    (dropped whole) or empty; trimmed to TRACESTATE_SIZE characters as §3.3.1.5 says."""
    members: list[str] = []
    keys: set[str] = set()
    for value in values:
        for raw in value.split(","):
            member = raw.strip(" \t")
            if not member:  # empty list members are allowed, and dropped (RFC 9110 §5.6.1)
                continue
            key, eq, val = member.partition("=")
            if not eq or key in keys or not _KEY.fullmatch(key) or not _VALUE.fullmatch(val):
                return ""
            keys.add(key)
            members.append(member)
    if len(members) > TRACESTATE_MEMBERS:
        return ""
    return ",".join(_trim(members))


def _trim(members: list[str]) -> list[str]:
    def size(items: list[str]) -> int:
        return sum(map(len, items)) + max(len(items) - 1, 0)

    if size(members) <= TRACESTATE_SIZE:
        return members
    members = [m for m in members if len(m) <= _LONG_MEMBER]
    while size(members) > TRACESTATE_SIZE:
        members.pop()
    return members


# --------------------------------------------------------------------------- B3

_B3_SAMPLING = {"1": (True, False), "0": (False, False), "d": (True, True)}


def _b3_trace_id(value: str) -> str | None:
    if _HEX32.fullmatch(value):
        trace_id = value
    elif _HEX16.fullmatch(value):
        trace_id = "0" * 16 + value
    else:
        return None
    return None if trace_id == _ZERO_TRACE else trace_id


def _b3_span_id(value: str) -> str | None:
    return value if _HEX16.fullmatch(value) and value != _ZERO_SPAN else None


def parse_b3(value: str) -> Incoming | None:
    """The single `b3` header, or None when it is invalid."""
    parts = value.strip(" \t").split("-")
    if len(parts) == 1:  # a sampling decision alone: b3: 0 / 1 / d
        decision = _B3_SAMPLING.get(parts[0])
        return None if decision is None else Incoming(sampled=decision[0], debug=decision[1])
    if len(parts) > 4:
        return None
    trace_id, span_id = _b3_trace_id(parts[0]), _b3_span_id(parts[1])
    if trace_id is None or span_id is None:
        return None
    sampled, debug = None, False
    if len(parts) >= 3:
        decision = _B3_SAMPLING.get(parts[2])
        if decision is None:
            return None
        sampled, debug = decision
    if len(parts) == 4 and _b3_span_id(parts[3]) is None:
        return None
    return Incoming(trace_id, span_id, sampled, debug=debug)


def format_b3(ctx: SpanContext, parent_span_id: str | None) -> str:
    sampling = "d" if ctx.debug else "1" if ctx.sampled else "0"
    tail = f"-{parent_span_id}" if parent_span_id else ""
    return f"{ctx.trace_id}-{ctx.span_id}-{sampling}{tail}"


_B3_SAMPLED = {"1": True, "true": True, "0": False, "false": False}


def parse_b3_multi(fields: dict[bytes, str]) -> Incoming | None:
    """The X-B3-* fields (lower-case names to values), or None when they say nothing valid.

    Both ids, or a sampling decision alone; ids that are half there or malformed are ignored,
    and a valid decision beside them still counts."""
    debug = fields.get(X_B3_FLAGS, "").strip() == "1"
    sampled = True if debug else _B3_SAMPLED.get(fields.get(X_B3_SAMPLED, "").strip().lower())
    raw_trace, raw_span = fields.get(X_B3_TRACE_ID), fields.get(X_B3_SPAN_ID)
    trace_id = _b3_trace_id(raw_trace.strip()) if raw_trace is not None else None
    span_id = _b3_span_id(raw_span.strip()) if raw_span is not None else None
    if trace_id is None or span_id is None:
        return None if sampled is None else Incoming(sampled=sampled, debug=debug)
    return Incoming(trace_id, span_id, sampled, debug=debug)


def format_b3_multi(ctx: SpanContext, parent_span_id: str | None) -> list[tuple[bytes, bytes]]:
    out = [(X_B3_TRACE_ID, ctx.trace_id.encode()), (X_B3_SPAN_ID, ctx.span_id.encode())]
    if parent_span_id:
        out.append((X_B3_PARENT_SPAN_ID, parent_span_id.encode()))
    # The spec: with X-B3-Flags: 1, X-B3-Sampled is not sent (debug implies it).
    out.append((X_B3_FLAGS, b"1") if ctx.debug else (X_B3_SAMPLED, b"1" if ctx.sampled else b"0"))
    return out


# --------------------------------------------------------------------------- the configured formats


class Propagation:
    """The configured formats: what a request's context is read from, and written as upstream."""

    __slots__ = ("fields", "formats")

    def __init__(self, formats: Sequence[Format]) -> None:
        self.formats = tuple(dict.fromkeys(formats))
        # The header names read here (and replaced on the way up), for one set lookup per field.
        self.fields = frozenset().union(*(_FIELDS[f] for f in self.formats))

    def extract(self, raw: Iterable[tuple[bytes, bytes]]) -> Incoming:
        """The first valid context in the configured order, else the first sampling decision
        alone (B3's `b3: 0`), else nothing: a request with no or only invalid context starts a
        new trace. Never raises, whatever the bytes."""
        found: dict[bytes, list[str]] = {}
        for name, value in raw:
            if name in self.fields:
                found.setdefault(name, []).append(value.decode("latin-1"))
        if not found:
            return NOTHING
        decision: Incoming | None = None
        for fmt in self.formats:
            incoming = _read(fmt, found)
            if incoming is None:
                continue
            if incoming.trace_id is not None:
                return incoming
            decision = decision or incoming
        return decision or NOTHING

    def inject(self, ctx: SpanContext, parent_span_id: str | None) -> list[tuple[bytes, bytes]]:
        """The header fields that tell the next hop `ctx` (whose parent is `parent_span_id`)."""
        out: list[tuple[bytes, bytes]] = []
        for fmt in self.formats:
            if fmt == "w3c":
                out.append((TRACEPARENT, format_traceparent(ctx).encode()))
                if ctx.tracestate:
                    out.append((TRACESTATE, ctx.tracestate.encode("latin-1")))
            elif fmt == "b3":
                out.append((B3, format_b3(ctx, parent_span_id).encode()))
            else:
                out += format_b3_multi(ctx, parent_span_id)
        return out


def _read(fmt: Format, found: dict[bytes, list[str]]) -> Incoming | None:
    if fmt == "w3c":
        values = found.get(TRACEPARENT)
        if values is None or len(values) != 1:  # one field only: several cannot be combined into one
            return None
        parent = parse_traceparent(values[0])
        if parent is None:
            return None
        state = parse_tracestate(found.get(TRACESTATE, ()))
        return Incoming(parent.trace_id, parent.span_id, parent.sampled, state) if state else parent
    single = found.get(B3)
    if single is not None:
        incoming = parse_b3(single[0]) if len(single) == 1 else None
        if incoming is not None:
            return incoming
    multi = {name: values[0] for name, values in found.items() if name in _B3_MULTI and len(values) == 1}
    return parse_b3_multi(multi) if multi else None
