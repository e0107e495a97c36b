"""``binary``: the keyspace id is the value's bytes, unchanged (Vitess ``binary.go``).

For columns that already hold a keyspace id. Unique, cost 0, reversible, order-preserving (``BETWEEN``). NULL is
the empty keyspace id, which sorts first, as in Vitess.
"""
from __future__ import annotations

from sharding.destination import NO_SHARD, Destination, KeyRangeDest
from sharding.errors import KeyRangeError
from sharding.keyrange import KeyRange, next_prefix
from sharding.vindexes.base import FunctionalVindex, Hashing, Reversible, Sequential, SingleColumn
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_bytes

__all__ = ["BinaryVindex"]


class BinaryVindex(FunctionalVindex):
    TYPE = "binary"
    COST = 0
    implements = (SingleColumn, Hashing, Reversible, Sequential)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        return to_bytes(value)

    def reverse(self, ksid: bytes) -> bytes:
        return bytes(ksid)

    def range_map(self, start: SqlValue, end: SqlValue) -> Destination:
        """``BETWEEN start AND end``: ``[start, next_prefix(end))``, which also takes in the keys that extend
        ``end`` (a superset of shards is safe; the shards filter rows themselves)."""
        low, high = to_bytes(start), to_bytes(end)
        if low is None or high is None or low > high:
            return NO_SHARD
        try:
            return KeyRangeDest(KeyRange(low, next_prefix(high)))
        except KeyRangeError:
            return NO_SHARD


register("binary", BinaryVindex)
