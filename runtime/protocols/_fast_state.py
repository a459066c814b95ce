"""What both HTTP/1.1 adapters of http1_fast.py share: h11's two-sided state machine as two small
integers, the body writers and the body readers."""

from __future__ import annotations

from typing import Protocol, cast

import h11
from h11._readers import ChunkedReader
from h11._receivebuffer import ReceiveBuffer

from ..events import END_OF_BODY, Body, ConnectionClosed, EndOfBody, Event, HeaderList, Reset, Trailers
from ._fast_heads import _CHUNKED, _UNTIL_CLOSE, _split_triples, _Triples, _write_head
from .http1 import ClientConnection, ProtocolError, ServerConnection

# Each side's state, as h11 names them (h11/_state.py); MIGHT_SWITCH_PROTOCOL and
# SWITCHED_PROTOCOL never occur here: a switch is h11's (see the module docstring).
_IDLE, _SEND_RESPONSE, _SEND_BODY, _DONE, _MUST_CLOSE, _CLOSED, _ERROR = range(7)
# h11's STATE_TRIGGERED_TRANSITIONS, (client, server) -> (client, server).
_JOINT = {
    (_CLOSED, _DONE): (_CLOSED, _MUST_CLOSE),
    (_CLOSED, _IDLE): (_CLOSED, _MUST_CLOSE),
    (_ERROR, _DONE): (_ERROR, _MUST_CLOSE),
    (_DONE, _CLOSED): (_MUST_CLOSE, _CLOSED),
    (_IDLE, _CLOSED): (_MUST_CLOSE, _CLOSED),
    (_DONE, _ERROR): (_MUST_CLOSE, _ERROR),
}


# Every message on an HTTP/1.1 connection ends with the same event (stream 1): events are
# immutable (frozen for the type checker), so one will do.


class _State(Protocol):
    """A slot holding one side's state, seen as its descriptor."""

    def __get__(self, instance: _Fast, owner: type[_Fast] | None = None) -> int: ...
    def __set__(self, instance: _Fast, value: int) -> None: ...


class _Fast:
    """What both roles share: the two states, the writer, the receive-side bookkeeping."""

    __slots__ = (
        "_client",
        "_delegate",
        "_eof",
        "_keep_alive",
        "_max_event",
        "_method",
        "_pending",
        "_reader",
        "_remaining",
        "_server",
        "_writer",
    )

    _error_status = 400
    # The two states as ours and theirs: each role gives these names to the `_client` and
    # `_server` slots (their descriptors: `_STATE_OF`), as fast as the slots themselves.
    _us: _State
    _them: _State
    _usual_head: type[Event]  # the head this side sends (the others go through _send_head too)

    def __init__(self, max_event: int) -> None:
        self._max_event = max_event
        self._client = _IDLE
        self._server = _IDLE
        self._keep_alive = True
        self._method: bytes | None = None
        self._writer = 0
        self._remaining = 0  # body bytes still to read, or _UNTIL_CLOSE
        self._eof = False
        self._pending = b""  # bytes past the message just read (h11: PAUSED in DONE)
        self._reader: tuple[ChunkedReader, ReceiveBuffer] | None = None
        # http1.py's adapter, once h11 has been given the connection (see the module docstring).
        self._delegate: ServerConnection | ClientConnection | None = None

    # ------------------------------------------------------------------ states

    def _settle(self) -> None:
        """h11's state-triggered transitions (ConnectionState._fire_state_triggered_transitions)."""
        if self._keep_alive and self._client < _CLOSED and self._server < _CLOSED:
            return  # every transition below needs a closing connection or a closed or failed side
        while True:
            client, server = self._client, self._server
            if not self._keep_alive:
                if client == _DONE:
                    client = _MUST_CLOSE
                if server == _DONE:
                    server = _MUST_CLOSE
            client, server = _JOINT.get((client, server), (client, server))
            if (client, server) == (self._client, self._server):
                return
            self._client, self._server = client, server

    def _fail(self, message: str) -> ProtocolError:
        """Our own message is inconsistent: our side is in ERROR (h11's _process_error)."""
        self._us = _ERROR
        self._settle()
        return ProtocolError(500, message)

    def _refused(self, message: str, hint: int = 400) -> ProtocolError:
        """The peer broke the protocol: their side is in ERROR."""
        self._them = _ERROR
        self._settle()
        return ProtocolError(self._status_of(hint), message)

    def _status_of(self, hint: int) -> int:
        return hint if hint == 431 else self._error_status

    # ------------------------------------------------------------------ sending

    def send(self, event: Event) -> bytes:
        """Serialise one event (b"" when it produces no bytes, e.g. the end of a sized body)."""
        if self._delegate is not None:
            return self._delegate.send(event)
        kind = type(event)  # in the order a message's events come, the usual head first
        if kind is EndOfBody:
            return self._send_end()
        if kind is self._usual_head:
            return self._send_head(event)
        if kind is Body:
            return self.send_body(event.data)  # type: ignore[union-attr]
        if kind is Trailers:
            return self._send_trailers(event.headers)  # type: ignore[union-attr]
        if kind is ConnectionClosed or kind is Reset:
            self._send_close()
            return b""
        return self._send_head(event)

    def _send_head(self, event: Event) -> bytes:
        raise NotImplementedError

    def send_body(self, data: bytes) -> bytes:
        """`send(Body(1, data))`: framed as the head announced (h11's writers)."""
        if self._delegate is not None:
            return self._delegate.send_body(data)
        if self._us != _SEND_BODY:
            raise self._fail("can't send data in this state")
        writer = self._writer
        if writer >= 0:
            if len(data) <= writer:
                self._writer = writer - len(data)
                return data
            if self._bodiless:
                return b""
            raise self._fail("Too much data for declared Content-Length")
        if writer == _CHUNKED:
            return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
        return data

    @property
    def _bodiless(self) -> bool:
        return False

    def _send_end(self) -> bytes:
        """`send(EndOfBody(1))`."""
        if self._us != _SEND_BODY:
            raise self._fail("can't end a message in this state")
        writer = self._writer
        if writer > 0:
            raise self._fail("Too little data for declared Content-Length")
        self._us = _DONE
        if not self._keep_alive or self._them >= _CLOSED:  # else no transition from DONE (_JOINT)
            self._settle()
        return b"0\r\n\r\n" if writer == _CHUNKED else b""

    def _send_trailers(self, trailers: HeaderList) -> bytes:
        """`send(Trailers(1, trailers))`: the end of a chunked body, with fields."""
        if not trailers:
            return self._send_end()
        try:  # h11 validates trailer fields when it builds the event, before any state change
            triples: _Triples = h11.EndOfMessage(headers=trailers).headers._full_items
        except h11.LocalProtocolError as exc:
            raise ProtocolError(500, str(exc)) from None
        if self._us != _SEND_BODY:
            raise self._fail("can't end a message in this state")
        writer = self._writer
        if writer > 0:
            raise self._fail("Too little data for declared Content-Length")
        if writer != _CHUNKED:
            raise self._fail("trailers need a chunked body")
        self._us = _DONE
        self._settle()
        return _write_head(b"0", *_split_triples(triples))

    def _send_close(self) -> None:
        if self._us not in (_IDLE, _DONE, _MUST_CLOSE, _CLOSED):
            raise self._fail("can't close in this state")
        self._us = _CLOSED
        self._settle()

    # ------------------------------------------------------------------ receiving bodies

    def _body(self, data: bytes, out: list[Event]) -> bytes:
        """Body bytes of the message being received: events into `out`; returns the bytes past
        the message (b"" while it lasts)."""
        reader = self._reader
        if reader is not None:
            return self._chunked(reader, data, out)
        left = self._remaining
        if left == _UNTIL_CLOSE:
            if data:
                out.append(Body(1, data))
            return b""
        if len(data) < left:
            if data:
                out.append(Body(1, data))
            self._remaining = left - len(data)
            return b""
        if left:
            out.append(Body(1, data[:left]))
        self._message_received(out)
        return data[left:]

    def _chunked(self, reader: tuple[ChunkedReader, ReceiveBuffer], data: bytes, out: list[Event]) -> bytes:
        read, buf = reader
        if data:
            buf += data
        while True:
            try:
                ev = read(buf)
            except h11.LocalProtocolError as exc:
                raise self._refused(str(exc), exc.error_status_hint) from None
            if ev is None:
                if len(buf) > self._max_event:
                    raise self._refused("Receive buffer too long", 431)
                return b""
            if type(ev) is h11.Data:
                out.append(Body(1, ev.data))
                continue
            if ev.headers:  # type: ignore[union-attr]
                out.append(Trailers(1, list(ev.headers)))  # type: ignore[union-attr]
            self._reader = None
            self._message_received(out)
            return bytes(buf)

    def _message_received(self, out: list[Event]) -> None:
        out.append(END_OF_BODY)
        self._them = _DONE
        if not self._keep_alive or self._us >= _CLOSED:  # else no transition from DONE (_JOINT)
            self._settle()

    def _past_message(self, rest: bytes) -> None:
        """Bytes after a complete message: held for the next cycle if keep-alive, else refused
        (h11 expects nothing but EOF after a closing message)."""
        if not rest:
            return
        if self._them == _DONE:
            self._pending += rest
        else:
            raise self._refused("Got data when expecting EOF")

    def _eof_events(self) -> list[Event]:
        """What EOF means in each state of the peer (h11's readers' read_eof)."""
        self._eof = True
        theirs = self._them
        if theirs == _SEND_BODY:
            if self._reader is None and self._remaining == _UNTIL_CLOSE:
                out: list[Event] = []
                self._message_received(out)
                return [*out, *self._closed()]
            self._them = _ERROR
            self._settle()
            return [Reset(1)]
        if theirs == _DONE and self._pending:
            return []  # h11 PAUSED: the next cycle reads what is left
        return self._closed()

    def _closed(self) -> list[Event]:
        self._them = _CLOSED
        self._settle()
        return [ConnectionClosed()]

    # ------------------------------------------------------------------ state, as http1.py reports it

    @property
    def trailing_data(self) -> bytes:
        return self._pending if self._delegate is None else self._delegate.trailing_data

    @property
    def switched(self) -> bool:
        return self._delegate is not None and self._delegate.switched

    @property
    def can_reuse(self) -> bool:
        if self._delegate is not None:
            return self._delegate.can_reuse
        return self._client == _DONE and self._server == _DONE

    @property
    def their_message_done(self) -> bool:
        if self._delegate is not None:
            return self._delegate.their_message_done
        return self._them == _DONE

    @property
    def our_message_done(self) -> bool:
        if self._delegate is not None:
            return self._delegate.our_message_done
        return self._us == _DONE


# The descriptors of the `_client` and `_server` slots, for the roles to name `_us` and `_them`.
_STATE_OF = {side: cast(_State, _Fast.__dict__[side]) for side in ("_client", "_server")}
