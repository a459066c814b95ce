"""The live ACME certificates of a gateway, by name, as the SSL contexts handshakes switch to.

An entrypoint's server context (runtime/tls.py) keeps a reference to one of this table's
dicts, name -> SSLContext, and its SNI callback looks names up there after the entrypoint's own
certificates. Installing a certificate builds a new context for it and replaces the dict entry:
that is the whole hot swap. A handshake that starts afterwards gets the new certificate; an open
connection keeps the SSL object (and the context) it was made with, so nothing is cut. The table
outlives reloads (the manager owns it), so a reload keeps every issued certificate.

A context carries its entrypoint's ALPN list and minimum TLS version, and the TLS options of the
hosts it serves (`tls_options`, chosen by SNI: runtime/tls_select.py), so the table keeps one dict
per (ALPN, minimum version, options) variant that a server context asked for, each filled for
every certificate.

TLS-ALPN-01 (RFC 8737): while a challenge is pending for a name, a handshake for that name
that offers `acme-tls/1` gets the challenge certificate. Python's SNI callback cannot see the
client's ALPN list, so the table watches the ClientHello itself: while any challenge is
pending, the server contexts get a message callback (`SSLContext._msg_callback`, CPython's
debugging hook, called with each handshake message before the SNI callback) that parses the
ClientHello with protocols/clienthello.py and marks the SSL object when it offers `acme-tls/1`.
With no challenge pending there is no callback, and handshakes pay nothing.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from ...compiler.schema import CertificateConfig, TlsOptionsConfig
from ..protocols.clienthello import ClientHello, parse_client_hello

__all__ = ["ACME_TLS_ALPN", "ACME_TLS_ATTRIBUTE", "CertificateTable", "context_from_pem"]

ACME_TLS_ALPN = "acme-tls/1"
ACME_TLS_ATTRIBUTE = "a3s_acme_tls"
# (ALPN protocols, minimum TLS version, the TLS options as JSON: "" for none)
Variant = tuple[tuple[str, ...], str, str]


def context_from_pem(
    chain: bytes,
    key: bytes,
    alpn: Sequence[str],
    min_version: str,
    options: TlsOptionsConfig | None = None,
) -> ssl.SSLContext:
    """A server context for a certificate held in memory (ssl loads chains from files only: they
    live for the call in a private temporary folder), with `options` applied."""
    from ..tls import apply_options, certificate_context

    with tempfile.TemporaryDirectory(prefix="a3s-acme-") as folder:
        cert_file, key_file = os.path.join(folder, "chain.pem"), os.path.join(folder, "key.pem")
        for path, data in ((cert_file, chain), (key_file, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        ctx = certificate_context(
            CertificateConfig(cert_file=cert_file, key_file=key_file), min_version, list(alpn)
        )
    if options is not None:
        apply_options(ctx, options)
    return ctx


class CertificateTable:
    def __init__(self) -> None:
        self._issued: dict[str, tuple[bytes, bytes]] = {}  # name -> (chain, key)
        self._variants: dict[Variant, dict[str, ssl.SSLContext]] = {}
        self._options: dict[str, TlsOptionsConfig] = {}  # a variant's options, by their JSON
        # Name -> the TLS-ALPN-01 challenge context (ALPN acme-tls/1 only); set from the ACME thread.
        self.challenges: dict[str, ssl.SSLContext] = {}
        self._servers: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
        self._lock = threading.Lock()

    def contexts(
        self, alpn: Sequence[str], min_version: str, options: TlsOptionsConfig | None = None
    ) -> dict[str, ssl.SSLContext]:
        """The live dict a server context with this ALPN list, minimum version and TLS options
        looks names up in."""
        key = options.model_dump_json() if options is not None else ""
        variant = (tuple(alpn), min_version, key)
        found = self._variants.get(variant)
        if found is None:
            if options is not None:
                self._options[key] = options
            # Registered before it is filled, so that a certificate installed meanwhile (from the
            # ACME thread) lands in it either way.
            found = self._variants[variant] = {}
            for name, (chain, k) in list(self._issued.items()):
                found[name] = self._build(variant, chain, k)
        return found

    def _build(self, variant: Variant, chain: bytes, key: bytes) -> ssl.SSLContext:
        alpn, min_version, options = variant
        return context_from_pem(chain, key, alpn, min_version, self._options.get(options))

    def watch(self, server: ssl.SSLContext) -> None:
        """A server context that must see TLS-ALPN-01 handshakes (ClientHello watched while pending)."""
        # Under the lock: the ACME thread's last remove_challenge must not slip in between the
        # test and the set, which would leave the callback on with nothing pending.
        with self._lock:
            self._servers.add(server)
            if self.challenges:
                server._msg_callback = _note_acme_alpn  # type: ignore[attr-defined]

    def install(self, names: Sequence[str], chain: bytes, key: bytes) -> None:
        """Serve `chain` for `names` from the next handshake on (the swap)."""
        built = {v: self._build(v, chain, key) for v in list(self._variants)}
        for name in names:
            self._issued[name] = (chain, key)
            for variant, ctx in built.items():
                self._variants[variant][name] = ctx

    def add_challenge(self, domain: str, chain: bytes, key: bytes) -> None:
        ctx = context_from_pem(chain, key, [ACME_TLS_ALPN], "1.2")
        with self._lock:
            self.challenges[domain] = ctx
            for server in list(self._servers):
                server._msg_callback = _note_acme_alpn  # type: ignore[attr-defined]

    def remove_challenge(self, domain: str) -> None:
        with self._lock:
            self.challenges.pop(domain, None)
            if not self.challenges:
                for server in list(self._servers):
                    server._msg_callback = None  # type: ignore[attr-defined]


# ssl's private enums of the message callback (ssl._TLSContentType and ssl._TLSMessageType).
_HANDSHAKE = 22
_CLIENT_HELLO = 1


def _note_acme_alpn(
    conn: Any, direction: str, _version: Any, content_type: Any, msg_type: Any, data: bytes
) -> None:
    if direction != "read" or content_type != _HANDSHAKE or msg_type != _CLIENT_HELLO:
        return
    record = b"\x16\x03\x01" + len(data).to_bytes(2, "big") + data
    hello = parse_client_hello(record, len(record))
    if isinstance(hello, ClientHello) and ACME_TLS_ALPN in hello.alpn:
        setattr(conn, ACME_TLS_ATTRIBUTE, True)
