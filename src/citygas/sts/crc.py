"""The STS token CRC: CRC-16/MODBUS over the 50-bit class+data value, stored byte-swapped."""

from __future__ import annotations

from typing import Final

__all__ = ["crc16_modbus", "token_crc"]


def _build_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE: Final = _build_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (reflected 0xA001, init 0xFFFF, no final XOR); check value 0x4B37."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def token_crc(token_class: int, block_without_crc: int) -> int:
    """The 16-bit value that goes into bits 15..0 of a token block.

    ``block_without_crc`` is the 64-bit block whose low 16 bits are ignored. The CRC
    covers ``class(2) | subclass(4) | data(44)`` as 7 big-endian bytes, and STS stores
    it byte-swapped (a raw CRC of 0x7019 is stored as 0x1970).
    """
    value = (token_class << 48) | (block_without_crc >> 16)
    crc = 0xFFFF
    table = _TABLE
    # Unrolled over the 7 big-endian bytes: this runs once per token issued or checked.
    for shift in (48, 40, 32, 24, 16, 8, 0):
        crc = (crc >> 8) ^ table[(crc ^ (value >> shift)) & 0xFF]
    return ((crc & 0xFF) << 8) | (crc >> 8)
