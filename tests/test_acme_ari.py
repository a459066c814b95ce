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

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from a3s_gateway.compiler.acme import ResolverPlan
from a3s_gateway.compiler.resolvers import AcmeConfig, TlsChallenge
from a3s_gateway.runtime.acme.client import Challenge, renewal_time
from a3s_gateway.runtime.acme.keys import key_pem
from a3s_gateway.runtime.acme.resolver import ResolverRun
from a3s_gateway.runtime.acme.storage import Stored, StoredCertificate, write_storage
from a3s_gateway.runtime.acme.table import CertificateTable

from .backends import make_certs
from .stubs import eventually

NOW = datetime.datetime.now(datetime.UTC)
START, END = NOW + datetime.timedelta(days=10), NOW + datetime.timedelta(days=11)


def _issued() -> tuple[bytes, str, bytes]:
    """A leaf with an Authority Key Identifier, the ARI id of it (RFC 9773 §4.1), and its key."""
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
    return cert.public_bytes(serialization.Encoding.PEM), f"{ident}.{serial}", key_pem(key)


@contextmanager
def fake_directory(
    tmp_path: Path, ari: bool, window: list[datetime.datetime] | None = None, retry_after: int | None = None
) -> Iterator[tuple[str, str, list[str]]]:
    """A directory (with ARI or not) whose suggested window is `window` (START, END by default;
    the test may move it), sent with `retry_after`."""
    certs = make_certs(tmp_path, ["localhost"])
    asked: list[str] = []
    window = window if window is not None else [START, END]

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
                start, end = (t.isoformat().replace("+00:00", "Z") for t in window)
                body = {"suggestedWindow": {"start": start, "end": end}}
            data = json.dumps(body).encode()
            self.send_response(200)
            if retry_after is not None and self.path != "/dir":
                self.send_header("retry-after", str(retry_after))
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
    chain, ident, _key = _issued()
    with fake_directory(tmp_path, ari=True) as (directory, ca, asked):
        before = datetime.datetime.now(datetime.UTC)
        found = renewal_time(directory, ca, chain)
        after = datetime.datetime.now(datetime.UTC)
    assert found is not None
    when, again = found
    assert START <= when <= END + datetime.timedelta(seconds=1)
    # No Retry-After: asked again in 6 hours (RFC 9773 §4.3.3) from when it was asked, in UTC.
    six_hours = datetime.timedelta(hours=6)
    assert again.tzinfo is not None and before + six_hours <= again <= after + six_hours
    assert asked == ["/dir", f"/ari/{ident}"]


def test_no_ari_leaves_the_lifetime_rule(tmp_path: Path) -> None:
    chain, _ident, _key = _issued()
    with fake_directory(tmp_path, ari=False) as (directory, ca, asked):
        assert renewal_time(directory, ca, chain) is None
    assert asked == ["/dir"]


class _NoSolver:
    """No challenge is answered here: an order against the fake directory fails before one."""

    def present(self, challenge: Challenge) -> None:
        raise AssertionError(challenge)

    def cleanup(self, challenge: Challenge) -> None:
        raise AssertionError(challenge)


@pytest.mark.anyio
async def test_ari_is_asked_again_and_may_bring_the_renewal_forward(tmp_path: Path) -> None:
    """A served certificate's ARI is asked again when Retry-After says: a window moved into the
    past (a mass revocation ahead) brings the renewal forward, and an order is made."""
    chain, ident, key = _issued()
    window = [START, END]
    storage = tmp_path / "acme.json"
    with fake_directory(tmp_path, ari=True, window=window, retry_after=1) as (directory, ca, asked):
        write_storage(
            str(storage),
            Stored(certificates={directory: {"ari.test": StoredCertificate(("ari.test",), chain, key)}}),
        )
        acme = AcmeConfig(
            directory=directory, ca_bundle=ca, storage=str(storage), tls_challenge=TlsChallenge()
        )
        run = ResolverRun(ResolverPlan("r", acme, (("ari.test",),), ()), CertificateTable(), _NoSolver())
        state = run.states[("ari.test",)]
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.run)
            await eventually(lambda: state.ari_check is not None)  # ARI asked once
            assert state.renew_at is not None and START <= state.renew_at <= END + datetime.timedelta(
                seconds=1
            )
            assert state.failures == 0  # not due: no order
            window[:] = [NOW - datetime.timedelta(hours=2), NOW - datetime.timedelta(hours=1)]
            await eventually(lambda: state.failures >= 1, timeout=20)  # ordered (and failed: no CA here)
            tg.cancel_scope.cancel()
    assert state.renew_at is not None and state.renew_at < NOW
    assert asked.count(f"/ari/{ident}") >= 2
