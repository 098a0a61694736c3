"""Conformance runner for STS vector files (the JSON Lines format of ``shared/sts/README.md``).

Each line is checked in both directions: the engine must build the published token from
the line's fields, and decode the published token back to those fields. Unknown keys make
the line fail, so a change of format is noticed rather than half-checked.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, TextIO

from citygas.sts.amounts import encode_amount
from citygas.sts.errors import StsError
from citygas.sts.kdf import derive_decoder_key
from citygas.sts.keychange import NewKeyAttributes, key_change_sections
from citygas.sts.keys import DecoderKey, DecoderKeyParameters, EncryptionAlgorithm, KeyGenerationAlgorithm
from citygas.sts.sta import StaTables
from citygas.sts.tid import issue_time, minutes_since_base_date
from citygas.sts.tokens import (
    CreditToken,
    KeyChangeSection1,
    KeyChangeSection2,
    KeyChangeSection3,
    KeyChangeSection4,
    ManagementToken,
    MeterTestToken,
    Token,
    decode_token,
    encode_token,
)

__all__ = ["VectorError", "check_vector", "run_conformance"]

_COMMON: Final = frozenset({"id", "source", "kind", "token_class", "subclass", "note"})
_KEY_FIELDS: Final = frozenset(
    {"vending_key", "dkga", "ea", "sgc", "ti", "kt", "krn", "ken", "base_date", "pan", "decoder_key"}
)
_TID_FIELDS: Final = frozenset({"rnd", "issued", "tid", "tid_offset", "value16", "token"})
_OPTIONAL: Final = frozenset({"note", "tid_offset", "requested_limit_w", "limit_w"})
_ALLOWED: Final = {
    "credit": _COMMON | _KEY_FIELDS | _TID_FIELDS | {"requested_tenths", "amount_tenths"},
    "register": _COMMON | _KEY_FIELDS | _TID_FIELDS | {"requested_limit_w", "limit_w"},
    "key_change": _COMMON | _KEY_FIELDS | {"new_key", "ken_ho", "ken_lo", "ro", "res", "sections", "tokens"},
    "test": _COMMON | {"mfr_code", "control", "token"},
}
_NEW_KEY_FIELDS: Final = frozenset({"ti", "krn", "kt", "base_date", "sgc", "ken", "decoder_key"})
_LIMIT_SUBCLASSES: Final = frozenset({0, 6})
_SECTION_SUBCLASS: Final = {1: 3, 2: 4, 3: 8, 4: 9}


class VectorError(Exception):
    """A vector line that is malformed or that the engine does not reproduce."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise VectorError(message)


def _int(vector: dict[str, object], key: str) -> int:
    value = vector.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise VectorError(f"{key} must be an integer")
    return value


def _str(vector: dict[str, object], key: str) -> str:
    value = vector.get(key)
    if not isinstance(value, str):
        raise VectorError(f"{key} must be a string")
    return value


def _key_parameters(fields: dict[str, object], pan: str, ea: str, dkga: str) -> DecoderKeyParameters:
    try:
        return DecoderKeyParameters(
            pan=pan,
            sgc=_str(fields, "sgc"),
            ti=_int(fields, "ti"),
            kt=_int(fields, "kt"),
            krn=_int(fields, "krn"),
            base_date=_int(fields, "base_date"),
            ea=EncryptionAlgorithm(ea),
            dkga=KeyGenerationAlgorithm(dkga),
        )
    except ValueError as exc:
        raise VectorError(f"key fields: {exc}") from exc


def _current_key(
    vector: dict[str, object], sta_tables: StaTables | None
) -> tuple[DecoderKey, DecoderKeyParameters]:
    params = _key_parameters(vector, _str(vector, "pan"), _str(vector, "ea"), _str(vector, "dkga"))
    vending_key = bytes.fromhex(_str(vector, "vending_key"))
    key = derive_decoder_key(vending_key, params, sta_tables=sta_tables)
    _expect(
        key.material().hex() == _str(vector, "decoder_key").lower(),
        f"DKGA{params.dkga.value} gives a different decoder key than decoder_key",
    )
    _int(vector, "ken")
    return key, params


def _issued_minute(vector: dict[str, object], base_date: int) -> int:
    text = _str(vector, "issued")
    try:
        # Naive on purpose: the published time is on the base date's clock, which citygas runs on UTC.
        issued = datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    except ValueError as exc:
        raise VectorError(f"issued {text!r} is not YYYY-MM-DDTHH:MM") from exc
    return minutes_since_base_date(issued, base_date)


def _check_tid_token(vector: dict[str, object], sta_tables: StaTables | None) -> None:
    kind = vector["kind"]
    token_class = _int(vector, "token_class")
    subclass = _int(vector, "subclass")
    key, params = _current_key(vector, sta_tables)
    tid = _int(vector, "tid")
    rnd = _int(vector, "rnd")
    value16 = _int(vector, "value16")
    published = _str(vector, "token")
    minute = _issued_minute(vector, params.base_date)
    if "tid_offset" in vector:
        _expect(tid == minute + _int(vector, "tid_offset"), "tid is not minutes(issued) + tid_offset")
    else:
        _expect(tid == minute, f"tid {tid} is not minutes(issued) = {minute}")

    built: Token
    if kind == "credit":
        _expect(token_class == 0, "a credit vector must be class 0")
        encoded = encode_amount(_int(vector, "requested_tenths"))
        _expect(encoded.field == value16, f"encode(requested_tenths) gives {encoded.field:#06x}, not value16")
        _expect(encoded.carried == _int(vector, "amount_tenths"), "the carried amount is not amount_tenths")
        built = CreditToken(subclass, rnd, tid, value16)
    else:
        _expect(token_class == 2, "a register vector must be class 2")
        if subclass in _LIMIT_SUBCLASSES:
            encoded = encode_amount(_int(vector, "requested_limit_w"))
            _expect(
                encoded.field == value16, f"encode(requested_limit_w) gives {encoded.field:#06x}, not value16"
            )
            _expect(encoded.carried == _int(vector, "limit_w"), "the carried limit is not limit_w")
        else:
            _expect(
                "requested_limit_w" not in vector and "limit_w" not in vector, "limits belong to 2/0 and 2/6"
            )
        if subclass == 5:
            _expect(value16 == 0, "ClearTamperCondition carries a zero pad")
        built = ManagementToken(subclass, rnd, tid, value16)
    _expect(
        encode_token(built, key) == published, f"encoding gives {encode_token(built, key)}, not the token"
    )

    decoded = decode_token(published, key)
    _expect(decoded == built, f"decoding gives {decoded!r}")
    if isinstance(decoded, CreditToken):
        _expect(decoded.amount == _int(vector, "amount_tenths"), "decoded amount is not amount_tenths")
    elif isinstance(decoded, ManagementToken) and subclass in _LIMIT_SUBCLASSES:
        _expect(decoded.limit_w == _int(vector, "limit_w"), "decoded limit is not limit_w")
    if "tid_offset" not in vector:
        expected_time = datetime.strptime(_str(vector, "issued"), "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
        _expect(
            issue_time(_decoded_tid(decoded), params.base_date) == expected_time, "decoded issue time differs"
        )


def _decoded_tid(token: Token) -> int:
    if isinstance(token, CreditToken | ManagementToken):
        return token.tid
    raise VectorError(f"{type(token).__name__} carries no TID")


def _check_key_change(vector: dict[str, object], sta_tables: StaTables | None) -> None:
    _expect(
        _int(vector, "token_class") == 2 and _int(vector, "subclass") == 3, "a key change set is 2/3 first"
    )
    key, params = _current_key(vector, sta_tables)
    new = vector.get("new_key")
    if not isinstance(new, dict):
        raise VectorError("new_key must be an object")
    unknown = set(new) - _NEW_KEY_FIELDS
    _expect(not unknown, f"unknown new_key fields {sorted(unknown)}")
    missing = _NEW_KEY_FIELDS - set(new)
    _expect(not missing, f"missing new_key fields {sorted(missing)}")
    new_params = _key_parameters(new, params.pan, params.ea.value, params.dkga.value)
    new_key = derive_decoder_key(
        bytes.fromhex(_str(vector, "vending_key")), new_params, sta_tables=sta_tables
    )
    _expect(new_key.material().hex() == _str(new, "decoder_key").lower(), "the new decoder key differs")
    new_ken = _int(new, "ken")
    _expect(_int(vector, "ken_ho") == new_ken >> 4, "ken_ho is not the high nibble of new_key.ken")
    _expect(_int(vector, "ken_lo") == new_ken & 0xF, "ken_lo is not the low nibble of new_key.ken")
    attributes = NewKeyAttributes(
        ken=new_ken,
        krn=new_params.krn,
        kt=new_params.kt,
        ti=new_params.ti,
        sgc=int(new_params.sgc) if new_key.bits == 128 else None,
        rollover=bool(_int(vector, "ro")),
        res=_int(vector, "res"),
    )
    sections = key_change_sections(new_key.material(), attributes)
    numbers = vector.get("sections")
    tokens = vector.get("tokens")
    if not isinstance(numbers, list) or not isinstance(tokens, list) or len(numbers) != len(tokens):
        raise VectorError("sections and tokens must be lists of the same length")
    material = new_key.material()
    for number, published in zip(numbers, tokens, strict=True):
        _expect(isinstance(number, int) and 1 <= number <= len(sections), f"no section {number!r}")
        _expect(isinstance(published, str), "tokens must be strings")
        section = sections[number - 1]
        built = encode_token(section, key)
        _expect(built == published, f"section {number} encodes as {built}, not {published}")
        decoded = decode_token(str(published), key)
        _expect(decoded == section, f"section {number} decodes to different fields")
        _expect(decoded.subclass == _SECTION_SUBCLASS[number], f"section {number} has the wrong subclass")
        _check_section_fields(decoded, attributes, material)


def _check_section_fields(section: Token, attributes: NewKeyAttributes, material: bytes) -> None:
    if isinstance(section, KeyChangeSection1):
        _expect(
            (section.ken_high, section.krn, section.rollover, section.res, section.kt)
            == (attributes.ken >> 4, attributes.krn, int(attributes.rollover), attributes.res, attributes.kt),
            "section 1 fields differ",
        )
        _expect(f"{section.key_part:08x}" == material[0:4].hex(), "NKHO differs")
    elif isinstance(section, KeyChangeSection2):
        _expect(
            (section.ken_low, section.ti) == (attributes.ken & 0xF, attributes.ti), "section 2 fields differ"
        )
        _expect(f"{section.key_part:08x}" == material[-4:].hex(), "NKLO differs")
    elif isinstance(section, KeyChangeSection3):
        _expect(
            attributes.sgc is not None and section.sgc_low == attributes.sgc & 0xFFF, "SGC low bits differ"
        )
        _expect(f"{section.key_part:08x}" == material[4:8].hex(), "NKMO2 differs")
    elif isinstance(section, KeyChangeSection4):
        _expect(
            attributes.sgc is not None and section.sgc_high == attributes.sgc >> 12, "SGC high bits differ"
        )
        _expect(f"{section.key_part:08x}" == material[8:12].hex(), "NKMO1 differs")


def _check_test_token(vector: dict[str, object], _sta_tables: StaTables | None) -> None:
    _expect(_int(vector, "token_class") == 1, "a test vector must be class 1")
    built = MeterTestToken(_int(vector, "subclass"), _int(vector, "control"), _int(vector, "mfr_code"))
    published = _str(vector, "token")
    _expect(encode_token(built, None) == published, f"encoding gives {encode_token(built, None)}")
    _expect(decode_token(published, None) == built, "decoding gives different Control or MfrCode")


_CHECKS: Final[dict[str, Callable[[dict[str, object], StaTables | None], None]]] = {
    "credit": _check_tid_token,
    "register": _check_tid_token,
    "key_change": _check_key_change,
    "test": _check_test_token,
}


def check_vector(vector: dict[str, object], *, sta_tables: StaTables | None = None) -> None:
    """Check one vector; raise :class:`VectorError` with the reason if it does not pass."""
    kind = vector.get("kind")
    if not isinstance(kind, str) or kind not in _ALLOWED:
        raise VectorError(f"unknown kind {kind!r}")
    unknown = set(vector) - _ALLOWED[kind]
    _expect(not unknown, f"unknown keys {sorted(unknown)}")
    required = _ALLOWED[kind] - _OPTIONAL - {"source"}
    if kind == "register" and vector.get("subclass") in _LIMIT_SUBCLASSES:
        required |= {"requested_limit_w", "limit_w"}
    missing = required - set(vector)
    _expect(not missing, f"missing keys {sorted(missing)}")
    try:
        _CHECKS[kind](vector, sta_tables)
    except (StsError, ValueError) as exc:
        if isinstance(exc, VectorError):
            raise
        raise VectorError(f"{type(exc).__name__}: {exc}") from exc


def _summary(vector: dict[str, object]) -> str:
    tokens = vector.get("tokens")
    if isinstance(tokens, list):
        return " ".join(str(token) for token in tokens)
    return str(vector.get("token", ""))


def run_conformance(
    path: pathlib.Path, out: TextIO, *, sta_tables: StaTables | None = None
) -> tuple[int, int]:
    """Check every vector in ``path``; print ``PASS id ...`` / ``FAIL id reason`` and a summary line."""
    passed = failed = 0
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            label = f"line-{line_number}"
            try:
                vector = json.loads(line)
                if not isinstance(vector, dict):
                    raise VectorError("a line must hold a JSON object")
                raw_id = vector.get("id")
                if not isinstance(raw_id, str) or not raw_id:
                    raise VectorError("id must be a non-empty string")
                label = raw_id
                _expect(raw_id not in seen, "duplicate id")
                seen.add(raw_id)
                check_vector(vector, sta_tables=sta_tables)
            except (VectorError, ValueError) as exc:
                failed += 1
                print(f"FAIL {label} {exc}", file=out)
                continue
            passed += 1
            print(f"PASS {label} {vector['kind']} {_summary(vector)}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return passed, failed
