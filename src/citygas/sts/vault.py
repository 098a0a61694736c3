"""Key custody: the :class:`KeyVault` port and a software vault encrypted with AES-GCM.

Vending keys are the crown jewels of a prepayment system: with one, anyone can mint
credit for every meter of a supply group. So the port never hands a vending key out.
Callers ask the vault to *derive* a meter's decoder key; in production an HSM adapter
does that inside the HSM (see ``docs/sts.md``), and the software vault does it in
process with the keys encrypted at rest under a master key from the settings.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import threading
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from citygas.sts.errors import KeyVaultError, UnknownVendingKeyError
from citygas.sts.kdf import derive_decoder_key
from citygas.sts.keys import DecoderKey, DecoderKeyParameters, KeyGenerationAlgorithm
from citygas.sts.sta import StaTables

__all__ = ["VAULT_FORMAT", "KeyVault", "SoftwareKeyVault"]

VAULT_FORMAT: Final = "citygas-sts-vault/1"
_NONCE_BYTES: Final = 12
_VENDING_KEY_BYTES: Final = {KeyGenerationAlgorithm.DKGA04: 20, KeyGenerationAlgorithm.DKGA02: 8}


class KeyVault(Protocol):
    """Where vending keys live. Implementations: :class:`SoftwareKeyVault`, an HSM adapter."""

    def store_vending_key(self, key_id: str, vending_key: bytes, dkga: KeyGenerationAlgorithm) -> None:
        """Import a vending key under ``key_id``; refuses to overwrite an existing id."""
        ...

    def has_vending_key(self, key_id: str) -> bool: ...

    def list_key_ids(self) -> list[str]: ...

    def derive_decoder_key(self, key_id: str, params: DecoderKeyParameters) -> DecoderKey:
        """The decoder key of one meter, derived from the vending key ``key_id``."""
        ...


def _aad(key_id: str, dkga: str) -> bytes:
    # Binding the id and DKGA into the tag stops a blob editor from swapping two keys' ciphertexts.
    return f"{VAULT_FORMAT}|{key_id}|{dkga}".encode()


class SoftwareKeyVault:
    """A :class:`KeyVault` that keeps each vending key AES-256-GCM encrypted under a master key.

    The encrypted entries can be exported as a JSON-able dict (for the database layer)
    or saved to a file; the master key is never stored with them. Plaintext keys exist
    only for the duration of one derivation.
    """

    def __init__(
        self,
        master_key: bytes,
        blob: dict[str, object] | None = None,
        *,
        sta_tables: StaTables | None = None,
    ) -> None:
        if len(master_key) != 32:
            raise KeyVaultError("the vault master key must be 32 bytes (AES-256)")
        self._aead = AESGCM(master_key)
        self._sta_tables = sta_tables
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, str]] = {}
        if blob is not None:
            self._load_blob(blob)

    def __repr__(self) -> str:
        return f"SoftwareKeyVault({len(self._entries)} vending keys, <encrypted>)"

    __str__ = __repr__

    def __getstate__(self) -> None:
        raise TypeError("a key vault cannot be pickled: export_blob() gives its encrypted entries")

    # --- persistence -------------------------------------------------------------------

    def _load_blob(self, blob: dict[str, object]) -> None:
        if blob.get("format") != VAULT_FORMAT:
            raise KeyVaultError(f"the vault blob is not in format {VAULT_FORMAT!r}")
        keys = blob.get("keys")
        if not isinstance(keys, dict):
            raise KeyVaultError("the vault blob has no 'keys' object")
        for key_id, entry in keys.items():
            if (
                not isinstance(key_id, str)
                or not isinstance(entry, dict)
                or set(entry) != {"dkga", "nonce", "ciphertext"}
                or not all(isinstance(value, str) for value in entry.values())
            ):
                raise KeyVaultError(f"vault entry {key_id!r} is malformed")
            self._entries[key_id] = dict(entry)
        # Open every entry now so that a wrong master key fails at start-up, not at the first vend.
        for key_id in self._entries:
            self._open(key_id)

    def export_blob(self) -> dict[str, object]:
        """The encrypted entries as a JSON-able dict; safe to store without the master key."""
        with self._lock:
            return {
                "format": VAULT_FORMAT,
                "keys": {key_id: dict(entry) for key_id, entry in self._entries.items()},
            }

    def save(self, path: pathlib.Path) -> None:
        """Write :meth:`export_blob` to ``path`` atomically, readable by the owner only."""
        temporary = path.with_suffix(path.suffix + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(self.export_blob(), handle, indent=2, sort_keys=True)
        temporary.replace(path)

    @classmethod
    def open(
        cls, path: pathlib.Path, master_key: bytes, *, sta_tables: StaTables | None = None
    ) -> SoftwareKeyVault:
        """Load a vault saved with :meth:`save`."""
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyVaultError(f"cannot read the key vault file {path}: {exc}") from exc
        if not isinstance(blob, dict):
            raise KeyVaultError(f"the key vault file {path} does not hold a JSON object")
        return cls(master_key, blob, sta_tables=sta_tables)

    # --- the KeyVault port -------------------------------------------------------------

    def store_vending_key(self, key_id: str, vending_key: bytes, dkga: KeyGenerationAlgorithm) -> None:
        dkga = KeyGenerationAlgorithm(dkga)
        if not key_id:
            raise KeyVaultError("a vending key needs a non-empty key id")
        if len(vending_key) != _VENDING_KEY_BYTES[dkga]:
            raise KeyVaultError(
                f"a DKGA{dkga.value} vending key is {_VENDING_KEY_BYTES[dkga]} bytes, got {len(vending_key)}"
            )
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, vending_key, _aad(key_id, dkga.value))
        with self._lock:
            if key_id in self._entries:
                raise KeyVaultError(
                    f"a vending key is already stored under {key_id!r}; keys are never overwritten"
                )
            self._entries[key_id] = {
                "dkga": dkga.value,
                "nonce": base64.b64encode(nonce).decode("ascii"),
                "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
            }

    def has_vending_key(self, key_id: str) -> bool:
        with self._lock:
            return key_id in self._entries

    def list_key_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def derive_decoder_key(self, key_id: str, params: DecoderKeyParameters) -> DecoderKey:
        dkga, vending_key = self._open(key_id)
        if dkga is not params.dkga:
            raise KeyVaultError(
                f"vending key {key_id!r} is for DKGA{dkga.value}, not DKGA{params.dkga.value}"
            )
        return derive_decoder_key(vending_key, params, sta_tables=self._sta_tables)

    def _open(self, key_id: str) -> tuple[KeyGenerationAlgorithm, bytes]:
        with self._lock:
            entry = self._entries.get(key_id)
        if entry is None:
            raise UnknownVendingKeyError(f"no vending key is stored under {key_id!r}")
        try:
            nonce = base64.b64decode(entry["nonce"], validate=True)
            ciphertext = base64.b64decode(entry["ciphertext"], validate=True)
            dkga = KeyGenerationAlgorithm(entry["dkga"])
            return dkga, self._aead.decrypt(nonce, ciphertext, _aad(key_id, dkga.value))
        except (InvalidTag, ValueError) as exc:
            raise KeyVaultError(
                f"vending key {key_id!r} cannot be opened: wrong master key or a tampered vault"
            ) from exc
