"""``unicode_loose_md5``: MD5 of the value's case- and accent-insensitive collation key (Vitess
``unicodeloosemd5.go``).

The key is the concatenation of the UCA primary weights of the UTF-8 text with trailing spaces trimmed
(``cython_ext.collation.unicode_loose_key``), so ``'Test'``, ``'TEST'`` and ``'Tést'`` share a shard. Unique,
cost 1, not reversible. Text that is not valid UTF-8 has no key and maps to no shard.
"""
from __future__ import annotations

import cython_ext
from sharding.vindexes.base import FunctionalVindex, Hashing, SingleColumn
from sharding.vindexes.binary_md5 import md5
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_bytes

__all__ = ["UnicodeLooseMD5Vindex", "unicode_loose_key"]


def unicode_loose_key(value: SqlValue) -> bytes | None:
    """The collation key the ``unicode_loose_*`` vindexes hash, or None when the value has none."""
    raw = to_bytes(value)
    if raw is None:
        return None
    try:
        return bytes(cython_ext.collation.unicode_loose_key(raw))
    except ValueError:  # not valid UTF-8
        return None


class UnicodeLooseMD5Vindex(FunctionalVindex):
    TYPE = "unicode_loose_md5"
    COST = 1
    implements = (SingleColumn, Hashing)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        key = unicode_loose_key(value)
        return None if key is None else md5(key)


register("unicode_loose_md5", UnicodeLooseMD5Vindex)
