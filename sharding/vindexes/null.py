"""``null``: every value, NULL included, maps to keyspace id ``00``, i.e. the first shard (Vitess ``null.go``).

Useful while moving an unsharded table into a sharded keyspace. Unique, and cost 100 so the planner prefers any
other vindex.
"""
from __future__ import annotations

from sharding.vindexes.base import FunctionalVindex, Hashing, SingleColumn
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue

__all__ = ["NullVindex"]

_NULL_KSID = b"\x00"


class NullVindex(FunctionalVindex):
    TYPE = "null"
    COST = 100
    implements = (SingleColumn, Hashing)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        return _NULL_KSID


register("null", NullVindex)
