"""Key change token sets, including the rollover that moves a meter to a new base date.

A key change set carries a meter's new decoder key in 2 sections (64-bit EA07 keys:
subclasses 3 and 4) or 4 sections (128-bit EA11 keys: 3, 4, 8 and 9), each encrypted with
the meter's **current** key. The meter switches keys only once every section has arrived.

The 2024 rollover: a TID counts minutes in 24 bits, so TIDs from base date 1993 run out
in November 2024 (and a KEN of 255 expires the key at TID 255 x 65535, a few days
earlier). Each meter must get a key change with the rollover bit (RO = 1) and a new key
derived with base date 2014 before then; RO = 1 tells the meter to clear its TID memory
and count from the new base date. :func:`build_rollover_key_change_set` builds that set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from citygas.sts.keys import DecoderKey, DecoderKeyParameters, KeyType
from citygas.sts.tid import next_base_date
from citygas.sts.tokens import (
    KeyChangeSection1,
    KeyChangeSection2,
    KeyChangeSection3,
    KeyChangeSection4,
    encode_token,
)
from citygas.sts.vault import KeyVault

__all__ = [
    "KeyChangeSection",
    "KeyChangeSet",
    "NewKeyAttributes",
    "assemble_new_key",
    "build_key_change_set",
    "build_key_change_set_from_vault",
    "build_rollover_key_change_set",
    "key_change_sections",
]

KeyChangeSection = KeyChangeSection1 | KeyChangeSection2 | KeyChangeSection3 | KeyChangeSection4


@dataclass(frozen=True, slots=True)
class NewKeyAttributes:
    """What a key change set tells the meter about its new key, besides the key itself."""

    ken: int
    krn: int
    kt: int
    ti: int
    sgc: int | None  # carried only by 128-bit sets
    rollover: bool
    res: int = 0


@dataclass(frozen=True, slots=True, repr=False)
class KeyChangeSet:
    """The tokens of one key change, in section order, with what they install."""

    tokens: tuple[str, ...]
    section_numbers: tuple[int, ...]
    attributes: NewKeyAttributes
    new_parameters: DecoderKeyParameters | None = None

    def __repr__(self) -> str:
        return (
            f"KeyChangeSet(sections={self.section_numbers}, krn={self.attributes.krn}, "
            f"rollover={self.attributes.rollover}, <new key hidden>)"
        )


def key_change_sections(new_key: bytes, attributes: NewKeyAttributes) -> tuple[KeyChangeSection, ...]:
    """The plaintext sections that carry ``new_key`` (8 or 16 bytes) and its attributes."""
    if not 0 <= attributes.ken <= 255:
        raise ValueError(f"KEN {attributes.ken} is outside 0..255")
    first = KeyChangeSection1(
        ken_high=attributes.ken >> 4,
        krn=attributes.krn,
        rollover=int(attributes.rollover),
        res=attributes.res,
        kt=attributes.kt,
        key_part=int.from_bytes(new_key[0:4], "big"),
    )
    if len(new_key) == 8:
        return (
            first,
            KeyChangeSection2(attributes.ken & 0xF, attributes.ti, int.from_bytes(new_key[4:8], "big")),
        )
    if len(new_key) != 16:
        raise ValueError(f"a decoder key is 8 or 16 bytes, got {len(new_key)}")
    if attributes.sgc is None or not 0 <= attributes.sgc < (1 << 24):
        raise ValueError("a 128-bit key change set carries the SGC: give a value in 0..16777215")
    return (
        first,
        KeyChangeSection2(attributes.ken & 0xF, attributes.ti, int.from_bytes(new_key[12:16], "big")),
        KeyChangeSection3(attributes.sgc & 0xFFF, int.from_bytes(new_key[4:8], "big")),
        KeyChangeSection4(attributes.sgc >> 12, int.from_bytes(new_key[8:12], "big")),
    )


def assemble_new_key(
    sections: Mapping[int, KeyChangeSection], key_bytes: int
) -> tuple[bytes, NewKeyAttributes]:
    """Meter side: rebuild the new key from sections 1..2 (8-byte keys) or 1..4 (16-byte keys).

    ``sections`` maps section number to section; raises ``KeyError`` if one is missing.
    """
    first = sections[1]
    second = sections[2]
    if not isinstance(first, KeyChangeSection1) or not isinstance(second, KeyChangeSection2):
        raise TypeError("sections 1 and 2 must be KeyChangeSection1 and KeyChangeSection2")
    sgc: int | None = None
    if key_bytes == 8:
        material = first.key_part.to_bytes(4, "big") + second.key_part.to_bytes(4, "big")
    else:
        third = sections[3]
        fourth = sections[4]
        if not isinstance(third, KeyChangeSection3) or not isinstance(fourth, KeyChangeSection4):
            raise TypeError("sections 3 and 4 must be KeyChangeSection3 and KeyChangeSection4")
        material = b"".join(
            part.to_bytes(4, "big")
            for part in (first.key_part, third.key_part, fourth.key_part, second.key_part)
        )
        sgc = (fourth.sgc_high << 12) | third.sgc_low
    attributes = NewKeyAttributes(
        ken=(first.ken_high << 4) | second.ken_low,
        krn=first.krn,
        kt=first.kt,
        ti=second.ti,
        sgc=sgc,
        rollover=bool(first.rollover),
        res=first.res,
    )
    return material, attributes


def build_key_change_set(
    *,
    current_key: DecoderKey,
    new_key: DecoderKey,
    new_parameters: DecoderKeyParameters,
    ken: int,
    rollover: bool = False,
    res: int = 0,
) -> KeyChangeSet:
    """Encrypt the sections that install ``new_key`` with the meter's ``current_key``."""
    # A 64-bit (2-section) set has no room for the SGC: the meter keeps the one it has.
    attributes = NewKeyAttributes(
        ken=ken,
        krn=new_parameters.krn,
        kt=new_parameters.kt,
        ti=new_parameters.ti,
        sgc=int(new_parameters.sgc) if new_key.bits == 128 else None,
        rollover=rollover,
        res=res,
    )
    sections = key_change_sections(new_key.material(), attributes)
    tokens = tuple(encode_token(section, current_key) for section in sections)
    numbers = tuple(range(1, len(sections) + 1))
    return KeyChangeSet(tokens, numbers, attributes, new_parameters)


def build_key_change_set_from_vault(
    *,
    vault: KeyVault,
    key_id: str,
    current: DecoderKeyParameters,
    new: DecoderKeyParameters,
    ken: int,
    rollover: bool = False,
    new_key_id: str | None = None,
) -> KeyChangeSet:
    """A key change whose old and new keys are both derived inside the vault."""
    current_key = vault.derive_decoder_key(key_id, current)
    new_key = vault.derive_decoder_key(new_key_id or key_id, new)
    return build_key_change_set(
        current_key=current_key, new_key=new_key, new_parameters=new, ken=ken, rollover=rollover
    )


def build_rollover_key_change_set(
    *,
    vault: KeyVault,
    key_id: str,
    current: DecoderKeyParameters,
    new_krn: int,
    new_ken: int = 255,
    new_ti: int | None = None,
    new_key_id: str | None = None,
) -> KeyChangeSet:
    """The key change with RO = 1 that moves a meter to its next base date (1993 -> 2014).

    The new key is derived from the same vending key (or ``new_key_id`` if the operator
    is also changing vending keys) with the next base date and ``new_krn``. After the
    meter accepts it, the vending side must reset the meter's TID store
    (:meth:`~citygas.sts.tid.TidStore.reset_for_rollover`) and record the new base date,
    KRN and KEN, because TIDs now count from the new base date.
    """
    if current.kt not in (KeyType.DUTK, KeyType.DCTK):
        raise ValueError("a rollover replaces an installed unique or common key (KT 2 or 3)")
    new_parameters = dataclasses.replace(
        current,
        base_date=next_base_date(current.base_date),
        krn=new_krn,
        ti=current.ti if new_ti is None else new_ti,
    )
    return build_key_change_set_from_vault(
        vault=vault,
        key_id=key_id,
        current=current,
        new=new_parameters,
        ken=new_ken,
        rollover=True,
        new_key_id=new_key_id,
    )
