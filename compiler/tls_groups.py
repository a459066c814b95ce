"""`curve_preferences`: the key-exchange groups a handshake may use, in the server's order.

Traefik's `curvePreferences` is Go's `tls.Config.CurvePreferences`: an ordered list of groups.
Python's `ssl` can set one group at most (`SSLContext.set_ecdh_curve`, which OpenSSL turns into a
one-element list), so the whole list is handed to OpenSSL's `SSL_CTX_set1_groups_list` here.
That function is a macro over `SSL_CTX_ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, "X25519:P-256")`,
called through ctypes on the `SSL_CTX *` that CPython's `PySSLContext` holds right after its
object header (the sslpsk package reaches `SSL *` the same way), from the libssl that `_ssl`
itself is linked to (looked up through `_ssl`'s own handle, so never another copy of OpenSSL).

Reaching into CPython's struct is a layout assumption, so it is checked before it is trusted:
once per process, `verify()` reads the context's options through the pointer (they must equal
`SSLContext.options`), sets a list on a fresh context and makes two in-memory TLS 1.3 handshakes
(`ssl.MemoryBIO`): a client offering only a group outside the list must be refused and one
inside it served. An interpreter where any of this fails makes `curve_preferences` a compile
error naming the key ("what compiles, runs"), never a setting silently ignored.

In TLS 1.2 the order is the server's preference (contexts set OP_CIPHER_SERVER_PREFERENCE); in
TLS 1.3 OpenSSL accepts a key share the client sent if its group is in the list (saving a round
trip) and uses the order when it must ask for another (HelloRetryRequest).
"""

from __future__ import annotations

import ctypes
import datetime
import functools
import ssl
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["CURVES", "GroupsError", "set_groups", "unavailable", "verify"]

# Traefik's names (Go's CurveID names and the RFC 8446 ones it also accepts) -> OpenSSL's.
CURVES: Mapping[str, str] = {
    "CurveP256": "P-256",
    "secp256r1": "P-256",
    "CurveP384": "P-384",
    "secp384r1": "P-384",
    "CurveP521": "P-521",
    "secp521r1": "P-521",
    "X25519": "X25519",
    "x25519": "X25519",
    "X25519MLKEM768": "X25519MLKEM768",  # OpenSSL 3.5 and later
}
_SSL_CTRL_SET_GROUPS_LIST = 92  # ssl.h


class GroupsError(RuntimeError):
    """The groups cannot be set on this interpreter or with this OpenSSL; the message says why."""


@functools.cache
def _functions() -> tuple[Callable[..., int], Callable[..., int]]:
    """(SSL_CTX_ctrl, SSL_CTX_get_options) of the libssl `_ssl` uses."""
    import _ssl

    path = getattr(_ssl, "__file__", None)
    try:
        # dlsym on _ssl's handle searches _ssl and the libraries it was linked with; a Python
        # that has _ssl built in exports OpenSSL from the executable (CDLL(None)).
        library = ctypes.CDLL(path) if path else ctypes.CDLL(None)
        ctrl, get_options = library.SSL_CTX_ctrl, library.SSL_CTX_get_options
    except (OSError, AttributeError) as exc:
        raise GroupsError(f"OpenSSL's SSL_CTX_ctrl is not reachable from Python's _ssl ({exc})") from None
    ctrl.restype, ctrl.argtypes = (
        ctypes.c_long,
        [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p],
    )
    get_options.restype, get_options.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
    return ctrl, get_options


def _ssl_ctx(ctx: ssl.SSLContext) -> int:
    """The `SSL_CTX *` of `ctx`: the first field after PyObject_HEAD (object.__basicsize__ is
    that header's size on this interpreter, debug builds included)."""
    _, get_options = _functions()
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or get_options(pointer) != int(ctx.options):
        raise GroupsError("this Python's SSLContext does not hold its SSL_CTX where expected")
    return pointer


def _set(ctx: ssl.SSLContext, openssl_names: Sequence[str]) -> bool:
    ctrl, _ = _functions()
    return ctrl(_ssl_ctx(ctx), _SSL_CTRL_SET_GROUPS_LIST, 0, ":".join(openssl_names).encode()) == 1


def set_groups(ctx: ssl.SSLContext, curves: Sequence[str]) -> None:
    """Restrict `ctx` to `curves` (Traefik's names, checked by the compiler), in that order."""
    verify()
    if not _set(ctx, [CURVES[c] for c in curves]):
        raise GroupsError(f"OpenSSL refused the groups {', '.join(curves)}")


def unavailable(curves: Sequence[str]) -> list[str]:
    """The known names of `curves` that the OpenSSL in use does not implement (X25519MLKEM768
    before OpenSSL 3.5); raises GroupsError when no group can be set at all."""
    verify()
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return [c for c in curves if c in CURVES and not _set(scratch, [CURVES[c]])]


@functools.cache
def _verified() -> str | None:
    try:
        with tempfile.TemporaryDirectory() as folder:
            cert, key = _probe_identity(Path(folder))
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.load_cert_chain(cert, key)
        if not _set(server, ["P-384"]):
            return "OpenSSL refused a group list"
        if _handshake(server, "prime256v1") or not _handshake(server, "secp384r1"):
            return "a group list set on an SSL_CTX did not act on the handshake"
    except GroupsError as exc:
        return str(exc)
    return None


def verify() -> None:
    """Raise GroupsError unless setting groups works on this interpreter (checked once)."""
    problem = _verified()
    if problem is not None:
        raise GroupsError(f"{problem} ({ssl.OPENSSL_VERSION})")


def _handshake(server: ssl.SSLContext, client_group: str) -> bool:
    """Whether a TLS 1.3 client offering only `client_group` completes a handshake, in memory."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.set_ecdh_curve(client_group)  # a client's one group: all it offers
    into_server, from_server, into_client, from_client = (ssl.MemoryBIO() for _ in range(4))
    ends = [
        (client.wrap_bio(into_client, from_client), from_client, into_server),
        (server.wrap_bio(into_server, from_server, server_side=True), from_server, into_client),
    ]
    for _ in range(8):
        done = 0
        for end, outgoing, peer in ends:
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return False
            peer.write(outgoing.read())
        if done == 2:
            return True
    return False


def _probe_identity(folder: Path) -> tuple[str, str]:
    """A throw-away self-signed certificate and key for the probe handshakes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "curve-probe.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "probe.crt", folder / "probe.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)
