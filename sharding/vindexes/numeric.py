"""``numeric``: the keyspace id is the value itself as 8 big-endian bytes (Vitess ``numeric.go``).

Unique, cost 0 (the value already is the keyspace id), reversible, and order-preserving, so ``BETWEEN`` maps to
one key range.
"""
from __future__ import annotations

from sharding.destination import NO_SHARD, Destination, KeyRangeDest
from sharding.errors import InvalidValueError
from sharding.keyrange import KeyRange, next_prefix
from sharding.vindexes.base import FunctionalVindex, Hashing, Reversible, Sequential, SingleColumn
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, be64, to_uint64

__all__ = ["NumericVindex"]


class NumericVindex(FunctionalVindex):
    TYPE = "numeric"
    COST = 0
    implements = (SingleColumn, Hashing, Reversible, Sequential)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        n = to_uint64(value)
        return None if n is None else be64(n)

    def reverse(self, ksid: bytes) -> int:
        if len(ksid) != 8:
            raise InvalidValueError(f"vindex {self.name!r} (numeric): keyspace id {ksid.hex()} is not 8 bytes")
        return int.from_bytes(ksid, "big")

    def range_map(self, start: SqlValue, end: SqlValue) -> Destination:
        """``BETWEEN start AND end`` (both inclusive): the key range ``[ksid(start), ksid(end) + 1)``."""
        low, high = self.ksid(start), self.ksid(end)
        if low is None or high is None or low > high:
            return NO_SHARD
        return KeyRangeDest(KeyRange(low, next_prefix(high)))


register("numeric", NumericVindex)
