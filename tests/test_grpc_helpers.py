"""The gRPC helpers the proxy uses: grpc-timeout parsing and the gateway's own status fields."""

from __future__ import annotations

import pytest

from a3s_gateway.runtime.errors import GatewayTimeout, NoHealthyBackend
from a3s_gateway.runtime.grpc import encode_message, parse_timeout, status_fields


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1H", 3600.0),
        ("2M", 120.0),
        ("30S", 30.0),
        ("300m", 0.3),
        ("250u", 0.00025),
        ("99999999n", 0.099999999),
        (None, None),
        ("", None),
        ("10", None),  # no unit
        ("x5S", None),
        ("5s", None),  # units are case-sensitive
        ("123456789S", None),  # at most 8 digits
        ("-1S", None),
    ],
)
def test_parse_timeout(value: str | None, seconds: float | None) -> None:
    parsed = parse_timeout(value)
    assert parsed == pytest.approx(seconds) if seconds is not None else parsed is None


def test_status_fields_map_the_error_taxonomy() -> None:
    assert status_fields(NoHealthyBackend("no backend"))[0] == (b"grpc-status", b"14")
    assert status_fields(GatewayTimeout("slow"))[0] == (b"grpc-status", b"4")


def test_grpc_message_is_percent_encoded_utf8() -> None:
    assert encode_message("out of tokens: 50% é") == "out of tokens: 50%25 %C3%A9"
