"""The two-phase reload of `run --workers N`: every worker swaps to a new generation, or none does.

The supervisor compiles a reload once (runtime/publisher.py), but each worker builds the graph
itself, and a build can fail in one worker only (it is out of file descriptors, say). Swapping
the workers that could build it would leave the gateway serving two configurations, depending
on which worker the kernel gave a connection to. So a reload is a transaction, with the
supervisor as its coordinator and the workers as its members:

    supervisor                                          each member (a worker)
    prepare {txn, generation, path}        ->           reads the graph at `path` and builds it
                                                        beside the running one, up to the swap
                                           <-           prepared {txn, error: null | "why"}
    every member ready, in time: the graph file
    takes its committed name (graph-N.pickle);
    else it is deleted
    decide {txn, commit: true | false}     ->           swaps to it (the commit cannot fail), or
                                                        closes what it built (nothing changed)
                                           <-           done {txn}

The members are the workers that have joined: a worker opens one connection to the control
socket (`control.sock` in the run directory) once it serves, says `join {worker, pid,
generation}`, and keeps it for its life. A worker that starts while a reload is prepared is not a
member of that reload: it starts from the committed generation (the candidate's file has no
committed name yet, and a restarted worker is handed the newest committed one), and its join
waits for the reload to end; if a reload committed meanwhile, the join is a transaction of its
own that brings it to that generation (and when it cannot build it, the worker is stopped, and
restarted from the committed file like any worker that exits). So a worker never serves an
aborted generation, and ends on the committed one.

Any failure aborts, everywhere: a member answering an error, a member whose connection closes
before it answers (it exited: its replacement starts from the committed generation), or one that
does not answer within PREPARE_TIMEOUT. The outcome names the first member that failed and why.
A member keeps a prepared build until it hears the decision, however long (it drops it only when
its connection closes, which means its supervisor is gone, or when it is stopping itself); it
never decides by itself, so no member commits what another aborted. While a transaction is open
the supervisor makes no other (reloads and joins wait for it), which PREPARE_TIMEOUT bounds.

Messages are JSON objects, one per line: the run directory is private (mode 0700), so only the
supervisor's own workers can connect. A transaction number (`txn`) ties an answer to its
question: a generation number is reused after an abort, and a slow member's late answer to an
aborted transaction must not count for the next one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["DONE_TIMEOUT", "MAX_LINE", "PREPARE_TIMEOUT", "Member", "Members", "Vote", "decode", "encode"]

_log = logging.getLogger("a3s_gateway.workers")
# How long the members have to read and build a new generation (10,000 routers: ~1 s).
PREPARE_TIMEOUT = 30.0
# How long the supervisor waits for the members to say they swapped (or dropped) it.
DONE_TIMEOUT = 30.0
# The longest message line (a build error's text is cut to fit).
MAX_LINE = 64 * 1024


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


@dataclass(eq=False)
class Member:
    """A joined worker's connection, on the supervisor's side."""

    worker: int
    pid: int
    stream: anyio.abc.ByteStream
    lines: BufferedByteReceiveStream
    _inbox: MemoryObjectSendStream[dict[str, Any]] = field(init=False)
    _answers: MemoryObjectReceiveStream[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self._inbox, self._answers = anyio.create_memory_object_stream[dict[str, Any]](64)

    def __str__(self) -> str:
        return f"worker {self.worker} (pid {self.pid})"

    async def read(self) -> None:
        """Receive the member's answers until its connection closes (it exited)."""
        with self._inbox:
            while True:
                try:
                    line = await self.lines.receive_until(b"\n", MAX_LINE)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, OSError):
                    return
                except anyio.DelimiterNotFound:
                    _log.error("%s: a message over %d bytes; its link is closed", self, MAX_LINE)
                    return
                message = decode(line)
                if message is not None:
                    await self._inbox.send(message)

    async def send(self, message: dict[str, Any]) -> bool:
        """False when the member is gone."""
        try:
            await self.stream.send(encode(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False
        return True

    async def answer(self, op: str, txn: int) -> dict[str, Any] | None:
        """The member's `op` answer to transaction `txn` (earlier transactions' late answers are
        skipped); None once its connection closed."""
        async for message in self._answers:
            if message.get("op") == op and message.get("txn") == txn:
                return message
        return None


@dataclass(frozen=True)
class Vote:
    """The members asked to prepare a transaction, the first failure among them (None: all are
    ready), and the member that did not answer in time, if one did not."""

    txn: int
    members: Sequence[Member]
    error: str | None
    late: Member | None = None


class Members:
    """The joined workers, and the transactions the supervisor runs with them."""

    def __init__(
        self, *, prepare_timeout: float = PREPARE_TIMEOUT, done_timeout: float = DONE_TIMEOUT
    ) -> None:
        self._members: list[Member] = []
        self._txn = 0
        self.prepare_timeout = prepare_timeout
        self.done_timeout = done_timeout

    def __len__(self) -> int:
        return len(self._members)

    def add(self, member: Member) -> None:
        self._members.append(member)

    def remove(self, member: Member) -> None:
        if member in self._members:
            self._members.remove(member)

    async def prepare(self, generation: int, path: str, only: Member | None = None) -> Vote:
        """Phase one: every member (or `only` one) builds `generation` from `path` and answers."""
        self._txn += 1
        txn, members = self._txn, [only] if only is not None else list(self._members)
        ask = {"op": "prepare", "txn": txn, "generation": generation, "path": path}
        waiting = [m for m in members if await m.send(ask)]
        gone = [m for m in members if m not in waiting]
        if gone:
            return Vote(txn, members, f"{gone[0]} exited during the reload")
        answered = 0
        with anyio.move_on_after(self.prepare_timeout):
            for member in waiting:
                answer = await member.answer("prepared", txn)
                if answer is None:
                    return Vote(txn, members, f"{member} exited during the reload")
                answered += 1
                if answer.get("error") is not None:
                    return Vote(txn, members, f"{member}: {answer['error']}")
            return Vote(txn, members, None)
        late = waiting[answered]
        return Vote(txn, members, f"{late} did not answer within {self.prepare_timeout:g}s", late)

    async def decide(self, vote: Vote, commit: bool) -> None:
        """Phase two: every member asked commits (or aborts), and says when it has, so that an
        abort is reported once every new socket is closed again. Not waited for: a member that
        is gone, the one that did not answer in time (it drops the build when it is done with
        it), and any past DONE_TIMEOUT (logged)."""
        told = [m for m in vote.members if await m.send({"op": "decide", "txn": vote.txn, "commit": commit})]
        with anyio.move_on_after(self.done_timeout):
            for member in (m for m in told if m is not vote.late):
                if await member.answer("done", vote.txn) is None and commit:
                    _log.warning("%s exited during the commit: it restarts on the new generation", member)
            return
        _log.warning(
            "a worker did not confirm its %s within %gs", "commit" if commit else "abort", self.done_timeout
        )
