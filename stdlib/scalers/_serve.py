"""Serving one request on a scaled unit (a service or a revision), and what that needs of the service.

A request takes a slot on a ready replica at once when it can (the balancer chooses among
replicas with a free slot); otherwise it waits in the cold-start buffer, body included, and the
scaler is poked. The slot is released when the response body ends (or the client goes away).
With `buffer_keepalive` set, a waiting request that accepts `text/event-stream` gets its response
head (200, text/event-stream) at once and an SSE comment line every interval until a replica
answers; the replica's body then follows, or an `event: error` when it did not answer 200. With
`buffer_enabled = false` a cold unit answers 503 at once (and still scales up).

A connect failure sent nothing to the replica, so the request may go elsewhere as it is (as
Knative's activator retries): to another ready replica, or, when the replica had already left
rotation (it died, or was scaled down, while the request was on its way), back into the buffer to
wait for the next replica, within its first deadline. A 502 is for a replica still in rotation
that refuses, when no other ready one is left to try.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Protocol

from ...runtime.api import Backend, BodyStream, Headers, Request, Response, iter_body
from ...runtime.errors import CONNECT_FAILURES, GatewayError, NoHealthyBackend
from ..common.body_end import OnEnd
from ..common.priority import priority_of
from ._buffer import Lease, Ticket
from ._scaler import Scaler

__all__ = ["Balancer", "Forward", "ServicePath", "serve_scaled"]

Forward = Callable[[Request, Backend], Awaitable[Response]]


class Balancer(Protocol):
    def pick(self, backends: Sequence[Backend], request: Request) -> Backend | None: ...


class ServicePath(Protocol):
    """What the service (runtime/service.py `HttpService`) lends its front."""

    balancer: Balancer

    def send(self, request: Request, backend: Backend) -> Awaitable[Response]:
        """Forward to `backend`, counted in flight and reported to health and the EWMA."""
        ...

    def serve_on(
        self, request: Request, backends: Sequence[Backend], balancer: Balancer | None = None
    ) -> Awaitable[Response]:
        """Pick among `backends` and send; a connect failure moves the request to another."""
        ...

    def balancer_for(self, revision: str) -> Balancer:
        """The balancer of `revision`: its own strategy's, or the service's."""
        ...


Outcome = Callable[[bool], None]
"""Told once whether a request failed (a gateway error or a 5xx): a revision's statistics."""


async def serve_scaled(
    scaler: Scaler,
    request: Request,
    path: ServicePath,
    forward: Forward | None = None,
    balancer: Balancer | None = None,
    outcome: Outcome | None = None,
) -> Response:
    """Serve `request` on a replica of `scaler`: at once if one has a free slot, else buffered.

    `forward` (default `path.send`) is what sends to the chosen replica; a revision passes a
    wrapper that notes when the request left the buffer, so its latency excludes the cold start,
    its own `balancer` when it has a strategy of its own, and an `outcome` to learn how the
    request ended: when the replica answers, even after a `buffer_keepalive` head went out.
    """
    if outcome is None:
        return (await _serve_scaled(scaler, request, path, forward, balancer, None))[0]
    try:
        response, reported = await _serve_scaled(scaler, request, path, forward, balancer, outcome)
    except GatewayError:
        outcome(True)
        raise
    if not reported:
        outcome(response.status >= 500)
    return response


async def _serve_scaled(
    scaler: Scaler,
    request: Request,
    path: ServicePath,
    forward: Forward | None,
    balancer: Balancer | None,
    outcome: Outcome | None,
) -> tuple[Response, bool]:
    """The response, and whether `outcome` is taken care of (a keepalive stream reports later)."""
    scaling = scaler.scaling
    send = forward or path.send
    balancer = balancer or path.balancer
    refused: set[str] = set()  # replicas that refused this request's connection

    def pick(candidates: Sequence[str]) -> str:
        fresh = [url for url in candidates if url not in refused] or list(candidates)
        chosen = balancer.pick([scaler.backend(url) for url in fresh], request)
        return chosen.url if chosen is not None else fresh[0]

    buffer = scaler.buffer
    data: bytes | None = None
    failure: BaseException | None = None
    arrived: float | None = None  # when the request first queued (a second wait keeps its deadline)
    while True:
        lease = buffer.try_acquire(pick)
        if lease is None:
            if not scaling.buffer_enabled:
                buffer.refuse()  # still demand: the autoscaler scales up from it
                raise NoHealthyBackend(
                    f"service {scaler.service!r} has no ready replica",
                    headers=[("retry-after", str(int(buffer.retry_after)))],
                )
            ticket = buffer.enqueue(request.content_length, pick, arrived, priority_of(request.state))
            arrived = ticket.arrived
            body = request.body if request.has_body else None
            if scaling.buffer_keepalive and _accepts_sse(request) and failure is None:
                interval = scaling.buffer_keepalive
                return _keepalive_response(scaler, ticket, request, body, interval, send, outcome), True
            admission = await ticket.wait(body)
            assert admission is not None
            lease, data = admission.lease, admission.body
        if failure is not None and lease.replica in refused:  # no other replica has a slot
            lease.release()
            raise failure
        try:
            return await _send(scaler, request, lease, data, send), False
        except CONNECT_FAILURES as exc:
            if not scaler.is_ready(lease.replica):
                continue  # it left rotation meanwhile: wait for the next replica (module docstring)
            # Nothing reached the replica (gone before the executor noticed): another ready one
            # may take the request as it is, as Knative's activator retries.
            refused.add(lease.replica)
            if all(url in refused for url in scaler.executor.ready_endpoints()):
                raise
            failure = exc


async def _send(
    scaler: Scaler, request: Request, lease: Lease, data: bytes | None, forward: Forward
) -> Response:
    if data is not None:
        request.body = iter_body(data)
    try:
        response = await forward(request, scaler.backend(lease.replica))
    except BaseException:
        lease.release()
        raise
    response.body = OnEnd(response.body, lease.release)
    return response


def _accepts_sse(request: Request) -> bool:
    return "text/event-stream" in (request.headers.get_joined("accept") or "")


def _keepalive_response(
    scaler: Scaler,
    ticket: Ticket,
    request: Request,
    body: BodyStream | None,
    interval: float,
    forward: Forward,
    outcome: Outcome | None,
) -> Response:
    """Commit a 200 event stream now; keep it alive until a replica answers, then relay it.

    `outcome` hears of the replica's answer (or the gateway error) when it comes, not of the
    200 committed now; a client that leaves before then reports nothing.
    """

    async def stream() -> AsyncGenerator[bytes, None]:
        waiting, data = ticket, body
        try:
            while True:
                admission = await waiting.wait(data, max_wait=interval)
                if admission is None:
                    yield b": waiting for a replica\n\n"
                    continue
                try:
                    response = await _send(scaler, request, admission.lease, admission.body, forward)
                    break
                except CONNECT_FAILURES:
                    if scaler.is_ready(admission.lease.replica):
                        raise
                # The replica left rotation on the way (module docstring): wait for the next one.
                data = request.body if request.has_body else None
                waiting = scaler.buffer.enqueue(
                    request.content_length, ticket.pick, ticket.arrived, priority_of(request.state)
                )
        except GatewayError as exc:
            if outcome is not None:
                outcome(True)
            yield _sse_error(exc.status, exc.reason)
            return
        finally:
            waiting.cancel()
        if outcome is not None:
            outcome(response.status >= 500)
        try:
            if response.status != 200:
                yield _sse_error(response.status, "upstream_error")
                return
            async for chunk in response.body:
                yield chunk
        finally:
            await response.aclose()

    headers = Headers.from_pairs(
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("x-a3s-cold-start", "buffered"),
        ]
    )
    # A client that leaves before the body is read gives its place (or its slot) back.
    return Response(200, headers, OnEnd(stream(), ticket.cancel))


def _sse_error(status: int, reason: str) -> bytes:
    return f"event: error\ndata: {json.dumps({'status': status, 'type': reason})}\n\n".encode()
