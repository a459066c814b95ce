"""Keys and certificates for ACME, with `cryptography`: certificate keys of the configured type,
CSRs, the self-signed fallback, the TLS-ALPN-01 challenge certificate (RFC 8737), and the
facts the manager reads from an issued chain (names, validity)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier

__all__ = [
    "CertFacts",
    "alpn_challenge_certificate",
    "csr_for",
    "facts",
    "fallback_certificate",
    "new_key",
]

# RFC 8737 §3: id-pe-acmeIdentifier, a critical extension holding SHA-256(key authorization).
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_key(key_type: str) -> Key:
    """A private key of an ACME `key_type` (ec256, ec384, rsa2048, rsa4096)."""
    if key_type == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.removeprefix("rsa")))


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(pem: bytes) -> Key:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    return key


def csr_for(key: Key, names: tuple[str, ...]) -> bytes:
    """A PEM CSR for `names` (all in subjectAltName; no subject, as Let's Encrypt advises)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _self_signed(
    key: Key, names: tuple[str, ...], extensions: list[tuple[x509.ExtensionType, bool]]
) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@cache
def fallback_certificate() -> tuple[bytes, bytes]:
    """(cert, key) PEM of the certificate served until an ACME one is issued: self-signed, made
    once per process (Traefik's "TRAEFIK DEFAULT CERT" does the same)."""
    key = new_key("ec256")
    return _self_signed(key, ("a3s-gateway-default.invalid",), []), key_pem(key)


def alpn_challenge_certificate(domain: str, key_authorization: str) -> tuple[bytes, bytes]:
    """(cert, key) PEM answering TLS-ALPN-01 for `domain` (RFC 8737 §3): self-signed, its only
    name the domain, with the critical acmeIdentifier extension over the key authorization."""
    digest = hashlib.sha256(key_authorization.encode()).digest()
    # The extension's value is the DER OCTET STRING of the digest: tag 0x04, length 32.
    value = x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest)
    key = new_key("ec256")
    return _self_signed(key, (domain,), [(value, True)]), key_pem(key)


@dataclass(frozen=True)
class CertFacts:
    names: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: str

    def renew_at(self, fraction_left: float) -> datetime.datetime:
        """When `fraction_left` of the lifetime remains (1/3: at two thirds of it)."""
        return self.not_after - (self.not_after - self.not_before) * fraction_left


def facts(chain_pem: bytes) -> CertFacts:
    """Names and validity of the leaf (the first certificate of the chain)."""
    leaf = x509.load_pem_x509_certificate(chain_pem)
    try:
        san = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = tuple(str(n).lower() for n in san.get_values_for_type(x509.DNSName))  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        names = ()
    return CertFacts(
        names, leaf.not_valid_before_utc, leaf.not_valid_after_utc, format(leaf.serial_number, "x")
    )
