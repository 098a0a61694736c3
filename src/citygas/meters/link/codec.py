"""Whole messages to frames and back; reading signatures on responses.

A signed response's payload is ``body | MAC(16)``; the MAC is HMAC-SHA-256 with the meter's reading
key over every frame byte before it (the 6-byte header, whose length counts the MAC, then the
body), truncated to 16 bytes. The CRC follows as in every frame.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import cast

from citygas.meters.link.errors import (
    PayloadError,
    ReadingNotSignedError,
    ReadingSignatureError,
    UnknownMessageTypeError,
)
from citygas.meters.link.frames import CRC_SIZE, HEADER_SIZE, decode_frame, encode_frame
from citygas.meters.link.messages import (
    MAC_SIZE,
    RESPONSE_CLASSES,
    MessageType,
    Request,
    Response,
    decode_payload,
    encode_payload,
)
from citygas.meters.link.signing import reading_mac

__all__ = [
    "DecodedRequest",
    "DecodedResponse",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "verify_reading",
]


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    seq: int
    message: Request


@dataclass(frozen=True, slots=True)
class DecodedResponse:
    seq: int
    message: Response
    mac: bytes | None = field(default=None, repr=False)  # present on signed responses; NOT yet verified


def encode_request(message: Request, seq: int) -> bytes:
    """A request frame."""
    return encode_frame(message.TYPE, seq, encode_payload(message))


def encode_response(message: Response, seq: int, *, reading_key: bytes | None = None) -> bytes:
    """A response frame; signed responses (``message.SIGNED``) need the meter's reading key."""
    body = encode_payload(message)
    if not message.SIGNED:
        return encode_frame(message.TYPE, seq, body)
    if reading_key is None:
        raise ValueError(f"{message.TYPE.name} responses are signed: pass the meter's reading key")
    # The MAC covers the header too, so build the header with the final length (body + MAC) first.
    unsigned = encode_frame(message.TYPE, seq, body + bytes(MAC_SIZE))[: HEADER_SIZE + len(body)]
    return encode_frame(message.TYPE, seq, body + reading_mac(reading_key, unsigned))


def _message_type(value: int, *, request: bool) -> MessageType:
    try:
        message_type = MessageType(value)
    except ValueError:
        raise UnknownMessageTypeError(value) from None
    if message_type.is_request != request:
        wanted = "request" if request else "response"
        raise UnknownMessageTypeError(value, f"message type 0x{value:02X} is not a {wanted}")
    return message_type


def decode_request(data: bytes) -> DecodedRequest:
    """Decode a request frame, strictly (see :mod:`citygas.meters.link.errors`)."""
    frame = decode_frame(data)
    message_type = _message_type(frame.message_type, request=True)
    # decode_payload builds the class REQUEST_CLASSES names for a request type.
    return DecodedRequest(frame.seq, cast(Request, decode_payload(message_type, frame.payload)))


def decode_response(data: bytes) -> DecodedResponse:
    """Decode a response frame. A signed response's MAC is split off but **not verified**: the phone
    cannot (it has no keys); the platform calls :func:`verify_reading`."""
    frame = decode_frame(data)
    message_type = _message_type(frame.message_type, request=False)
    signed = RESPONSE_CLASSES[message_type].SIGNED
    payload, mac = frame.payload, None
    if signed:
        if len(payload) < MAC_SIZE:
            raise PayloadError(f"a signed {message_type.name} payload ends before its {MAC_SIZE}-byte MAC")
        payload, mac = payload[:-MAC_SIZE], payload[-MAC_SIZE:]
    return DecodedResponse(frame.seq, cast(Response, decode_payload(message_type, payload)), mac)


def verify_reading(data: bytes, reading_key: bytes) -> Response:
    """(Platform.) Decode a signed response frame a phone uploaded and check the meter's MAC.

    Raises :class:`ReadingSignatureError` for a forged or altered frame or one signed by another
    meter, :class:`ReadingNotSignedError` for a response that carries no reading, and the
    :class:`FrameError` family for frames that do not decode."""
    frame = decode_frame(data)
    message_type = _message_type(frame.message_type, request=False)
    if not RESPONSE_CLASSES[message_type].SIGNED:
        raise ReadingNotSignedError(f"a {message_type.name} response carries no signed reading")
    # The MAC is checked before the payload is parsed, so any alteration reads as a forgery.
    mac_at = len(data) - CRC_SIZE - MAC_SIZE
    if mac_at < HEADER_SIZE or not hmac.compare_digest(
        reading_mac(reading_key, data[:mac_at]), data[mac_at : mac_at + MAC_SIZE]
    ):
        raise ReadingSignatureError(
            f"the {message_type.name} reading's signature does not verify with this meter's key"
        )
    return decode_response(data).message
