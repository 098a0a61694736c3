"""What can go wrong on the meter link, as specific exceptions.

Decoding errors (:class:`FrameError` and subclasses) are raised by the codec on either side; the meter
answers them with an error frame. :class:`MeterRefusedError` is what a client raises when the meter
answered with an error frame. Signature failures are separate from frame damage on purpose: a bad CRC
is noise on the radio, a bad MAC is someone forging a reading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citygas.meters.link.messages import ErrorCode

__all__ = [
    "AuthorisationError",
    "FrameCrcError",
    "FrameError",
    "FrameLengthError",
    "MeterLinkError",
    "MeterRefusedError",
    "PayloadError",
    "ReadingNotSignedError",
    "ReadingSignatureError",
    "ReplayedCounterError",
    "SequenceMismatchError",
    "UnexpectedResponseError",
    "UnknownMessageTypeError",
    "UnsupportedVersionError",
]


class MeterLinkError(Exception):
    """Base class of every meter-link error."""


class FrameError(MeterLinkError):
    """The bytes are not a valid frame of this protocol."""


class FrameLengthError(FrameError):
    """The frame is shorter than a header and CRC, longer than the maximum, or its length field disagrees."""


class FrameCrcError(FrameError):
    """The CRC does not match: the frame was damaged in transit."""


class UnsupportedVersionError(FrameError):
    """The frame's version byte is not one this codec speaks."""

    def __init__(self, version: int) -> None:
        super().__init__(f"meter-link version {version} is not supported (this codec speaks version 1)")
        self.version = version


class UnknownMessageTypeError(FrameError):
    """The message type byte is not defined, or is a response where a request was expected (or back)."""

    def __init__(self, message_type: int, detail: str = "") -> None:
        super().__init__(detail or f"unknown meter-link message type 0x{message_type:02X}")
        self.message_type = message_type


class PayloadError(FrameError):
    """The frame is intact but its payload does not decode as the message its type names."""


class ReadingSignatureError(MeterLinkError):
    """A reading's MAC does not verify with the meter's reading key: it was forged, altered, or is
    from a different meter."""


class ReadingNotSignedError(MeterLinkError):
    """The frame is a valid response but not one that carries a signed reading."""


class AuthorisationError(MeterLinkError):
    """(Meter side.) A set-parameters or set-clock request's MAC does not verify with the parameter key."""


class ReplayedCounterError(AuthorisationError):
    """(Meter side.) An authorised request's counter is not above the last one the meter accepted."""

    def __init__(self, counter: int, last: int) -> None:
        super().__init__(f"authorisation counter {counter} is not above the last accepted counter {last}")
        self.counter = counter
        self.last = last


class MeterRefusedError(MeterLinkError):
    """The meter answered a request with an error frame."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"meter refused the request: {code.name} ({detail})" if detail else code.name)
        self.code = code
        self.detail = detail


class SequenceMismatchError(MeterLinkError):
    """A response's sequence number does not echo the request's: a stale or crossed response."""


class UnexpectedResponseError(MeterLinkError):
    """The meter answered with a response of a different type than the request asks for."""
