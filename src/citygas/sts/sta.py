"""EA07: the Standard Transfer Algorithm (STA), driven by licensed tables loaded at run time.

The STA's two 4-bit substitution tables and its 64-bit permutation are STS Association
material. They are never committed to this repository; an operator with a licence
writes them into a *STA table file* (format below) kept with their key-management
material, and points citygas at it (for example through a setting holding its path).

Round structure (public descriptions of the STA; the file's check vectors confirm it):

* the working key is the decoder key complemented and rotated right by 12 bits;
* each of 16 rounds substitutes every nibble of the block, with table 2 when the most
  significant bit of the matching working-key nibble is 1 and table 1 otherwise, then
  permutes the 64 bits, then rotates the working key left by 1 bit;
* decryption runs the exact inverse.

STA table file, UTF-8 JSON::

    {
      "format": "citygas-sta-tables/1",
      "substitution_1": [16 integers 0..15, a permutation],
      "substitution_2": [16 integers 0..15, a permutation],
      "permutation": [64 integers 0..63, a permutation],
      "check_vectors": [
        {"decoder_key": "<16 hex>", "plaintext": "<16 hex>", "ciphertext": "<16 hex>"}
      ]
    }

Bits and nibbles are numbered from the most significant end: bit 0 is the block's most
significant bit and nibble 0 its most significant nibble. ``permutation[i] = j`` moves
input bit i to output bit j. ``substitution_n[x]`` is the output nibble for input x.
``check_vectors`` is optional but strongly advised: the loader refuses a file whose
vectors do not reproduce, so a transcription error cannot issue unusable tokens.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Final

from citygas.sts.errors import StaTablesError

__all__ = ["STA_TABLE_FORMAT", "Sta", "StaTables", "load_sta_tables"]

STA_TABLE_FORMAT: Final = "citygas-sta-tables/1"
_MASK64: Final = (1 << 64) - 1
_ROUNDS: Final = 16


def _is_permutation(values: object, size: int) -> bool:
    return (
        isinstance(values, list)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        and sorted(values) == list(range(size))
    )


@dataclass(frozen=True, slots=True, repr=False)
class StaTables:
    """The licensed STA tables, checked to be permutations. ``repr`` does not print them."""

    substitution_1: tuple[int, ...]
    substitution_2: tuple[int, ...]
    permutation: tuple[int, ...]

    def __post_init__(self) -> None:
        if not _is_permutation(list(self.substitution_1), 16):
            raise StaTablesError("substitution_1 must be a permutation of 0..15")
        if not _is_permutation(list(self.substitution_2), 16):
            raise StaTablesError("substitution_2 must be a permutation of 0..15")
        if not _is_permutation(list(self.permutation), 64):
            raise StaTablesError("permutation must be a permutation of 0..63")

    def __repr__(self) -> str:
        return "StaTables(<licensed tables hidden>)"


class _StaRoundTables:
    """Substitution and permutation folded into per-byte lookup tables.

    For byte position p (0 = most significant) and the 2 key bits that pick the tables
    for its two nibbles, ``forward[p][select][byte]`` is that byte's substituted and
    permuted contribution to the 64-bit output, so a round is 8 lookups and 7 ORs.
    """

    def __init__(self, tables: StaTables) -> None:
        subs = (tables.substitution_1, tables.substitution_2)
        inverse_subs = tuple(_invert(s) for s in subs)
        perm = tables.permutation
        inverse_perm = _invert(perm)
        self.forward: tuple[tuple[tuple[int, ...], ...], ...] = tuple(
            tuple(
                tuple(
                    _permute(
                        ((subs[select >> 1][value >> 4] << 4) | subs[select & 1][value & 0xF])
                        << (56 - 8 * p),
                        perm,
                    )
                    for value in range(256)
                )
                for select in range(4)
            )
            for p in range(8)
        )
        # Inverse permutation contributions per byte, then inverse substitution per byte.
        self.unpermute: tuple[tuple[int, ...], ...] = tuple(
            tuple(_permute(value << (56 - 8 * p), inverse_perm) for value in range(256)) for p in range(8)
        )
        self.unsubstitute: tuple[tuple[int, ...], ...] = tuple(
            tuple(
                (inverse_subs[select >> 1][value >> 4] << 4) | inverse_subs[select & 1][value & 0xF]
                for value in range(256)
            )
            for select in range(4)
        )


def _invert(table: tuple[int, ...]) -> tuple[int, ...]:
    inverse = [0] * len(table)
    for index, value in enumerate(table):
        inverse[value] = index
    return tuple(inverse)


def _permute(block: int, perm: tuple[int, ...]) -> int:
    out = 0
    for source, target in enumerate(perm):
        if (block >> (63 - source)) & 1:
            out |= 1 << (63 - target)
    return out


def _rotate_left(value: int, count: int) -> int:
    count %= 64
    return ((value << count) | (value >> (64 - count))) & _MASK64


class Sta:
    """EA07 for one 64-bit decoder key, with the key-dependent table choices precomputed."""

    __slots__ = ("_round_selects", "_tables")

    def __init__(self, key: bytes, tables: StaTables) -> None:
        if len(key) != 8:
            raise ValueError(f"EA07 needs an 8-byte decoder key, got {len(key)} bytes")
        self._tables = _round_tables_for(tables)
        working = (~int.from_bytes(key, "big")) & _MASK64
        working = _rotate_left(working, 64 - 12)  # rotate right by 12
        selects: list[tuple[int, ...]] = []
        for _ in range(_ROUNDS):
            # Key bit for nibble n is the nibble's most significant bit: bit 63 - 4n.
            selects.append(
                tuple(
                    (((working >> (63 - 8 * p)) & 1) << 1) | ((working >> (59 - 8 * p)) & 1) for p in range(8)
                )
            )
            working = _rotate_left(working, 1)
        self._round_selects: tuple[tuple[int, ...], ...] = tuple(selects)

    def __repr__(self) -> str:
        return "Sta(<key schedule hidden>)"

    def encrypt_block(self, block: int) -> int:
        forward = self._tables.forward
        for selects in self._round_selects:
            out = 0
            for p in range(8):
                out |= forward[p][selects[p]][(block >> (56 - 8 * p)) & 0xFF]
            block = out
        return block

    def decrypt_block(self, block: int) -> int:
        unpermute = self._tables.unpermute
        unsubstitute = self._tables.unsubstitute
        for selects in reversed(self._round_selects):
            permuted_back = 0
            for p in range(8):
                permuted_back |= unpermute[p][(block >> (56 - 8 * p)) & 0xFF]
            block = 0
            for p in range(8):
                block |= unsubstitute[selects[p]][(permuted_back >> (56 - 8 * p)) & 0xFF] << (56 - 8 * p)
        return block


_ROUND_TABLE_CACHE: dict[int, tuple[StaTables, _StaRoundTables]] = {}


def _round_tables_for(tables: StaTables) -> _StaRoundTables:
    # Building the folded tables costs ~10 ms; a vending process uses one table set.
    cached = _ROUND_TABLE_CACHE.get(id(tables))
    if cached is not None and cached[0] is tables:
        return cached[1]
    built = _StaRoundTables(tables)
    _ROUND_TABLE_CACHE[id(tables)] = (tables, built)
    return built


def load_sta_tables(path: pathlib.Path) -> StaTables:
    """Read and verify a licensed STA table file (see the module docstring for its format)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StaTablesError(f"STA table file {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise StaTablesError(f"STA table file {path} cannot be read as JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise StaTablesError(f"STA table file {path} must hold a JSON object")
    allowed = {"format", "substitution_1", "substitution_2", "permutation", "check_vectors"}
    unknown = set(raw) - allowed
    if unknown:
        raise StaTablesError(f"STA table file {path} has unknown keys: {sorted(unknown)}")
    if raw.get("format") != STA_TABLE_FORMAT:
        raise StaTablesError(f"STA table file {path} must declare format {STA_TABLE_FORMAT!r}")
    for name, size in (("substitution_1", 16), ("substitution_2", 16), ("permutation", 64)):
        if not _is_permutation(raw.get(name), size):
            raise StaTablesError(f"{name} in {path} must be a permutation of 0..{size - 1}")
    tables = StaTables(
        substitution_1=tuple(raw["substitution_1"]),
        substitution_2=tuple(raw["substitution_2"]),
        permutation=tuple(raw["permutation"]),
    )
    vectors = raw.get("check_vectors", [])
    if not isinstance(vectors, list):
        raise StaTablesError(f"check_vectors in {path} must be a list")
    for number, vector in enumerate(vectors, start=1):
        try:
            key = bytes.fromhex(vector["decoder_key"])
            plaintext = int(vector["plaintext"], 16)
            ciphertext = int(vector["ciphertext"], 16)
        except (KeyError, TypeError, ValueError) as exc:
            raise StaTablesError(f"check vector {number} in {path} is malformed") from exc
        if Sta(key, tables).encrypt_block(plaintext) != ciphertext:
            raise StaTablesError(
                f"check vector {number} in {path} does not reproduce: "
                "the tables or their transcription are wrong"
            )
    return tables
