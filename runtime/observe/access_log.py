"""The access log: one line per request, formatted on the request path, written off it.

The request path records one tuple of raw values when the response head is ready and, when the
body is over (a callback on the body, which counts its own bytes: runtime/body_end.py), formats
it (a JSON line written field by field, or the Common Log Format) into an in-memory buffer; a background task
hands the buffer to a worker thread every `FLUSH_INTERVAL` seconds, or sooner when it holds more
than `FLUSH_BYTES`, so a slow disk never blocks the event loop. The file is opened for append (several worker processes can share it:
each write is whole lines) and reopened by `reopen()` (SIGUSR1, for logrotate).

Fields follow Traefik's access log (`StartUTC`, `Duration`, `ClientAddr`, `RequestMethod`...),
in snake case, plus `trace_id` (the request's W3C trace id, when tracing is configured). No
header is logged unless `headers { }` asks for it (header_fields.py), and `Authorization`,
`Cookie` and API keys are redacted even then; the path is the normalised target the router saw
(query included, as Traefik's `RequestPath`), with the values of query parameters that carry
credentials (`api_key`, `token`, `signature`...) replaced by `REDACTED`: clients put keys in
URLs too.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import IO, Any, Protocol

import anyio

from ...compiler.schema import AccessLogConfig, AccessLogFilters
from ..body_end import CountingBody
from ..state import StateTxn
from .header_fields import HeaderFields
from .tally import BATCH, Tally

__all__ = [
    "PROTOCOLS",
    "UNCOUNTED",
    "AccessFilter",
    "AccessLog",
    "AccessLogWriter",
    "format_common",
    "line_ended",
    "no_callback",
    "prepare_access_log",
]

log = logging.getLogger("a3s_gateway.access_log")

FLUSH_INTERVAL = 1.0
FLUSH_BYTES = 64 * 1024


class AccessFilter:
    """Traefik's `filters`: a request is kept when any filter that is set matches it."""

    __slots__ = ("_min_duration", "_ranges", "_retries", "keep_all")

    def __init__(self, config: AccessLogFilters) -> None:
        self._ranges = [_status_range(item) for item in config.status_codes]
        self._min_duration = config.min_duration
        self._retries = config.retry_attempts
        self.keep_all = not (self._ranges or self._min_duration or self._retries)

    def keeps(self, status: int, duration: float, retries: int) -> bool:
        if self.keep_all:
            return True
        if any(low <= status <= high for low, high in self._ranges):
            return True
        if self._min_duration and duration >= self._min_duration:
            return True
        return self._retries and retries > 0


def _status_range(item: str) -> tuple[int, int]:
    low, _, high = item.partition("-")
    return int(low), int(high or low)


class AccessLogWriter:
    """The buffer and the file behind it. A request's line is appended on the event loop (by
    `line_ended`, inline: once per request), which never blocks; `flush_lines` runs in a
    worker thread (the lock keeps a flush and a reopen apart).

    `pending` counts the requests recorded and not yet over: a writer that a reload retired
    (`close`) runs on until the last of them has written its line, so a stream that outlives
    the reload is logged where it started."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lines: list[str] = []
        self._size = 0
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self.wake: anyio.Event | None = None
        self.closed = False
        self.pending = 0

    @classmethod
    async def open(cls, path: str) -> AccessLogWriter:
        """A writer with its file open (in a thread: opening may block); raises OSError."""
        writer = cls(path)
        await anyio.to_thread.run_sync(writer._open)
        return writer

    def take(self) -> list[str]:
        lines, self._lines, self._size = self._lines, [], 0
        return lines

    def flush_lines(self, lines: list[str]) -> None:
        """Write `lines` (blocking: call it from a thread)."""
        if not lines:
            return
        with self._lock:
            try:
                out = self._open()
                out.write("".join(lines))
                out.flush()
            except OSError as exc:
                log.error("access log %s: %s (%d lines lost)", self.path, exc, len(lines))

    def reopen(self) -> None:
        """Close the file, so the next flush opens `path` afresh (after logrotate renamed it)."""
        with self._lock:
            if self._file is not None and self._file is not sys.stdout:
                self._file.close()
            self._file = None

    def _open(self) -> IO[str]:
        if self._file is None:
            self._file = sys.stdout if self.path == "-" else open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        return self._file

    def close(self) -> None:
        """Stop `run` once no recorded request is left (a reload that changed or removed the
        access log), after a last flush."""
        self.closed = True
        if self.wake is not None:
            self.wake.set()

    async def run(self) -> None:
        """Flush every FLUSH_INTERVAL, or when the buffer grows past FLUSH_BYTES, until closed and
        no recorded request is left, or cancelled (shutdown); what is left is flushed on the way
        out, and the file closed."""
        try:
            while not (self.closed and not self.pending):
                if self._size <= FLUSH_BYTES:  # else lines came in during the last flush: no wait
                    self.wake = anyio.Event()
                    with anyio.move_on_after(FLUSH_INTERVAL):
                        await self.wake.wait()
                lines = self.take()
                if lines:
                    await anyio.to_thread.run_sync(self.flush_lines, lines)
        finally:
            self.flush_lines(self.take())  # the last lines, then the file
            self.reopen()


class AccessLog:
    """Records requests: `observers.observe` arranges for a response's line to be written (by
    `line_ended`) when its body is over."""

    def __init__(self, writer: AccessLogWriter, config: AccessLogConfig) -> None:
        self.writer = writer
        self.config = config
        self.filter = AccessFilter(config.filters)
        self.keep_all = self.filter.keep_all  # (read per request: one attribute less)
        self.format: Formatter = format_common if config.format == "common" else json_line
        # None unless a header can be logged: the default does no header work at all.
        self.headers = HeaderFields(config.headers) if HeaderFields.wanted(config.headers) else None


def no_callback(_error: BaseException | None) -> None:
    """(`on_counted_body_end` takes a callback; `line_ended` is added next, once the body is known.)"""


# A recorded request's fields, in `_FIELDS` order less `duration` and `response_size` (known
# when its body is over): start_utc, client_addr, method, path, protocol, status,
# backend_status, router, service, backend_url, request_size, ttfb, retry_attempts, request_id,
# trace_id.
Values = tuple[
    float, str, str, str, str, int, int | None, str | None, str | None, str | None, int, float, int,
    str | None, str | None,
]  # fmt: skip
Formatter = Callable[[Values, float, int, dict[str, Any] | None], str]


class Held(Protocol):
    """What counts a request as in flight until its body is over (a graph generation)."""

    def release(self) -> None: ...


PROTOCOLS = {"1.0": "HTTP/1.0", "1.1": "HTTP/1.1", "2": "HTTP/2"}
UNCOUNTED = object()  # `observers.observe`: a body without `body_bytes`


def line_ended(
    log: AccessLog,
    values: Values,
    extra: dict[str, Any] | None,
    start: float,
    reached: float | None,
    state: dict[str, Any],
    tally: Tally | None,
    held: Held | None,
    body: CountingBody,
    _error: BaseException | None,
) -> None:
    """A recorded request's body is over (the body's end callback, through a `partial`): the
    release of its graph generation (`held`: one callback on the body serves the graph and
    the observers), the metrics' count of it when they are on (`tally`, meters.py), and its
    line, if the filters keep it. (The common case, every line kept and no query, makes no
    call for either.) The body holds this callback until it has run, then lets it go: no
    cycle is left behind."""
    if held is not None:  # first: a line that failed to format must not keep its generation busy
        held.release()
    now = time.monotonic()
    duration = now - start
    if tally is not None:
        # `Tally.ended`, inlined (a call less per request); `reached`, when the request got
        # to its service, was read with the head.
        elapsed = tally.elapsed
        elapsed.append(duration)
        if reached is not None:
            tally.served.append(now - reached)
        if len(elapsed) >= BATCH:
            tally.fold()
    # Fields that kinds leave in the request's state (one test in C for all: other requests
    # pay nothing more). An LLM kind (model_router, llm-keys) marked the request: its model
    # and tokens, read now that the body is over.
    if not _LATE_FIELDS.isdisjoint(state):
        if "llm.model" in state or "llm_key" in state:
            extra = {} if extra is None else extra
            llm_fields(extra, state)
        # A routing kind's decision (privacy_router, kairos): its fields, as the kind wrote them.
        if "log.fields" in state:
            extra = {**(extra or {}), **state["log.fields"]}
    writer = log.writer
    if log.keep_all or log.filter.keeps(values[5], duration, values[12]):
        if "?" in values[3]:
            values = (*values[:3], redact_query(values[3]), *values[4:])
        # The writer's buffer, written here (a call less per request): flushed early when
        # it is full.
        line = log.format(values, duration, body.body_bytes or 0, extra)
        writer._lines.append(line)
        writer._size += len(line)
        if writer._size > FLUSH_BYTES and writer.wake is not None:
            writer.wake.set()
    writer.pending -= 1  # a retired writer stops once its last recorded request is over
    if writer.closed and not writer.pending and writer.wake is not None:
        writer.wake.set()


_LATE_FIELDS = frozenset({"llm.model", "llm_key", "log.fields"})  # `line_ended`'s state keys


def llm_fields(entry: dict[str, Any], state: dict[str, Any]) -> None:
    """An LLM request's model (the client's, and the upstream's when a model_router chose one),
    its key's name, and its tokens (None when no llm-keys read the upstream's usage)."""
    model = state.get("llm.model")
    if model is None:
        body = state.get("llm_request")
        model = body.get("model") if isinstance(body, dict) else None
    usage = state.get("llm_usage")
    entry["llm_model"] = model
    entry["llm_upstream_model"] = state.get("llm.upstream_model", model)
    entry["llm_key"] = state.get("llm_key")
    entry["llm_input_tokens"] = getattr(usage, "input_tokens", None)
    entry["llm_output_tokens"] = getattr(usage, "output_tokens", None)


_encode_json = json.JSONEncoder(separators=(",", ":")).encode
_quote = json.encoder.encode_basestring_ascii  # C: a JSON string literal, quotes included

# The fields every line has, in the line's order; any other field, such as a header field, goes
# through the JSON encoder after them.
_FIELDS = (
    "start_utc", "duration", "client_addr", "method", "path", "protocol", "status", "backend_status",
    "router", "service", "backend_url", "request_size", "response_size", "ttfb", "retry_attempts",
    "request_id", "trace_id",
)  # fmt: skip

# JSON string literals of the methods (one dict lookup instead of an encoder call). Clients
# choose methods, so the cache stops growing at _QUOTED_LIMIT and keeps none longer than
# _QUOTED_MAX (a token may be as long as the request line); a value not in it is quoted as before.
_QUOTED: dict[str, str] = {}
_QUOTED_LIMIT = 512
_QUOTED_MAX = 32


def _quoted(value: str) -> str:
    literal = _quote(value)
    if len(_QUOTED) < _QUOTED_LIMIT and len(value) <= _QUOTED_MAX:
        _QUOTED[value] = literal
    return literal


# The line's text from `"protocol"` to `"request_size":`, by the values it holds (`Values[4:10]`:
# protocol, status, backend status, router, service, backend URL): they repeat from one request
# to the next on a route, so the six fields are formatted once per combination and a line
# looks them up by one tuple. Bounded as _QUOTED is: past _SEGMENTS_LIMIT, formatted each time.
_SEGMENTS: dict[tuple[Any, ...], str] = {}
_SEGMENTS_LIMIT = 4096


def _segment(key: tuple[Any, ...]) -> str:
    protocol, status, backend_status, router, service, url = key
    segment = (
        f',"protocol":{_quote(protocol)},"status":{status},'
        f'"backend_status":{"null" if backend_status is None else backend_status},'
        f'"router":{"null" if router is None else _quote(router)},'
        f'"service":{"null" if service is None else _quote(service)},'
        f'"backend_url":{"null" if url is None else _quote(url)},"request_size":'
    )
    if len(_SEGMENTS) < _SEGMENTS_LIMIT:
        _SEGMENTS[key] = segment
    return segment


def json_line(v: Values, duration: float, response_size: int, extra: dict[str, Any] | None) -> str:
    """One JSON line, written field by field: the keys are known and their values are numbers,
    strings or null, so the generic encoder (some 12 µs a line, as much again for the datetime)
    is only needed for `extra` (header and LLM fields). json.loads reads back what
    `_encode_json` would have written for the same fields, the times to the microsecond
    (start) and nanosecond (duration, TTFB: `%.9f` costs half a float repr, and the clock
    counts nanoseconds) (property_tests/test_access_log_format.py). The nullable fields are
    tested inline, not by a helper: a Python call per field was a tenth of the line's cost; the
    integers are written without a format spec (`{n}`, not `{n:d}`: no spec to parse); the six
    fields a route repeats come from `_SEGMENTS`, a quarter of the line's cost saved."""
    # The start, `datetime.fromtimestamp(v[0], UTC).isoformat(timespec="microseconds")`: the
    # date and time of day are formatted once per second (`_UTC`), the microseconds inline, in
    # float arithmetic (integer operations on a timestamp in microseconds cost twice as much).
    start, utc = v[0], _UTC
    if utc[0] <= start < utc[1]:
        # 0 to 999,999 (`_utc_start`) once `%d` truncates it
        micros: float = (start - utc[0]) * 1_000_000 + 0.5
        day_time = utc[2]
    else:
        day_time, micros = _utc_start(start)
    key = v[4:10]
    # The three formatted numbers go through `%` templates, not f-string format specs: a
    # spec is a bound `__format__` looked up and called per value, the template one C call
    # (about 5 % of a line's instructions, callgrind; the text is the same).
    return (
        f'{{"start_utc":"{day_time}.{_START_REST % (micros, duration)},'
        f'"client_addr":{_quote(v[1])},"method":{_QUOTED.get(v[2]) or _quoted(v[2])},'
        f'"path":{_quote(v[3])}{_SEGMENTS.get(key) or _segment(key)}{v[10]},'
        f'"response_size":{response_size},"ttfb":{_NANOS % v[11]},"retry_attempts":{v[12]},'
        f'"request_id":{"null" if (x := v[13]) is None else _quote(x)},'
        f'"trace_id":{"null" if (x := v[14]) is None else _quote(x)}'
        # Header fields and the like: the generic encoder, for those only. (In the f-string:
        # a line without them is built once, not copied again to add its end.)
        f"{_extra(extra) if extra else _END}"
    )


_END = "}\n"
_START_REST = '%06d+00:00","duration":%.9f'  # the start's microseconds, then the duration
_NANOS = "%.9f"


def _extra(extra: dict[str, Any]) -> str:
    """The end of a line with `extra` fields (`json_line`)."""
    return "," + _encode_json(extra)[1:-1] + "}\n"


def as_entry(v: Values, duration: float, response_size: int, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The line's fields as a dict, in the line's order (the common format's and the tests' view)."""
    entry = dict(zip(_FIELDS, (v[0], duration, *v[1:11], response_size, *v[11:]), strict=True))
    if extra:
        entry.update(extra)
    return entry


# The second whose date and time of day `json_line` formatted last: the start times that it
# writes from them, [second, second + 0.9999994), and their text. (Its last 0.6 µs round up to
# the next second or lie too close to do in floats: `_utc_start` writes those, as it does
# the first line of each second.)
_UTC: list[Any] = [0.0, 0.0, ""]


def _utc_start(start: float) -> tuple[str, int]:
    """The date and time of day, and the microseconds, of `start` (a time.time() value)."""
    micros = round(start * 1_000_000)
    second = micros // 1_000_000
    day_time = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    _UTC[:] = float(second), second + 0.9999994, day_time
    return day_time, micros - second * 1_000_000


def format_common(v: Values, duration: float, response_size: int, extra: dict[str, Any] | None) -> str:
    """Common Log Format, then the router, the service and the duration in milliseconds, as
    Traefik writes them (`"<router>" "<service>" <ms>ms`; Traefik's request count is left out)."""
    entry = as_entry(v, duration, response_size, extra)
    when = datetime.fromtimestamp(entry["start_utc"], UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (
        f'{entry["client_addr"]} - - [{when}] "{entry["method"]} {entry["path"]} {entry["protocol"]}" '
        f'{entry["status"]} {entry["response_size"]} "{entry["router"] or "-"}" '
        f'"{entry["service"] or "-"}" {round(entry["duration"] * 1000)}ms{_llm_common(entry)}\n'
    )


def _llm_common(entry: dict[str, Any]) -> str:
    """An LLM request's fields after Traefik's: `"<model>" "<upstream model>" <input> <output>`
    (`-` for what is not known); nothing for other requests."""
    if "llm_model" not in entry:
        return ""
    fields = (entry[k] for k in ("llm_input_tokens", "llm_output_tokens"))
    tokens = " ".join("-" if v is None else str(v) for v in fields)
    return f' "{entry["llm_model"] or "-"}" "{entry["llm_upstream_model"] or "-"}" {tokens}'


async def prepare_access_log(
    setting: bool | AccessLogConfig, txn: StateTxn, spawn: Callable[[Callable[[], Awaitable[None]]], None]
) -> AccessLog | None:
    """The access log a configuration asks for (`true`: JSON on stdout), or None when off.

    Its writer is state of the generation being built, keyed by path (`runtime/state.py`): a
    reload that keeps the path keeps the writer and its open file, only the format or the
    filters change. A new path is opened here, beside the running generation, so a file that
    cannot be opened fails the start or the reload (OSError) and changes nothing; its flush
    task starts at commit. A writer the new generation no longer uses is retired with the old
    one, and runs on until the requests it recorded are over."""
    if setting is False:
        return None
    config = AccessLogConfig() if setting is True else setting

    async def create() -> AccessLogWriter:
        writer = await AccessLogWriter.open(config.path)
        txn.on_commit(lambda: spawn(writer.run))
        return writer

    writer = await txn.aobtain("access_log", config.path, create, _retire_writer)
    return AccessLog(writer, config)


async def _retire_writer(writer: AccessLogWriter) -> None:
    writer.close()
    if writer.wake is None:  # its flush task never ran (an aborted start or reload): close the file
        await anyio.to_thread.run_sync(writer.reopen)


# Query parameter names (lower case, `-` read as `_`) whose values are credentials.
_SECRET_PARAMS = frozenset(
    {
        "api_key", "apikey", "key", "token", "access_token", "refresh_token", "id_token", "auth",
        "authorization", "password", "passwd", "secret", "client_secret", "signature", "sig",
        "x_api_key", "x_amz_signature", "x_amz_credential", "x_amz_security_token", "session",
    }
)  # fmt: skip


def redact_query(target: str) -> str:
    """`target` with the values of credential-carrying query parameters replaced by REDACTED.
    A target without a query (the common case) is returned as it is."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, _ = part.partition("=")
        if eq and name.lower().replace("-", "_") in _SECRET_PARAMS:
            parts[i] = name + "=REDACTED"
    return path + "?" + "&".join(parts)
