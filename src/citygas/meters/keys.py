"""The meter key hierarchy on the platform side: master key → tenant meter root → per-meter link keys.

A meter's reading key signs what it reports; the platform recomputes it to verify readings a phone
uploads. Deriving from the tenant root keeps one CGD's meters unable to vouch for another's.
"""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from citygas.meters.link import derive_meter_parameter_key, derive_meter_reading_key


def tenant_meter_root(master_key: bytes, tenant_id: uuid.UUID) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"citygas tenant meter root v1 {tenant_id}".encode(),
    ).derive(master_key)


def meter_link_keys(master_key: bytes, tenant_id: uuid.UUID, serial: str) -> tuple[bytes, bytes]:
    """(reading key, parameter key) of one meter."""
    root = tenant_meter_root(master_key, tenant_id)
    return derive_meter_reading_key(root, serial), derive_meter_parameter_key(root, serial)
