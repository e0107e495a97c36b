"""``hash``: the keyspace id is DES (all-zero key) of the value as a big-endian uint64 (Vitess ``hash.go``).

Unique, cost 1, reversible (DES decrypts). Integers only: text of a base-10 integer and integral floats are read
as integers, anything else maps to no shard. The DES itself is ``cython_ext.hashing.vhash``; ``map`` hashes a
whole batch in one call.
"""
from __future__ import annotations

from collections.abc import Sequence

import cython_ext
from sharding.destination import NO_SHARD, Destination, KeyspaceId
from sharding.errors import InvalidValueError
from sharding.vindexes.base import FunctionalVindex, Hashing, Reversible, SingleColumn
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_uint64

__all__ = ["HashVindex"]


class HashVindex(FunctionalVindex):
    TYPE = "hash"
    COST = 1
    implements = (SingleColumn, Hashing, Reversible)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        n = to_uint64(value)
        return None if n is None else cython_ext.hashing.vhash(n)

    def map(self, values: Sequence[SqlValue]) -> list[Destination]:
        nums = [to_uint64(v) for v in values]
        ksids = iter(cython_ext.hashing.vhash_many([n for n in nums if n is not None]))
        return [NO_SHARD if n is None else KeyspaceId(next(ksids)) for n in nums]

    def reverse(self, ksid: bytes) -> int:
        """The uint64 whose hash is ``ksid``."""
        if len(ksid) != 8:
            raise InvalidValueError(f"vindex {self.name!r} (hash): keyspace id {ksid.hex()} is not 8 bytes")
        return int(cython_ext.hashing.vunhash(bytes(ksid)))


register("hash", HashVindex)
