"""The frame check: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final XOR).

Check value: ``crc16_ccitt_false(b"123456789") == 0x29B1``. It is the CRC most BLE stacks and
microcontroller libraries already ship, so meter firmware gets it for free.
"""

from __future__ import annotations

from typing import Final

__all__ = ["crc16_ccitt_false"]


def _build_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE: Final = _build_table()


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` as an int in 0..0xFFFF."""
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc
