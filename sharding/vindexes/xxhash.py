"""``xxhash``: the keyspace id is xxHash64 (seed 0) of the value's bytes, little-endian (Vitess ``xxhash.go``).

Unique, cost 1, not reversible. Integers hash as their decimal text and NULL as empty bytes, as Vitess's
``ToBytes``. ``map`` hashes the whole batch with one ``cython_ext.hashing.xxhash_ksid_many`` call.
"""
from __future__ import annotations

from collections.abc import Sequence

import cython_ext
from sharding.destination import NO_SHARD, Destination, KeyspaceId
from sharding.vindexes.base import FunctionalVindex, Hashing, SingleColumn
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_bytes

__all__ = ["XXHashVindex"]


def _hashable(value: SqlValue) -> bytes | int | None:
    """What ``xxhash_ksid`` takes: ints and bytes go through as they are (it hashes an int's decimal text)."""
    if isinstance(value, bytes | int):
        return value
    return to_bytes(value)


class XXHashVindex(FunctionalVindex):
    TYPE = "xxhash"
    COST = 1
    implements = (SingleColumn, Hashing)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        raw = _hashable(value)
        return None if raw is None else cython_ext.hashing.xxhash_ksid(raw)

    def map(self, values: Sequence[SqlValue]) -> list[Destination]:
        raws = [_hashable(v) for v in values]
        ksids = iter(cython_ext.hashing.xxhash_ksid_many([r for r in raws if r is not None]))
        return [NO_SHARD if r is None else KeyspaceId(next(ksids)) for r in raws]


register("xxhash", XXHashVindex)
