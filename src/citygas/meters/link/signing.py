"""Keys and MACs: meter-signed readings and platform-authorised settings.

Two keys per meter, both derived from the tenant's root key with HKDF-SHA256 (RFC 5869, no salt,
32-byte output), so the platform re-derives any meter's keys from the one root it keeps in its
key vault and a meter holds only its own:

* reading key   = HKDF(root, info = "citygas meter-link v1 reading " + serial)
* parameter key = HKDF(root, info = "citygas meter-link v1 parameter " + serial)

The **reading key** lets the meter sign what it reports; the platform verifies readings a phone
uploads. The **parameter key** lets the platform authorise settings the meter then checks. They are
separate so that a key extracted from one direction's code path cannot forge the other.

MACs are HMAC-SHA-256 truncated to the first 16 bytes (128 bits: NIST SP 800-107 allows truncation
to this length, and a forger has one online guess per frame).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from citygas.meters.link.errors import AuthorisationError, ReplayedCounterError
from citygas.meters.link.messages import (
    MAC_SIZE,
    MessageType,
    SetClock,
    SetParameters,
    clock_body,
    parameters_body,
)
from citygas.meters.types import MeterParameters

__all__ = [
    "MIN_ROOT_KEY_SIZE",
    "authorisation_mac",
    "authorise_clock",
    "authorise_parameters",
    "check_authorisation",
    "derive_meter_parameter_key",
    "derive_meter_reading_key",
    "reading_mac",
]

MIN_ROOT_KEY_SIZE: Final = 16
_READING_INFO: Final = b"citygas meter-link v1 reading "
_PARAMETER_INFO: Final = b"citygas meter-link v1 parameter "


def _derive(root: bytes, info: bytes, serial: str) -> bytes:
    if len(root) < MIN_ROOT_KEY_SIZE:
        raise ValueError(f"a tenant root key has at least {MIN_ROOT_KEY_SIZE} bytes, got {len(root)}")
    if not serial:
        raise ValueError("a meter serial is needed to derive its keys")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info + serial.encode("utf-8"))
    return hkdf.derive(root)


def derive_meter_reading_key(root: bytes, serial: str) -> bytes:
    """The key a meter signs its readings with (32 bytes)."""
    return _derive(root, _READING_INFO, serial)


def derive_meter_parameter_key(root: bytes, serial: str) -> bytes:
    """The key the platform authorises a meter's parameter and clock changes with (32 bytes)."""
    return _derive(root, _PARAMETER_INFO, serial)


def reading_mac(reading_key: bytes, signed_part: bytes) -> bytes:
    """The MAC of a signed response: over every frame byte before it (header with the final length,
    then the payload body)."""
    return hmac.new(reading_key, signed_part, hashlib.sha256).digest()[:MAC_SIZE]


def authorisation_mac(parameter_key: bytes, message_type: MessageType, serial: str, body: bytes) -> bytes:
    """MAC over ``type (u8) | serial length (u8) | serial (UTF-8) | body`` where body is the payload
    before the MAC (it starts with the u32 counter). The sequence number is not covered, so the
    phone that carries the authorisation numbers the frame itself."""
    serial_bytes = serial.encode("utf-8")
    data = bytes((int(message_type), len(serial_bytes))) + serial_bytes + body
    return hmac.new(parameter_key, data, hashlib.sha256).digest()[:MAC_SIZE]


def authorise_parameters(
    parameters: MeterParameters, *, serial: str, counter: int, parameter_key: bytes
) -> SetParameters:
    """(Platform.) A SET_PARAMETERS request the meter ``serial`` will accept once. ``counter`` must be
    above the last the meter accepted (it reports it in PARAMETERS responses)."""
    body = parameters_body(counter, parameters)
    mac = authorisation_mac(parameter_key, MessageType.SET_PARAMETERS, serial, body)
    return SetParameters(counter=counter, parameters=parameters, mac=mac)


def authorise_clock(at: datetime, *, serial: str, counter: int, parameter_key: bytes) -> SetClock:
    """(Platform.) A SET_CLOCK request; the meter keeps whole seconds, so ``at`` is floored to one."""
    body = clock_body(counter, at)
    mac = authorisation_mac(parameter_key, MessageType.SET_CLOCK, serial, body)
    return SetClock(counter=counter, at=at.replace(microsecond=0), mac=mac)


def check_authorisation(
    request: SetParameters | SetClock, *, serial: str, parameter_key: bytes, last_counter: int
) -> None:
    """(Meter.) Raise unless ``request`` was authorised for this meter and is not a replay.

    The MAC is checked before the counter so that an unauthenticated sender learns nothing about
    the meter's counter."""
    if isinstance(request, SetParameters):
        body = parameters_body(request.counter, request.parameters)
    else:
        body = clock_body(request.counter, request.at)
    expected = authorisation_mac(parameter_key, request.TYPE, serial, body)
    if not hmac.compare_digest(expected, request.mac):
        raise AuthorisationError(f"{request.TYPE.name} is not authorised for meter {serial}")
    if request.counter <= last_counter:
        raise ReplayedCounterError(request.counter, last_counter)
