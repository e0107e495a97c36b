"""``unicode_loose_xxhash``: xxHash64 of the case- and accent-insensitive collation key, little-endian (Vitess
``unicodeloosexxhash.go``). Same key as ``unicode_loose_md5``, an 8-byte keyspace id. Unique, cost 1."""
from __future__ import annotations

import cython_ext
from sharding.vindexes.base import FunctionalVindex, Hashing, SingleColumn
from sharding.vindexes.registry import register
from sharding.vindexes.unicode_loose_md5 import unicode_loose_key
from sharding.vindexes.values import SqlValue

__all__ = ["UnicodeLooseXXHashVindex"]


class UnicodeLooseXXHashVindex(FunctionalVindex):
    TYPE = "unicode_loose_xxhash"
    COST = 1
    implements = (SingleColumn, Hashing)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        key = unicode_loose_key(value)
        return None if key is None else cython_ext.hashing.xxhash_ksid(key)


register("unicode_loose_xxhash", UnicodeLooseXXHashVindex)
