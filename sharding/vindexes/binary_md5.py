"""``binary_md5``: the keyspace id is MD5 of the value's bytes, 16 bytes (Vitess ``binarymd5.go``).

Unique, cost 1, not reversible. NULL hashes as empty bytes (MD5 ``d41d8cd9...``), as in Vitess.
"""
from __future__ import annotations

import hashlib

from sharding.vindexes.base import FunctionalVindex, Hashing, SingleColumn
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_bytes

__all__ = ["BinaryMD5Vindex", "md5"]


def md5(data: bytes) -> bytes:
    """MD5 as a keyspace-id function, not for security."""
    return hashlib.md5(data, usedforsecurity=False).digest()


class BinaryMD5Vindex(FunctionalVindex):
    TYPE = "binary_md5"
    COST = 1
    implements = (SingleColumn, Hashing)
    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        raw = to_bytes(value)
        return None if raw is None else md5(raw)


register("binary_md5", BinaryMD5Vindex)
