"""``lookup_unicodeloosemd5_hash`` (and ``_unique``): a ``lookup_hash`` whose ``from`` column stores a number
derived from the text, so lookups ignore case and accents (Vitess ``lookup_unicodeloosemd5_hash.go``).

``from = uint64(first 8 bytes of unicode_loose_md5(value))``, big-endian; ``to`` as ``lookup_hash``.
"""
from __future__ import annotations

from sharding.vindexes.binary_md5 import md5
from sharding.vindexes.lookup import LookupVindex
from sharding.vindexes.lookup_hash import HashedToMixin
from sharding.vindexes.registry import register
from sharding.vindexes.unicode_loose_md5 import unicode_loose_key
from sharding.vindexes.values import SqlValue

__all__ = ["LookupUnicodeLooseMD5HashUniqueVindex", "LookupUnicodeLooseMD5HashVindex", "unicode_loose_md5_uint64"]


def unicode_loose_md5_uint64(value: SqlValue) -> int | None:
    """The ``from`` column value for ``value``, or None when the value has no collation key."""
    key = unicode_loose_key(value)
    return None if key is None else int.from_bytes(md5(key)[:8], "big")


class _FromTransform:
    __slots__ = ()

    def from_value(self, value: SqlValue) -> int | None:
        return unicode_loose_md5_uint64(value)


class LookupUnicodeLooseMD5HashVindex(_FromTransform, HashedToMixin, LookupVindex):
    TYPE = "lookup_unicodeloosemd5_hash"
    __slots__ = ()


class LookupUnicodeLooseMD5HashUniqueVindex(_FromTransform, HashedToMixin, LookupVindex):
    TYPE = "lookup_unicodeloosemd5_hash_unique"
    COST = 10
    UNIQUE = True
    __slots__ = ()


register("lookup_unicodeloosemd5_hash", LookupUnicodeLooseMD5HashVindex)
register("lookup_unicodeloosemd5_hash_unique", LookupUnicodeLooseMD5HashUniqueVindex)
