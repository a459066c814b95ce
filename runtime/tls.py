"""TLS contexts: termination on entrypoints (SNI, ALPN) and verification of https:// upstreams.

Server side: every certificate gets its own `SSLContext`; the first one is the default, and an
`sni_callback` on it switches the handshake to the context whose certificate names match the
server name the client asked for (exact name first, then a `*.` wildcard one label deep, RFC
6125 §6.4.3). The callback also records the name on the SSL object, where the connection reads
it for `Request.sni`. Broken files are reported as a `TlsConfigError` naming the file, so the
operator sees "cert.pem: no such file", not a traceback.

Client side: the system trust store via `ssl.create_default_context` (verification and
hostname checking on); anyio sends the upstream host as SNI.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from ..compiler.schema import CertificateConfig, TlsConfig, TlsOptionsConfig

if TYPE_CHECKING:
    from .acme.table import CertificateTable

__all__ = [
    "SNI_ATTRIBUTE",
    "TlsConfigError",
    "certificate_context",
    "client_context",
    "default_client_context",
    "server_context",
    "server_name_of",
]

# Attribute set on the SSLObject by the SNI callback (SSLObject has no slot for it).
SNI_ATTRIBUTE = "a3s_server_name"


class TlsConfigError(ValueError):
    """A certificate or key file that cannot be used; the message names the file."""


def server_context(
    config: TlsConfig,
    *,
    alpn: Sequence[str] = ("h2", "http/1.1"),
    acme: CertificateTable | None = None,
    options: TlsOptionsConfig | None = None,
) -> ssl.SSLContext:
    """The context an entrypoint terminates TLS with; ALPN offers h2 first (`tls { alpn }` overrides).

    With `acme` (the gateway's ACME certificates, runtime/acme/table.py), names that none of the
    entrypoint's own certificates covers are looked up there at each handshake, so a certificate
    issued or renewed later is served from the next handshake on. An entrypoint with no
    certificate of its own serves a self-signed one for names not issued yet, or refuses them
    (`tls { fallback = "refuse" }`).

    `options` (a `tls_options` block, runtime/tls_select.py) overrides the entrypoint's settings
    it sets, on every certificate's context."""
    certificates = config.all_certificates()
    if not certificates and acme is None:
        raise TlsConfigError(
            "tls: no certificate configured, and no certificate resolver serves this entrypoint"
        )
    protocols = list(config.alpn) if config.alpn else list(alpn)
    min_version = config.min_version
    if options is not None:
        protocols = list(options.alpn_protocols) if options.alpn_protocols is not None else protocols
        min_version = options.min_version or min_version
    contexts = [certificate_context(c, min_version, protocols) for c in certificates]
    if options is not None:
        for ctx in contexts:
            apply_options(ctx, options)
    by_name: dict[str, ssl.SSLContext] = {}
    # Earlier certificates win a name they share with later ones (the first is the default).
    for cert, ctx in reversed(list(zip(certificates, contexts, strict=True))):
        for name in _names(cert):
            by_name[name] = ctx
    # sni_strict (Traefik's sniStrict): no SNI, or one no certificate names, is refused.
    strict = options is not None and options.sni_strict
    if acme is not None:
        return _acme_context(config, protocols, min_version, options, contexts, by_name, acme)
    default = contexts[0]

    def choose(obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> int | None:
        if name is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if strict else None
        name = name.lower().rstrip(".")
        setattr(obj, SNI_ATTRIBUTE, name)
        chosen = by_name.get(name)
        if chosen is None and "." in name:
            chosen = by_name.get("*." + name.split(".", 1)[1])
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if strict else None
        if chosen is not default:
            obj.context = chosen
        return None

    if len(contexts) > 1 or strict:
        default.sni_callback = choose
    else:
        default.sni_callback = lambda obj, name, _ctx: (
            setattr(obj, SNI_ATTRIBUTE, name.lower()) if name else None
        )
    return default


def _acme_context(
    config: TlsConfig,
    protocols: list[str],
    min_version: str,
    options: TlsOptionsConfig | None,
    contexts: list[ssl.SSLContext],
    by_name: dict[str, ssl.SSLContext],
    acme: CertificateTable,
) -> ssl.SSLContext:
    """A server context whose SNI callback also serves ACME certificates and TLS-ALPN-01 answers;
    with `options`, the ACME certificates' contexts have them too (the table's variant)."""
    from .acme.keys import fallback_certificate
    from .acme.table import ACME_TLS_ATTRIBUTE, context_from_pem

    if contexts:
        default = contexts[0]
    else:
        default = context_from_pem(*fallback_certificate(), protocols, min_version, options)
    # No SNI, or one no certificate names: the fallback certificate, unless the entrypoint has
    # only ACME certificates and refuses (`fallback = "refuse"`) or the options are sni_strict.
    refuse = (not contexts and config.fallback == "refuse") or (options is not None and options.sni_strict)
    issued = acme.contexts(protocols, min_version, options)
    challenges = acme.challenges

    def choose(obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> int | None:
        if name is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if refuse else None
        name = name.lower().rstrip(".")
        setattr(obj, SNI_ATTRIBUTE, name)
        if challenges and getattr(obj, ACME_TLS_ATTRIBUTE, False):
            answer = challenges.get(name)
            if answer is not None:
                obj.context = answer
                return None
        wildcard = "*." + name.split(".", 1)[1] if "." in name else None
        chosen = by_name.get(name) or issued.get(name)
        if chosen is None and wildcard is not None:
            chosen = by_name.get(wildcard) or issued.get(wildcard)
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if refuse else None
        if chosen is not default:
            obj.context = chosen
        return None

    default.sni_callback = choose
    acme.watch(default)
    # The live dict of pending TLS-ALPN-01 names (mutated in place by the table): a TCP entrypoint
    # answers an acme-tls/1 hello for one of them before routing (runtime/l4/connection.py).
    default.a3s_acme_challenges = challenges  # type: ignore[attr-defined]
    return default


def server_name_of(ssl_object: object) -> str | None:
    """The SNI the client sent on this connection (None when it sent none)."""
    name = getattr(ssl_object, SNI_ATTRIBUTE, None)
    return name if isinstance(name, str) else None


def apply_options(ctx: ssl.SSLContext, options: TlsOptionsConfig) -> None:
    """What a `tls_options` block sets beyond the minimum version and ALPN (server_context)."""
    from ..compiler.tls_groups import GroupsError, set_groups
    from ..compiler.tls_options import CIPHER_SUITES, is_pem_text

    if options.max_version is not None:
        ctx.maximum_version = (
            ssl.TLSVersion.TLSv1_2 if options.max_version == "1.2" else ssl.TLSVersion.TLSv1_3
        )
    if options.cipher_suites is not None:
        # TLS 1.2 suites only: Python's ssl cannot set TLS 1.3 ones (nor can Go's crypto/tls).
        ctx.set_ciphers(":".join(CIPHER_SUITES[s] for s in options.cipher_suites))
    if options.curve_preferences is not None:
        try:
            set_groups(ctx, options.curve_preferences)
        except GroupsError as exc:
            raise TlsConfigError(f"tls_options curve_preferences: {exc}") from None
    auth = options.client_auth
    if auth is None or auth.verify() == "NoClientCert":
        return
    for path in auth.ca_files:
        if is_pem_text(path):  # the PEM itself (checked by the compiler)
            ctx.load_verify_locations(cadata=path)
            continue
        try:
            ctx.load_verify_locations(cafile=path)
        except FileNotFoundError:
            raise TlsConfigError(f"{path}: no such file (client_auth ca_files)") from None
        except (ssl.SSLError, OSError) as exc:
            raise TlsConfigError(f"{path}: not a PEM CA file ({exc})") from None
    ctx.verify_mode = (
        ssl.CERT_REQUIRED if auth.verify() == "RequireAndVerifyClientCert" else ssl.CERT_OPTIONAL
    )


def certificate_context(cert: CertificateConfig, min_version: str, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(alpn)
    # No compression (CRIME), no renegotiation, server cipher preference.
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cert.cert_file, cert.key_file)
    except (FileNotFoundError, PermissionError) as exc:
        # ssl does not say which of the two files it could not open: find out.
        for path in (cert.cert_file, cert.key_file):
            if not os.path.isfile(path):
                raise TlsConfigError(f"{path}: no such file") from None
            if not os.access(path, os.R_OK):
                raise TlsConfigError(f"{path}: permission denied") from None
        raise TlsConfigError(f"{cert.cert_file}: {exc.strerror}") from None
    except ssl.SSLError as exc:
        raise TlsConfigError(_explain(cert, exc)) from None
    except OSError as exc:
        raise TlsConfigError(f"{cert.cert_file}: {exc.strerror or exc}") from None
    return ctx


def _explain(cert: CertificateConfig, exc: ssl.SSLError) -> str:
    text = str(exc)
    if "KEY_VALUES_MISMATCH" in text or "key values mismatch" in text:
        return f"{cert.key_file}: private key does not match certificate {cert.cert_file}"
    if "PEM" in text or "NO_START_LINE" in text:
        return f"{cert.cert_file} / {cert.key_file}: not a PEM certificate and key ({exc.reason or text})"
    return f"{cert.cert_file}: {exc.reason or text}"


def _names(cert: CertificateConfig) -> list[str]:
    """DNS names of the certificate (subjectAltName, else the common name), lower-case."""
    # Imported here: cryptography is ~10 MiB resident, and only a TLS entrypoint needs it.
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID, NameOID

    try:
        with open(cert.cert_file, "rb") as fh:
            parsed = x509.load_pem_x509_certificate(fh.read())
    except (OSError, ValueError) as exc:
        raise TlsConfigError(f"{cert.cert_file}: cannot read certificate ({exc})") from None
    try:
        san = parsed.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower().rstrip(".") for n in names]


def client_context(*, cafile: str | None = None, cadata: str | bytes | None = None) -> ssl.SSLContext:
    """A verifying context for https:// upstreams.

    With no argument it trusts the system CAs; `cafile`/`cadata` trust that CA instead (a
    private mesh CA, or a test's self-signed one).
    """
    ctx = ssl.create_default_context(cafile=cafile, cadata=cadata)
    # A server that picks h2 gets HTTP/2 (runtime/upstream/h2.py); else HTTP/1.1.
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


@cache
def default_client_context() -> ssl.SSLContext:
    """The process-wide system-CA context; loading the CA bundle takes milliseconds, so once."""
    return client_context()
