"""The access log's JSON line, written field by field (runtime/observe/access_log.py), reads back
exactly as the generic JSON encoder's line would, for any values the fields can hold, with or
without extra fields (header fields) after the fixed ones; the times to the microsecond (start)
and the nanosecond (duration and TTFB, written with `%.9f`)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from a3s_gateway.runtime.observe import access_log
from a3s_gateway.runtime.observe.access_log import Values, _encode_json, json_line

_TEXT = st.text()  # any code points, lone surrogates and controls included
_OPT_TEXT = st.none() | _TEXT
_SECONDS = st.floats(min_value=0, max_value=1e4, allow_nan=False)
_SIZE = st.integers(0, 2**53)

_ENTRY = st.fixed_dictionaries(
    {
        "start_utc": st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
        "duration": _SECONDS,
        "client_addr": _TEXT,
        "method": _TEXT,
        "path": _TEXT,
        "protocol": _TEXT,
        "status": st.integers(100, 999),
        "backend_status": st.none() | st.integers(100, 999),
        "router": _OPT_TEXT,
        "service": _OPT_TEXT,
        "backend_url": _OPT_TEXT,
        "request_size": _SIZE,
        "response_size": _SIZE,
        "ttfb": _SECONDS,
        "retry_attempts": st.integers(0, 100),
        "request_id": _OPT_TEXT,
        "trace_id": _OPT_TEXT,
    }
)
# The order `AccessLog.record` writes the fields in (hypothesis builds the dict in its own order).
_ORDER = (
    "start_utc", "duration", "client_addr", "method", "path", "protocol", "status", "backend_status",
    "router", "service", "backend_url", "request_size", "response_size", "ttfb", "retry_attempts",
    "request_id", "trace_id",
)  # fmt: skip
_EXTRA = st.dictionaries(_TEXT.filter(lambda key: key not in _ORDER), _OPT_TEXT, max_size=4)


@settings(max_examples=1000, deadline=None)  # no timing assertion: a loaded machine stalls examples
@given(_ENTRY, _EXTRA, st.booleans())
def test_the_line_reads_back_as_the_generic_encoders(
    entry: dict[str, Any], extra: dict[str, Any], primed: bool
) -> None:
    entry = {**{key: entry[key] for key in _ORDER}, **extra}
    values = cast(Values, tuple(entry[key] for key in _ORDER if key not in ("duration", "response_size")))
    if primed:
        # A line earlier in the same second, with the same route fields: this line's date and
        # time of day, and its protocol-to-backend fields, come from json_line's caches.
        json_line(cast(Values, (math.floor(values[0]), *values[1:])), 0.0, 0, None)
    line = json_line(values, entry["duration"], entry["response_size"], extra or None)
    assert line.endswith("}\n") and "\n" not in line[:-1]
    got = json.loads(line)
    when = datetime.fromtimestamp(entry["start_utc"], UTC)
    times = {"start_utc": when.isoformat(timespec="microseconds")}
    times |= {"duration": round(entry["duration"], 9), "ttfb": round(entry["ttfb"], 9)}
    expected = json.loads(_encode_json({**entry, **times}))
    # The time: the same instant to the microsecond (rounding of the last digit may differ by one).
    logged = datetime.fromisoformat(got.pop("start_utc"))
    assert abs((logged - datetime.fromisoformat(expected.pop("start_utc"))).total_seconds()) <= 1e-6
    assert got == expected
    assert list(got) == list(expected)  # and the same field order


def test_long_methods_are_written_and_not_kept() -> None:
    """Methods' JSON literals are cached, and a client chooses its method (a token as long as
    the request line): long ones are quoted each time, so the cache holds only short keys."""
    access_log._QUOTED.clear()
    for n in range(64):
        method = f"M{n}" + "X" * 4096
        values = cast(
            Values, (0.0, "::1", method, "/", "HTTP/1.1", 200, 200, "r", "s", "u", 0, 0.0, 0, "", None)
        )
        assert json.loads(json_line(values, 0.0, 0, None))["method"] == method
    assert sum(map(len, access_log._QUOTED)) <= access_log._QUOTED_LIMIT * access_log._QUOTED_MAX
