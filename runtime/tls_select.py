"""TLS options by SNI: the SSL context a handshake starts with, chosen from its ClientHello.

A router's `tls { options = "modern" }` (compiler/tls_options.py) asks that clients naming one of
its hosts be handshaken with those options. Python's `sni_callback` comes too late for that:
OpenSSL has read the ClientHello and fixed the protocol version range before the callback runs,
so swapping the context there changes the certificate but not `min_version`, `max_version` or the
ciphers. So an entrypoint whose routers name options reads the ClientHello first (l4/peek.py,
parsed by protocols/clienthello.py, as TCP HostSNI routing does), picks the context of that SNI
and replays the bytes into the handshake.

Every context is built when the entrypoint's listener is prepared (a reload builds them beside
the running ones; the listener swaps at commit), so a connection pays a dict lookup. An
entrypoint without per-host options keeps one context and reads nothing ahead.

Beside certificate resolvers (ACME), each of those contexts serves the ACME certificates too,
from the table's variant that carries the same options (runtime/acme/table.py), so a host gets
its issued certificate and its options' handshake. The ACME server's own TLS-ALPN-01 handshake
(a hello offering `acme-tls/1` for a name whose challenge is pending) gets a context without any
options: a client-certificate requirement or a cipher list must not fail the validation (the
peek sees the ALPN list, which Python's SNI callback cannot). So an ACME entrypoint whose
`default` options are set reads the ClientHello first as well.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import anyio.abc

from ..compiler.schema import TlsConfig, TlsOptionsConfig
from ..compiler.tls_options import EntrypointOptions
from .api import Handler, Request, Response
from .errors import MisdirectedRequest
from .protocols.clienthello import MAX_HELLO, ClientHello
from .tls import server_context

if TYPE_CHECKING:
    from .acme.table import CertificateTable

__all__ = ["OPTIONS_ATTRIBUTE", "SniContexts", "entrypoint_context", "fronting_guard", "sni_contexts"]

_T = TypeVar("_T")
# RFC 8737's ALPN protocol (runtime/acme/table.py's ACME_TLS_ALPN, not imported: the ACME
# package loads only when resolvers are configured).
_ACME_TLS_ALPN = "acme-tls/1"

# Attributes set on an entrypoint's default context: the plan it was built from (a reload
# compares it: runtime/entrypoints.py) and, with per-host options, the contexts by SNI.
OPTIONS_ATTRIBUTE = "a3s_tls_options"
_BY_SNI_ATTRIBUTE = "a3s_by_sni"


class SniContexts:
    """The contexts of an entrypoint's hosts that have options of their own, and the default
    (with ACME, also the context without options that answers TLS-ALPN-01 validations)."""

    __slots__ = ("_peek_hello", "_replayed", "by_name", "challenges", "default", "plain")

    def __init__(
        self,
        default: ssl.SSLContext,
        by_name: Mapping[str, ssl.SSLContext],
        challenges: Mapping[str, object] | None = None,
        plain: ssl.SSLContext | None = None,
    ) -> None:
        # runtime/l4 (the package of the ClientHello reader) is imported here, when an entrypoint
        # has per-host options, not by every worker (its idle memory: tests/test_worker_imports.py).
        from .l4.peek import Replayed, peek_hello

        self.default, self.by_name = default, dict(by_name)
        # With ACME: the names whose TLS-ALPN-01 challenge is pending (the table's live dict) and
        # the context, without options, that answers them.
        self.challenges, self.plain = challenges, plain
        self._peek_hello, self._replayed = peek_hello, Replayed

    def choose(self, sni: str | None) -> ssl.SSLContext:
        """The context for a client that sent `sni` (exact name, then a `*.` one label deep)."""
        chosen = _lookup(self.by_name, sni)
        return chosen if chosen is not None else self.default

    async def peek(self, stream: anyio.abc.ByteStream) -> tuple[ssl.SSLContext, anyio.abc.ByteStream]:
        """Read the ClientHello of `stream`; return its context and the stream with the bytes
        read put back (raises ClientHelloError, EndOfStream; the caller bounds the time)."""
        hello, first = await self._peek_hello(stream, MAX_HELLO)
        if not isinstance(hello, ClientHello):
            return self.default, self._replayed(stream, first)
        challenges, sni = self.challenges, hello.sni
        if challenges and _ACME_TLS_ALPN in hello.alpn and (sni or "").lower().rstrip(".") in challenges:
            # The ACME server validating TLS-ALPN-01: no options in its way.
            return self.plain or self.default, self._replayed(stream, first)
        return self.choose(sni), self._replayed(stream, first)


def entrypoint_context(
    config: TlsConfig,
    plan: EntrypointOptions | None,
    *,
    alpn: Sequence[str],
    acme: CertificateTable | None = None,
) -> ssl.SSLContext:
    """The default context of a TLS entrypoint, with the per-host contexts its plan asks for
    attached (`sni_contexts`); with `acme`, each of them serves the ACME certificates too."""

    def build(options: TlsOptionsConfig | None) -> ssl.SSLContext:
        return server_context(config, alpn=alpn, acme=acme, options=options)

    default = build(plan.default if plan is not None else None)
    setattr(default, OPTIONS_ATTRIBUTE, plan)
    if plan is None:
        return default
    built = {name: build(o) for name, o in plan.options}
    by_name = {host: built[name] for host, name in plan.by_host}
    if acme is None:
        if by_name:
            setattr(default, _BY_SNI_ATTRIBUTE, SniContexts(default, by_name))
    elif by_name or plan.default is not None:
        plain = default if plan.default is None else build(None)
        setattr(default, _BY_SNI_ATTRIBUTE, SniContexts(default, by_name, acme.challenges, plain))
    return default


def sni_contexts(ctx: ssl.SSLContext | None) -> SniContexts | None:
    """The per-host contexts of an entrypoint's context (None: one context for every name)."""
    found = getattr(ctx, _BY_SNI_ATTRIBUTE, None)
    return found if isinstance(found, SniContexts) else None


def _lookup(by_name: Mapping[str, _T], name: str | None) -> _T | None:
    if not name:
        return None
    name = name.lower().rstrip(".")
    found = by_name.get(name)
    if found is None and "." in name:
        found = by_name.get("*." + name.split(".", 1)[1])
    return found


def fronting_guard(handler: Handler, by_host: Mapping[str, str]) -> Handler:
    """`handler` behind Traefik's domain-fronting check: a request whose Host has other TLS options
    than its connection's SNI chose is a 421, so that a client cannot handshake under lax options
    (no client certificate) and then ask for a host that requires stricter ones. Wrapped around
    the routers of entrypoints with per-host options only."""

    def guarded(request: Request) -> Awaitable[Response]:
        host = request.host
        if host[-1:] != "]" and ":" in host:
            host = host.rsplit(":", 1)[0]
        sni = request.sni
        if host.lower().rstrip(".") != (sni or "").lower().rstrip(".") and _lookup(by_host, host) != _lookup(
            by_host, sni
        ):
            raise MisdirectedRequest(f"the Host {host!r} has other TLS options than the SNI {sni!r}")
        return handler(request)

    return guarded
