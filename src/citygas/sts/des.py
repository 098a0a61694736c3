"""Single DES, the block cipher under DKGA02 (and the STS "DEA" of the 64-bit key suite).

``cryptography`` no longer offers single DES, but 3DES with K1 = K2 = K3 is single DES
(encrypt, decrypt and encrypt again with the same key cancel to one encryption).
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

__all__ = ["des_decrypt_block", "des_encrypt_block"]


def _single_des(key: bytes) -> Cipher[modes.ECB]:
    if len(key) != 8:
        raise ValueError(f"DES needs an 8-byte key, got {len(key)} bytes")
    # ECB on a single block is what DKGA02 specifies; there is no chaining to do.
    return Cipher(TripleDES(key * 3), modes.ECB())  # noqa: S305


def des_encrypt_block(key: bytes, block: bytes) -> bytes:
    """DES-encrypt one 8-byte block (parity bits of the key are ignored, as DES does)."""
    if len(block) != 8:
        raise ValueError(f"DES encrypts 8-byte blocks, got {len(block)} bytes")
    encryptor = _single_des(key).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def des_decrypt_block(key: bytes, block: bytes) -> bytes:
    """DES-decrypt one 8-byte block."""
    if len(block) != 8:
        raise ValueError(f"DES decrypts 8-byte blocks, got {len(block)} bytes")
    decryptor = _single_des(key).decryptor()
    return decryptor.update(block) + decryptor.finalize()
