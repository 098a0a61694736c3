"""EA11: the MISTY1 block cipher (RFC 2994), as STS uses it for 128-bit decoder keys.

Written from the RFC's description. The two S-boxes are the constants the RFC
publishes (S7: 7-bit, S9: 9-bit); everything else is the RFC's key schedule and
its FI / FO / FL functions, with eight rounds.

Speed matters because every vend encrypts one block: the FI function is split
into a keyless first half and a second half, each precomputed over all 65,536
16-bit inputs, so that ``FI(x, k) == _FI_OUT[_FI_IN[x] ^ k]``. That works
because the RFC XORs the 16-bit FI subkey into exactly the ``d7 << 9 | d9``
layout that the first half produces. The key schedule is done once per key
(:class:`Misty1`), so a caller that keeps the object keeps the schedule.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BLOCK_BITS", "KEY_BYTES", "Misty1"]

KEY_BYTES: Final = 16
BLOCK_BITS: Final = 64
_MASK16: Final = 0xFFFF
_MASK32: Final = 0xFFFF_FFFF

_S7_HEX = (
    "1b32335a3b1017545b1a72736b2c66491f24136c372e3f4a5d0f405625511c04"
    "0b46200d7b3544422b1e41144b79156f0e550936740c6753280a7e3802076029"
    "1912652f303908685f782a4c6445753d594803577c4f623c1d215e276a704d3a"
    "016d6e6318772305267600312d7a7f61502211064716524e713e6943345c587d"
)
_S9_HEX = (
    "1c30cb15319f1e30e90fb0351810b91171eb13300902d0d30c714a03707e0eb164"
    "1931d80a311e05502c01d1a216311814b1521d200f02b03013a0e511113818e063"
    "0e30c81f401b00109d0f81a016d1f301c14607d0d10821ea18312d0f419e1d30dd"
    "1e21281e00ec05909101112f0260dc0b018c10f1f70e716c0b60f90d815110114c"
    "1030b815412b1ae01707100c04705807f1a413412908415d19d1b21a304807c051"
    "1ca02313d1a716503b0420da1920ce0c106b09f1f112c1840fa1961e116917d031"
    "18010a0941da18613e11c0601751cf06711906506809915000800717c0b7024019"
    "0de1270db0e41a905210909019c1c10281b313516a1760df1e51880c516e1de1b1"
    "0c31df0360ee1ee0f009304909a1b606908112500b05e0b41491c717403e13b1b7"
    "08e1c60ae0100951ef04e0f21fd0850fd0f60a016f08308a15609b13c107167098"
    "1d01e90031fe0bd1220890d218f01203306a1420ed17011b0e214f15813114705d"
    "1131cd0791611a517909e1b40cc02213201a0e80041871ed1970391bf1d702718b"
    "0c609c0d014e06c0341f206e0ca0250ba1910fe01310602f1ad1721db0c010b1d6"
    "0f51ec10d0761141ab07510c1e415905411f04b0c41be0f70290a400e1f007704d"
    "17a08608b0b31710bf10e10409715b1601680d70bb0661ce0fc0921c506f01604a"
    "0a11390af0f119000a1aa14317b05618d1660d41fb14d19419a0871f81230a71b8"
    "14103c1f914002a15511a1a11980d51261af06112e1571dc07218a0aa0961150ef"
    "04507b08d14505305f1780b202e0201d503f1c91e71ac0440380140b116b0ab0b5"
    "05a1821c81d40181770640cf06d10019913015a0051201bb1bd0e004f0d613f1c4"
    "12a0150060ff19b0a604308805015f1e812107317e0bc0c20c91731891f50741cc"
    "1e61a819501f04100d1ba03203d1d10800a80571b91621480d910506207a0211ff"
    "1121081c00a911d1b01a60cd0f305c10205b1d91441f60ad0a503a1cb13617f046"
    "0e101e1dd0e61371fa18508c08f0401b50be0780000ac11015e1240021bc0a20ea"
    "0701fc11615c04c1c2"
)


S7: Final[tuple[int, ...]] = tuple(bytes.fromhex("".join(_S7_HEX)))
S9: Final[tuple[int, ...]] = tuple(int("".join(_S9_HEX)[i : i + 3], 16) for i in range(0, 512 * 3, 3))


def _fi_reference(fi_in: int, fi_key: int) -> int:
    """FI exactly as RFC 2994 writes it; used for the key schedule and to build the tables."""
    d9 = fi_in >> 7
    d7 = fi_in & 0x7F
    d9 = S9[d9] ^ d7
    d7 = (S7[d7] ^ d9) & 0x7F
    d7 ^= fi_key >> 9
    d9 ^= fi_key & 0x1FF
    d9 = S9[d9] ^ d7
    return (d7 << 9) | d9


def _build_fi_in() -> tuple[int, ...]:
    table = []
    for x in range(1 << 16):
        d7 = x & 0x7F
        d9 = S9[x >> 7] ^ d7
        d7 = (S7[d7] ^ d9) & 0x7F
        table.append((d7 << 9) | d9)
    return tuple(table)


def _build_fi_out() -> tuple[int, ...]:
    return tuple(((y >> 9) << 9) | (S9[y & 0x1FF] ^ (y >> 9)) for y in range(1 << 16))


_FI_IN: Final = _build_fi_in()
_FI_OUT: Final = _build_fi_out()


class Misty1:
    """A MISTY1 key schedule, ready to encrypt and decrypt 64-bit blocks held as ints.

    The object holds expanded key material, so its ``repr`` names no key bytes.
    """

    __slots__ = ("_fl_keys", "_fo_keys")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"MISTY1 needs a {KEY_BYTES}-byte key, got {len(key)} bytes")
        ek = [int.from_bytes(key[2 * i : 2 * i + 2], "big") for i in range(8)]
        ek.extend(_fi_reference(ek[i], ek[(i + 1) % 8]) for i in range(8))
        # FO round k: (KOi1, KIi1, KOi2, KIi2, KOi3, KIi3, KOi4) in the order they are used.
        self._fo_keys: tuple[tuple[int, int, int, int, int, int, int], ...] = tuple(
            (
                ek[k],
                ek[(k + 5) % 8 + 8],
                ek[(k + 2) % 8],
                ek[(k + 1) % 8 + 8],
                ek[(k + 7) % 8],
                ek[(k + 3) % 8 + 8],
                ek[(k + 4) % 8],
            )
            for k in range(8)
        )
        # FL index i (0..9): (KLi1, KLi2) = the AND key, then the OR key.
        fl: list[tuple[int, int]] = []
        for i in range(10):
            if i % 2 == 0:
                fl.append((ek[i // 2], ek[(i // 2 + 6) % 8 + 8]))
            else:
                fl.append((ek[((i - 1) // 2 + 2) % 8 + 8], ek[((i - 1) // 2 + 4) % 8]))
        self._fl_keys: tuple[tuple[int, int], ...] = tuple(fl)

    def __repr__(self) -> str:
        return "Misty1(<key schedule hidden>)"

    def encrypt_block(self, block: int) -> int:
        """Encrypt one 64-bit block (bit 63 = first bit of the big-endian bytes)."""
        fi_in = _FI_IN
        fi_out = _FI_OUT
        fo_keys = self._fo_keys
        fl_keys = self._fl_keys
        d0 = block >> 32
        d1 = block & _MASK32
        for r in range(0, 8, 2):
            # FL on both halves, as the RFC does before every even round.
            a, o = fl_keys[r]
            h, lo = d0 >> 16, d0 & _MASK16
            lo ^= h & a
            h ^= lo | o
            d0 = (h << 16) | lo
            a, o = fl_keys[r + 1]
            h, lo = d1 >> 16, d1 & _MASK16
            lo ^= h & a
            h ^= lo | o
            d1 = (h << 16) | lo
            # Even round: D1 ^= FO(D0).
            k0, k1, k2, k3, k4, k5, k6 = fo_keys[r]
            t0, t1 = d0 >> 16, d0 & _MASK16
            t0 = fi_out[fi_in[t0 ^ k0] ^ k1] ^ t1
            t1 = fi_out[fi_in[t1 ^ k2] ^ k3] ^ t0
            t0 = fi_out[fi_in[t0 ^ k4] ^ k5] ^ t1
            d1 ^= ((t1 ^ k6) << 16) | t0
            # Odd round: D0 ^= FO(D1).
            k0, k1, k2, k3, k4, k5, k6 = fo_keys[r + 1]
            t0, t1 = d1 >> 16, d1 & _MASK16
            t0 = fi_out[fi_in[t0 ^ k0] ^ k1] ^ t1
            t1 = fi_out[fi_in[t1 ^ k2] ^ k3] ^ t0
            t0 = fi_out[fi_in[t0 ^ k4] ^ k5] ^ t1
            d0 ^= ((t1 ^ k6) << 16) | t0
        a, o = fl_keys[8]
        h, lo = d0 >> 16, d0 & _MASK16
        lo ^= h & a
        h ^= lo | o
        d0 = (h << 16) | lo
        a, o = fl_keys[9]
        h, lo = d1 >> 16, d1 & _MASK16
        lo ^= h & a
        h ^= lo | o
        d1 = (h << 16) | lo
        return (d1 << 32) | d0

    def decrypt_block(self, block: int) -> int:
        """Invert :meth:`encrypt_block`."""
        fi_in = _FI_IN
        fi_out = _FI_OUT
        fo_keys = self._fo_keys
        fl_keys = self._fl_keys
        d0 = block & _MASK32
        d1 = block >> 32
        a, o = fl_keys[8]
        h, lo = d0 >> 16, d0 & _MASK16
        h ^= lo | o
        lo ^= h & a
        d0 = (h << 16) | lo
        a, o = fl_keys[9]
        h, lo = d1 >> 16, d1 & _MASK16
        h ^= lo | o
        lo ^= h & a
        d1 = (h << 16) | lo
        for r in range(6, -1, -2):
            k0, k1, k2, k3, k4, k5, k6 = fo_keys[r + 1]
            t0, t1 = d1 >> 16, d1 & _MASK16
            t0 = fi_out[fi_in[t0 ^ k0] ^ k1] ^ t1
            t1 = fi_out[fi_in[t1 ^ k2] ^ k3] ^ t0
            t0 = fi_out[fi_in[t0 ^ k4] ^ k5] ^ t1
            d0 ^= ((t1 ^ k6) << 16) | t0
            k0, k1, k2, k3, k4, k5, k6 = fo_keys[r]
            t0, t1 = d0 >> 16, d0 & _MASK16
            t0 = fi_out[fi_in[t0 ^ k0] ^ k1] ^ t1
            t1 = fi_out[fi_in[t1 ^ k2] ^ k3] ^ t0
            t0 = fi_out[fi_in[t0 ^ k4] ^ k5] ^ t1
            d1 ^= ((t1 ^ k6) << 16) | t0
            a, o = fl_keys[r]
            h, lo = d0 >> 16, d0 & _MASK16
            h ^= lo | o
            lo ^= h & a
            d0 = (h << 16) | lo
            a, o = fl_keys[r + 1]
            h, lo = d1 >> 16, d1 & _MASK16
            h ^= lo | o
            lo ^= h & a
            d1 = (h << 16) | lo
        return (d0 << 32) | d1

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt one 8-byte block given as bytes."""
        return self.encrypt_block(int.from_bytes(plaintext, "big")).to_bytes(8, "big")

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt one 8-byte block given as bytes."""
        return self.decrypt_block(int.from_bytes(ciphertext, "big")).to_bytes(8, "big")
