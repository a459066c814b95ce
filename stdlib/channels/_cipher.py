"""AES-256-CBC decryption with PKCS#7 padding, for the platforms that encrypt their events
(Feishu/Lark: block 16; WeCom: padded to 32-byte multiples). `cryptography` does the AES; the
padding is checked here, because WeCom pads to a block size AES does not have.

Decryption happens only after a signature check where the platform has one (WeCom), and a
padding failure says nothing more specific than "cannot decrypt": no padding oracle.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._event import Rejected

__all__ = ["b64decode", "decrypt"]


def decrypt(key: bytes, iv: bytes, data: bytes, block: int = 16) -> bytes:
    """`data` decrypted and unpadded, or Rejected (a wrong key, truncated or tampered data)."""
    if not data or len(data) % 16:
        raise Rejected("cannot decrypt the payload")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= block or plain[-pad:] != bytes([pad]) * pad:
        raise Rejected("cannot decrypt the payload")
    return plain[:-pad]


def b64decode(text: str | bytes) -> bytes:
    """Standard base64, strictly (Rejected when it is not)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("the payload is not base64") from None
