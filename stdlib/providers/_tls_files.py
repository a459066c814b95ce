"""Certificates a provider read (Kubernetes TLS Secrets) as the PEM files an entrypoint loads.

The TLS stack loads certificates from files, so each certificate and key is written, private
(0600), to a directory of the provider's own, named after its Secret and a hash of its content:
a changed Secret is a new file, hence a changed entrypoint, which takes the new certificate for
the connections it accepts from then on. Files are not removed while the gateway runs: a fragment
accepted earlier may still name them when another provider's change recompiles. A pair that does
not load (a key that does not match, a PEM that is not one) is a problem naming the Secret.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
from collections.abc import Sequence
from typing import Any

from ._found import Found, safe_name
from ._ingress import Certificate

__all__ = ["CertificateFiles"]


class CertificateFiles:
    def __init__(self) -> None:
        self._directory: str | None = None

    def add(self, found: Found, certificates: Sequence[Certificate]) -> None:
        """Write the certificates and add them to `found` (`tls_certificates`), once each."""
        files: list[dict[str, Any]] = []
        for cert in certificates:
            pair = self._write(cert)
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(*pair)
            except (ssl.SSLError, ValueError) as exc:
                found.problem(cert.origin, f"the certificate and key do not load: {exc}")
                continue
            entry = {"cert_file": pair[0], "key_file": pair[1]}
            if entry not in files:
                files.append(entry)
                found.origins[("tls_certificates", len(files) - 1)] = cert.origin
        if files:
            found.tree["tls_certificates"] = files

    def _write(self, cert: Certificate) -> tuple[str, str]:
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="a3s-gateway-tls-")
        digest = hashlib.sha256((cert.cert_pem + cert.key_pem).encode()).hexdigest()[:16]
        base = os.path.join(self._directory, f"{safe_name(cert.origin)}-{digest}")
        for suffix, text in ((".crt", cert.cert_pem), (".key", cert.key_pem)):
            if not os.path.exists(base + suffix):
                fd = os.open(base + suffix, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
        return base + ".crt", base + ".key"
