"""gRPC over HTTP/2, the little the gateway needs to know ("gRPC over HTTP2", PROTOCOL-HTTP2.md).

The gateway does not parse gRPC messages; it relays streams, trailers included. Two things are
gRPC-specific: `grpc-timeout` (the client's deadline, honoured as the upstream timeout so a
call the client has given up on does not keep a backend busy) and the status trailers the
gateway writes itself when it fails a call (`GatewayError.grpc_status`: UNAVAILABLE when no
backend answers, DEADLINE_EXCEEDED on timeout).
"""

from __future__ import annotations

from .errors import GatewayError

__all__ = ["parse_timeout", "status_fields"]

# TimeoutUnit → seconds per unit.
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str | None) -> float | None:
    """Seconds of a `grpc-timeout` value (`TimeoutValue TimeoutUnit`, at most 8 digits); None if absent or invalid."""
    if not value or len(value) > 9:
        return None
    digits, unit = value[:-1], value[-1]
    if not digits.isdigit() or unit not in _UNITS:
        return None
    return int(digits) * _UNITS[unit]


def encode_message(text: str) -> str:
    """`grpc-message` is percent-encoded UTF-8 (only printable ASCII other than % passes)."""
    out = []
    for ch in text:
        if 0x20 <= ord(ch) < 0x7F and ch != "%":
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode())
    return "".join(out)


def status_fields(error: GatewayError) -> list[tuple[bytes, bytes]]:
    """The `grpc-status` / `grpc-message` fields for a failure of the gateway's own."""
    return [
        (b"grpc-status", str(error.grpc_status).encode()),
        (b"grpc-message", encode_message(error.message).encode()),
    ]
