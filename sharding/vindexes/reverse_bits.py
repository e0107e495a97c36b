"""``reverse_bits``: the keyspace id is the uint64 with its bits reversed, big-endian (Vitess ``reverse_bits.go``).

Spreads sequential ids over shards while staying reversible. Unique, cost 1.
"""
from __future__ import annotations

import cython_ext
from sharding.errors import InvalidValueError
from sharding.vindexes.base import FunctionalVindex, Hashing, Reversible, SingleColumn
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, be64, to_uint64

__all__ = ["ReverseBitsVindex"]


class ReverseBitsVindex(FunctionalVindex):
    TYPE = "reverse_bits"
    COST = 1
    implements = (SingleColumn, Hashing, Reversible)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        n = to_uint64(value)
        return None if n is None else be64(cython_ext.hashing.reverse_bits64(n))

    def reverse(self, ksid: bytes) -> int:
        if len(ksid) != 8:
            raise InvalidValueError(f"vindex {self.name!r} (reverse_bits): keyspace id {ksid.hex()} is not 8 bytes")
        return int(cython_ext.hashing.reverse_bits64(int.from_bytes(ksid, "big")))


register("reverse_bits", ReverseBitsVindex)
