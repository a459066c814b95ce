"""ACME Renewal Information (RFC 9773) where the server offers it: the renewal time comes from the
server's suggested window. Debian's pebble (2.4) has no ARI, so this asks a fake ACME directory
over HTTPS on loopback that checks the certificate id the client derives (AKI.serial, base64url)."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from a3s_gateway.runtime.acme.client import renewal_time

from .backends import make_certs

NOW = datetime.datetime.now(datetime.UTC)
START, END = NOW + datetime.timedelta(days=10), NOW + datetime.timedelta(days=11)


def _issued() -> tuple[bytes, str]:
    """A leaf with an Authority Key Identifier, and the ARI id of it (RFC 9773 §4.1)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari.test")])
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x0087654321)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=60))
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    assert aki.key_identifier is not None
    ident = base64.urlsafe_b64encode(aki.key_identifier).decode().rstrip("=")
    serial = base64.urlsafe_b64encode(bytes.fromhex("0087654321")).decode().rstrip("=")
    return cert.public_bytes(serialization.Encoding.PEM), f"{ident}.{serial}"


@contextmanager
def fake_directory(tmp_path: Path, ari: bool) -> Iterator[tuple[str, str, list[str]]]:
    certs = make_certs(tmp_path, ["localhost"])
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"https://localhost:{self.server.server_address[1]}"
            asked.append(self.path)
            body: dict[str, Any]
            if self.path == "/dir":
                body = {
                    k: f"{base}/{k}"
                    for k in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange")
                }
                if ari:
                    body["renewalInfo"] = f"{base}/ari"
            else:
                window = {
                    "start": START.isoformat().replace("+00:00", "Z"),
                    "end": END.isoformat().replace("+00:00", "Z"),
                }
                body = {"suggestedWindow": window}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certs.leaves["localhost"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/dir", certs.ca_file, asked
    finally:
        server.shutdown()
        server.server_close()


def test_renewal_time_comes_from_the_suggested_window(tmp_path: Path) -> None:
    chain, ident = _issued()
    with fake_directory(tmp_path, ari=True) as (directory, ca, asked):
        when = renewal_time(directory, ca, chain)
    assert when is not None
    when = when if when.tzinfo else when.replace(tzinfo=datetime.UTC)
    assert START <= when <= END + datetime.timedelta(seconds=1)
    assert asked == ["/dir", f"/ari/{ident}"]


def test_no_ari_leaves_the_lifetime_rule(tmp_path: Path) -> None:
    chain, _ident = _issued()
    with fake_directory(tmp_path, ari=False) as (directory, ca, asked):
        assert renewal_time(directory, ca, chain) is None
    assert asked == ["/dir"]
