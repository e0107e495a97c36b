"""Vindex hashes in plain Python: the readable spec that ``cython_ext/hashing.pyx`` must match bit for bit.

Keyspace ids are Vitess's, so a row lands on the same shard here as in Vitess:

- ``hash`` vindex: DES-ECB with an all-zero 8-byte key over the 8-byte big-endian uint64 of the value
  (``go/vt/vtgate/vindexes/hash.go``). With a zero key every round subkey is zero, so the round function is
  ``P(S(E(R)))`` alone and is folded into eight precomputed S-box/P tables; encryption and decryption use the same
  (all-zero) subkeys in opposite order, so they are the same function and ``vunhash`` is ``vhash`` run backwards.
- ``xxhash`` vindex: xxHash64 (seed 0, as ``github.com/cespare/xxhash`` ``Sum64``) of the value's bytes, written
  as 8 bytes little-endian. Integers hash as their decimal text (``sqltypes.ToBytes``: 1 -> b"1").
- ``reverse_bits`` vindex: ``bits.Reverse64`` of the uint64.

Input rules shared with the compiled module (same exception types and messages):

- 64-bit integer arguments accept ``[-2**63, 2**64)``; negatives are two's complement (-1 == 2**64 - 1), anything
  else is ``ValueError``. A non-int is ``TypeError``. ``bool`` is an ``int`` and is hashed as 0/1 (MySQL's
  TRUE is 1), also by ``xxhash_ksid`` (True -> b"1").
- ``xxhash_ksid`` takes ``bytes``, ``str`` (hashed as UTF-8) or ``int`` of any size (its decimal text);
  ``xxhash64`` takes ``bytes`` or ``bytearray``. Other types are ``TypeError``.
- Batch functions accept any iterable and return a list; the first bad value raises as the single call would.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

__all__ = [
    "reverse_bits64",
    "vhash",
    "vhash_many",
    "vhash_shards",
    "vunhash",
    "xxhash64",
    "xxhash_ksid",
    "xxhash_ksid_many",
]

_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1


class _ShardFinder(Protocol):
    def find_many(self, ksids: Iterable[bytes], /) -> list[int]: ...


def _as_u64(value: object) -> int:
    """The uint64 Vitess would use for ``value``: two's complement for negatives, range-checked."""
    if not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__}")
    if not -(1 << 63) <= value <= _MASK64:
        raise ValueError(f"integer out of 64-bit range [-2**63, 2**64): {int(value)}")
    return value & _MASK64


# --- DES (FIPS 46-3 tables, 1-based bit numbers counted from the most significant bit) ---------------------------

_IP = (
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
    62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
    57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
    61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
)
_FP = (
    40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31,
    38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13, 53, 21, 61, 29,
    36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
    34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25,
)
_P = (16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25)
_SBOX = (
    (14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7,
     0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0,
     15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13),
    (15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10,
     3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15,
     13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9),
    (10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8,
     13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7,
     1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12),
    (7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15,
     13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4,
     3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14),
    (2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9,
     14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14,
     11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3),
    (12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11,
     10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6,
     4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13),
    (4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1,
     13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2,
     6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12),
    (13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7,
     1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8,
     2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11),
)


def _permute(value: int, table: tuple[int, ...], width: int) -> int:
    """Output bit i (from the top) is input bit ``table[i]`` of a ``width``-bit value."""
    out = 0
    for src in table:
        out = (out << 1) | ((value >> (width - src)) & 1)
    return out


def _sp_table(box: int) -> tuple[int, ...]:
    """S-box ``box`` then P, for each 6-bit input: the whole zero-key round function's share of that S-box."""
    entries = []
    for six in range(64):
        row = ((six >> 4) & 2) | (six & 1)  # outer bits pick the row, the middle four the column
        col = (six >> 1) & 0xF
        entries.append(_permute(_SBOX[box][row * 16 + col] << (28 - 4 * box), _P, 32))
    return tuple(entries)


def _byte_tables(table: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """A 64-bit permutation one input byte at a time: ``[k][b]`` is the image of byte value b at byte position k."""
    lands = [0] * 64  # lands[src - 1]: where input bit src goes, as an output bit value
    for i, src in enumerate(table):
        lands[src - 1] = 1 << (63 - i)
    return tuple(
        tuple(sum(lands[8 * k + j] for j in range(8) if b & (0x80 >> j)) for b in range(256)) for k in range(8)
    )


_SP = tuple(_sp_table(box) for box in range(8))
_IP_BYTES = _byte_tables(_IP)  # 8 lookups instead of 64 single-bit moves per block
_FP_BYTES = _byte_tables(_FP)


def _permute_bytes(value: int, tables: tuple[tuple[int, ...], ...]) -> int:
    out = 0
    for k in range(8):
        out |= tables[k][(value >> (56 - 8 * k)) & 0xFF]
    return out


def _f(r: int) -> int:
    """The DES round function with a zero subkey: S-boxes over the six-bit windows of E(R), then P."""
    rot = ((r >> 1) | (r << 31)) & _MASK32  # E's first window starts at bit 32: rotate it to the top
    wide = (rot << 32) | rot  # so the last window (bits 28..32, 1) is contiguous too
    out = 0
    for box in range(8):
        out ^= _SP[box][(wide >> (58 - 4 * box)) & 0x3F]
    return out


def _des_zero_key(block: int) -> int:
    """DES-ECB of one 64-bit block under the all-zero key; its own inverse, since all 16 subkeys are equal."""
    x = _permute_bytes(block, _IP_BYTES)
    left, right = x >> 32, x & _MASK32
    for _ in range(16):
        left, right = right, left ^ _f(right)
    return _permute_bytes((right << 32) | left, _FP_BYTES)


def vhash(value: int) -> bytes:
    """Keyspace id of Vitess's ``hash`` vindex: DES(zero key) of the big-endian uint64."""
    return _des_zero_key(_as_u64(value)).to_bytes(8, "big")


def vunhash(ksid: bytes) -> int:
    """The uint64 whose ``vhash`` is ``ksid`` (the ``hash`` vindex is reversible)."""
    if not isinstance(ksid, bytes):
        raise TypeError(f"expected bytes, got {type(ksid).__name__}")
    if len(ksid) != 8:
        raise ValueError(f"a hash keyspace id has 8 bytes, got {len(ksid)}")
    return _des_zero_key(int.from_bytes(ksid, "big"))


def vhash_many(values: Iterable[int]) -> list[bytes]:
    """``vhash`` of each value, in order."""
    return [vhash(v) for v in values]


def vhash_shards(values: Iterable[int], shard_map: _ShardFinder) -> list[int]:
    """Shard index of each value's ``vhash`` keyspace id in ``shard_map`` (a ``ShardMap``)."""
    return shard_map.find_many(vhash_many(values))


def reverse_bits64(value: int) -> int:
    """``bits.Reverse64`` of the uint64 (Vitess ``reverse_bits`` vindex)."""
    return int(f"{_as_u64(value):064b}"[::-1], 2)


# --- xxHash64 (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md) -------------------------------------

_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK64


def _round(acc: int, lane: int) -> int:
    return (_rotl64((acc + lane * _P2) & _MASK64, 31) * _P1) & _MASK64


def _merge(acc: int, val: int) -> int:
    return ((acc ^ _round(0, val)) * _P1 + _P4) & _MASK64


def _xxh64(data: bytes | bytearray, seed: int) -> int:
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _MASK64
        v2 = (seed + _P2) & _MASK64
        v3 = seed
        v4 = (seed - _P1) & _MASK64
        while i + 32 <= n:
            v1 = _round(v1, int.from_bytes(data[i:i + 8], "little"))
            v2 = _round(v2, int.from_bytes(data[i + 8:i + 16], "little"))
            v3 = _round(v3, int.from_bytes(data[i + 16:i + 24], "little"))
            v4 = _round(v4, int.from_bytes(data[i + 24:i + 32], "little"))
            i += 32
        h = (_rotl64(v1, 1) + _rotl64(v2, 7) + _rotl64(v3, 12) + _rotl64(v4, 18)) & _MASK64
        for v in (v1, v2, v3, v4):
            h = _merge(h, v)
    else:
        h = (seed + _P5) & _MASK64
    h = (h + n) & _MASK64
    while i + 8 <= n:
        h ^= _round(0, int.from_bytes(data[i:i + 8], "little"))
        h = (_rotl64(h, 27) * _P1 + _P4) & _MASK64
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i:i + 4], "little") * _P1) & _MASK64
        h = (_rotl64(h, 23) * _P2 + _P3) & _MASK64
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _MASK64
        h = (_rotl64(h, 11) * _P1) & _MASK64
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _MASK64
    h ^= h >> 29
    h = (h * _P3) & _MASK64
    h ^= h >> 32
    return h


def xxhash64(data: bytes | bytearray, seed: int = 0) -> int:
    """xxHash64 of ``data`` (bytes or bytearray); ``seed`` follows the 64-bit integer rule."""
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"expected bytes or bytearray, got {type(data).__name__}")
    return _xxh64(data, _as_u64(seed))


def _value_bytes(value: object) -> bytes:
    """The bytes Vitess hashes for a value: raw bytes, UTF-8 text, or an integer's decimal text."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int):
        return b"%d" % value
    raise TypeError(f"expected bytes, str or int, got {type(value).__name__}")


def xxhash_ksid(value: bytes | str | int) -> bytes:
    """Keyspace id of Vitess's ``xxhash`` vindex: xxHash64 (seed 0) of the value's bytes, little-endian."""
    return _xxh64(_value_bytes(value), 0).to_bytes(8, "little")


def xxhash_ksid_many(values: Iterable[bytes | str | int]) -> list[bytes]:
    """``xxhash_ksid`` of each value, in order."""
    return [xxhash_ksid(v) for v in values]
