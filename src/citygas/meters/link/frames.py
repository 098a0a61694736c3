"""The frame: ``version | type | seq | length | payload | crc``, and BLE fragmentation.

======  ====  ================================================================
offset  size  field
======  ====  ================================================================
0       1     version (1)
1       1     message type
2       2     sequence number, big-endian; a response echoes its request's
4       2     payload length n, big-endian, at most :data:`MAX_PAYLOAD`
6       n     payload
6+n     2     CRC-16/CCITT-FALSE over bytes 0 .. 6+n-1, big-endian
======  ====  ================================================================

The length field makes a frame self-delimiting, so a byte stream cut into GATT-sized chunks
reassembles without any per-chunk header (see :class:`Reassembler`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from citygas.meters.link.crc import crc16_ccitt_false
from citygas.meters.link.errors import FrameCrcError, FrameLengthError, UnsupportedVersionError

__all__ = [
    "BLE_DEFAULT_CHUNK",
    "CRC_SIZE",
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "VERSION",
    "Frame",
    "Reassembler",
    "decode_frame",
    "encode_frame",
    "fragment",
    "peek_header",
]

VERSION: Final = 1
HEADER_SIZE: Final = 6
CRC_SIZE: Final = 2
# Large enough for a full page of events with long details, small enough that a meter's
# microcontroller can hold a whole frame in RAM.
MAX_PAYLOAD: Final = 4096
# ATT_MTU 23 minus the 3-byte ATT header: what every BLE link can carry in one write/notification.
BLE_DEFAULT_CHUNK: Final = 20

_HEADER: Final = struct.Struct(">BBHH")


@dataclass(frozen=True, slots=True)
class Frame:
    version: int
    message_type: int
    seq: int
    payload: bytes


def encode_frame(message_type: int, seq: int, payload: bytes, *, version: int = VERSION) -> bytes:
    """Wrap a payload in a header and CRC."""
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"sequence number {seq} is outside 0..65535")
    if len(payload) > MAX_PAYLOAD:
        raise FrameLengthError(f"payload of {len(payload)} bytes exceeds the maximum of {MAX_PAYLOAD}")
    body = _HEADER.pack(version, message_type, seq, len(payload)) + payload
    return body + crc16_ccitt_false(body).to_bytes(2, "big")


def peek_header(data: bytes) -> tuple[int, int, int, int] | None:
    """``(version, type, seq, length)`` from the first six bytes, or None when there are fewer."""
    if len(data) < HEADER_SIZE:
        return None
    version, message_type, seq, length = _HEADER.unpack_from(data)
    return version, message_type, seq, length


def decode_frame(data: bytes) -> Frame:
    """Check version, length and CRC, in that order, and split a frame. The type is not checked here.

    The version comes first because byte 0 is the version in every version of the protocol, while
    the rest of the layout may change with it."""
    if data and data[0] != VERSION:
        raise UnsupportedVersionError(data[0])
    header = peek_header(data)
    if header is None or len(data) < HEADER_SIZE + CRC_SIZE:
        raise FrameLengthError(f"a frame has at least {HEADER_SIZE + CRC_SIZE} bytes, got {len(data)}")
    version, message_type, seq, length = header
    if length > MAX_PAYLOAD:
        raise FrameLengthError(f"length field {length} exceeds the maximum payload of {MAX_PAYLOAD}")
    if len(data) != HEADER_SIZE + length + CRC_SIZE:
        raise FrameLengthError(
            f"length field says {length} payload bytes, so the frame should be "
            f"{HEADER_SIZE + length + CRC_SIZE} bytes; got {len(data)}"
        )
    expected = crc16_ccitt_false(data[: HEADER_SIZE + length])
    got = int.from_bytes(data[-CRC_SIZE:], "big")
    if got != expected:
        raise FrameCrcError(f"frame CRC is 0x{got:04X}, expected 0x{expected:04X}")
    return Frame(version, message_type, seq, bytes(data[HEADER_SIZE : HEADER_SIZE + length]))


def fragment(frame: bytes, chunk_size: int = BLE_DEFAULT_CHUNK) -> list[bytes]:
    """Cut a frame into chunks for GATT writes or notifications (``chunk_size`` = ATT_MTU - 3)."""
    if chunk_size < 1:
        raise ValueError("chunk size must be at least 1 byte")
    return [frame[i : i + chunk_size] for i in range(0, len(frame), chunk_size)]


class Reassembler:
    """Turns a stream of chunks back into whole frames.

    Chunks arrive in order (GATT writes with response and notifications are ordered on one
    connection), so the header's length field is all that is needed to find a frame's end. A
    header that cannot start a frame (wrong version, length over the maximum) means the stream is
    out of step: the buffer is dropped and the error raised, and the next chunk starts afresh.
    Transports also call :meth:`reset` on a new connection and after a receive timeout.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def reset(self) -> None:
        self._buffer.clear()

    @property
    def pending(self) -> int:
        """Bytes held towards an incomplete frame."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return the frames it completes (usually none or one). Frames are returned
        whole, not CRC-checked: :func:`decode_frame` does that."""
        self._buffer += chunk
        frames: list[bytes] = []
        while True:
            header = peek_header(bytes(self._buffer[:HEADER_SIZE]))
            if header is None:
                return frames
            version, _, _, length = header
            if version != VERSION or length > MAX_PAYLOAD:
                self._buffer.clear()
                if version != VERSION:
                    raise UnsupportedVersionError(version)
                raise FrameLengthError(f"length field {length} exceeds the maximum payload of {MAX_PAYLOAD}")
            total = HEADER_SIZE + length + CRC_SIZE
            if len(self._buffer) < total:
                return frames
            frames.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
