"""``lookup_hash`` and ``lookup_hash_unique``: lookups whose ``to`` column stores the number behind a ``hash``
keyspace id, not the id's bytes (Vitess ``lookup_hash.go``).

The table then holds readable numbers: ``to = vunhash(ksid)`` on write, ``ksid = vhash(to)`` on read.
"""
from __future__ import annotations

import cython_ext
from sharding.errors import InvalidValueError
from sharding.vindexes.lookup import LookupVindex
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_uint64

__all__ = ["LookupHashUniqueVindex", "LookupHashVindex", "HashedToMixin"]


class HashedToMixin:
    """``to`` column transforms shared by the ``*_hash`` lookups."""

    __slots__ = ()
    name: str

    def to_value(self, ksid: bytes) -> int:
        if len(ksid) != 8:
            raise InvalidValueError(f"vindex {self.name!r}: keyspace id {ksid.hex()} is not a hash keyspace id")
        return int(cython_ext.hashing.vunhash(bytes(ksid)))

    def ksid_from_to(self, to: SqlValue) -> bytes | None:
        n = to_uint64(to)
        return None if n is None else cython_ext.hashing.vhash(n)


class LookupHashVindex(HashedToMixin, LookupVindex):
    TYPE = "lookup_hash"
    __slots__ = ()


class LookupHashUniqueVindex(HashedToMixin, LookupVindex):
    TYPE = "lookup_hash_unique"
    COST = 10
    UNIQUE = True
    __slots__ = ()


register("lookup_hash", LookupHashVindex)
register("lookup_hash_unique", LookupHashUniqueVindex)
