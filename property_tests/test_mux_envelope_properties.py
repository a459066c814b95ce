"""Properties of websocket_mux's envelope codec: every envelope round-trips, in both forms, and
any message either decodes or raises EnvelopeError (never another exception)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.stdlib.services._mux_envelope import Envelope, EnvelopeError, decode, encode

names = st.text(min_size=1, max_size=40).filter(lambda n: len(n.encode()) <= 255)
kinds = st.sampled_from(["open", "data", "close"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(deadline=None)
@given(names, kinds, json_values)
def test_text_envelopes_round_trip(channel: str, kind: str, payload: object) -> None:
    envelope = Envelope(channel, kind, payload)
    wire = encode(envelope)
    assert isinstance(wire, str)
    assert decode(wire) == envelope


@settings(deadline=None)
@given(names, kinds, st.binary(max_size=200))
def test_binary_envelopes_round_trip(channel: str, kind: str, payload: bytes) -> None:
    envelope = Envelope(channel, kind, payload)
    wire = encode(envelope)
    assert isinstance(wire, bytes)
    assert decode(wire) == envelope


@settings(deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300) | json_values.map(json.dumps))
def test_any_message_decodes_or_is_refused(message: str | bytes) -> None:
    try:
        envelope = decode(message)
    except EnvelopeError:
        return
    assert envelope.type in ("open", "data", "close")
    assert envelope.channel is None or 1 <= len(envelope.channel.encode()) <= 255
