"""`forward-auth`: ask an external service (Authelia, oauth2-proxy, Keycloak gatekeeper...) first.

```hcl
middlewares "sso" {
  type                          = "forward-auth"
  forward_auth_url              = "http://auth.internal:9091/api/verify"    # A3S keys
  forward_auth_response_headers = ["X-User-Id", "X-User-Role"]
  # auth_request_headers = ["Authorization", "Cookie"]   # default: every end-to-end header
  # method               = "GET"                         # default: the request's own method
  # timeout              = "5s"
  # tls_verify           = true
}
```

For every request the gateway sends the auth service a request without a body: the original
method (or `method`, e.g. `"GET"` as Traefik always uses), the original request's headers (only
`auth_request_headers` when set; hop-by-hop fields and the body's framing never), and
`X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri` and `-For` describing the original request. Those
five are always the gateway's own, replacing whatever the client sent.

- A 2xx answer lets the request through; each header named in `forward_auth_response_headers` is
  copied from the answer onto the request (replacing any value the client sent, so identity
  headers cannot be forged; absent in the answer means removed from the request).
- Any other answer goes back to the client as it came: status, headers (minus hop-by-hop) and
  body, streamed. A 302 to a login page therefore reaches the browser (redirects are not followed).
- A timeout is a 504 and an unreachable or broken auth service a 502. The request never passes
  when the answer is unknown.

The httpx client (its connection pool to the auth service) is kept in the node's state, so it
survives reloads that keep this middleware, and is closed when the middleware is removed. The
environment's proxy variables are ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from ...runtime.api import Handler, Headers, Request, Response
from ...runtime.errors import BadGateway, GatewayTimeout, UpstreamConnectError
from ..base import BuildContext, MiddlewareKind
from ..common.fields import FRAMING, hop_by_hop_names
from ..registry import register
from .schemas.forward_auth import ForwardAuthConfig

__all__ = ["ForwardAuth", "ForwardAuthConfig"]

_FORWARDED = (
    "x-forwarded-method",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-uri",
    "x-forwarded-for",
)
# Never sent to the auth service: its own Host is httpx's, and no body is sent.
_NOT_SENT = frozenset({"host", *FRAMING, "expect", *_FORWARDED})


@register("middleware", "forward-auth")
class ForwardAuth(MiddlewareKind[ForwardAuthConfig]):
    state: httpx.AsyncClient

    @classmethod
    def new_state(cls, config: ForwardAuthConfig, ctx: BuildContext) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=config.timeout, verify=config.tls_verify, trust_env=False, follow_redirects=False
        )

    @classmethod
    async def close_state(cls, state: httpx.AsyncClient) -> None:
        await state.aclose()

    async def __call__(self, request: Request, next: Handler) -> Response:
        auth = self.state.build_request(
            self.config.method or request.method,
            self.config.forward_auth_url,
            headers=self.auth_headers(request),
        )
        try:
            answer = await self.state.send(auth, stream=True)
        except httpx.TimeoutException:
            raise GatewayTimeout("the authentication service timed out") from None
        except httpx.ConnectError:
            raise UpstreamConnectError("the authentication service is unreachable") from None
        except httpx.HTTPError as exc:
            raise BadGateway(f"the authentication service failed: {type(exc).__name__}") from None
        if not 200 <= answer.status_code < 300:
            return _passthrough(answer)
        await _drain(answer)
        for name in self.config.forward_auth_response_headers:
            request.headers.remove(name)
            for value in answer.headers.get_list(name):
                request.headers.add(name, value)
        return await next(request)

    def auth_headers(self, request: Request) -> list[tuple[bytes, bytes]]:
        """The headers of the auth request: the chosen request headers and X-Forwarded-*."""
        skip = _NOT_SENT | hop_by_hop_names(request.headers.get_joined("connection"))
        wanted = self.config.auth_request_headers
        allow = {n.lower() for n in wanted} if wanted is not None else None
        out = [
            (k, v)
            for k, v in request.headers.raw
            if k.decode("latin-1") not in skip and (allow is None or k.decode("latin-1") in allow)
        ]
        for name, value in (
            ("x-forwarded-method", request.method),
            ("x-forwarded-proto", request.scheme),
            ("x-forwarded-host", request.host),
            ("x-forwarded-uri", request.target),
            ("x-forwarded-for", request.client_ip),
        ):
            out.append((name.encode(), value.encode("latin-1")))
        return out


def _passthrough(answer: httpx.Response) -> Response:
    """The auth service's answer as the client's response, body streamed as it arrives."""
    skip = hop_by_hop_names(answer.headers.get("connection")) | {"transfer-encoding"}
    headers = Headers(
        (k.lower(), v) for k, v in answer.headers.raw if k.lower().decode("latin-1") not in skip
    )
    return Response(answer.status_code, headers, _AuthBody(answer), generated=True)


class _AuthBody:
    """The auth service's body as a `BodyStream`; closing it (read or not) releases the connection."""

    def __init__(self, answer: httpx.Response) -> None:
        self._answer = answer
        self._chunks = answer.aiter_raw()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._chunks.__anext__()
            while not chunk:
                chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            await self._answer.aclose()
            raise
        except httpx.HTTPError as exc:
            await self._answer.aclose()
            raise BadGateway(f"the authentication service's body failed: {type(exc).__name__}") from None
        return chunk

    async def aclose(self) -> None:
        await self._answer.aclose()


async def _drain(answer: httpx.Response, limit: int = 65536) -> None:
    """Read a small 2xx body so the connection goes back to the pool; give up past `limit`."""
    seen = 0
    try:
        async for chunk in answer.aiter_raw():
            seen += len(chunk)
            if seen > limit:
                break
    except httpx.HTTPError:
        pass
    finally:
        await answer.aclose()
