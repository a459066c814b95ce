"""JOSE keys for the `jwt` middleware: algorithm families and PEM public keys.

Which key may verify which algorithm is decided here, by the key's type, never by the token:
RSA keys verify RS* and PS*, EC keys the ES* of their own curve, Ed25519/Ed448 keys EdDSA, and
nothing here ever yields an HMAC secret, so a public key can never be used as one.

The `jwt` middleware's config validates its keys with these at compile time, so this module
imports no network library (the JWKS cache is in jose.py), and imports cryptography (~10 MiB
resident) only when a key is loaded: the compiler imports every middleware's schema, and a
configuration without a jwt middleware must not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

__all__ = [
    "ASYMMETRIC",
    "EC_ALGORITHMS",
    "HMAC_ALGORITHMS",
    "OKP_ALGORITHMS",
    "RSA_ALGORITHMS",
    "SUPPORTED",
    "key_algorithms",
    "load_public_key",
]

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1", "ES256K": "secp256k1"}
OKP_ALGORITHMS = ("EdDSA",)
ASYMMETRIC = (*RSA_ALGORITHMS, *EC_ALGORITHMS, *OKP_ALGORITHMS)
SUPPORTED = (*HMAC_ALGORITHMS, *ASYMMETRIC)


def load_public_key(pem: str) -> PublicKey:
    """A public key from PEM text (`PUBLIC KEY`, `RSA PUBLIC KEY` or a `CERTIFICATE`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    data = pem.strip().encode()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"public_key is not a valid PEM public key or certificate ({exc})") from None
    if not isinstance(
        key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
    ):
        raise ValueError(f"unsupported public key type {type(key).__name__}: use RSA, EC or Ed25519/Ed448")
    return key


def key_algorithms(key: Any) -> tuple[str, ...]:
    """The JWS algorithms (RFC 7518) that `key` can verify; () for anything else."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return tuple(alg for alg, curve in EC_ALGORITHMS.items() if curve == key.curve.name)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return OKP_ALGORITHMS
    return ()
