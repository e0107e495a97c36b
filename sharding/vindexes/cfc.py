"""``cfc``, Concatenated Fixed-width Composite: a key made of fixed-width parts, hashed part by part, so rows
sharing leading parts share a slice of the keyspace (Vitess ``cfc.go``).

Params: ``hash`` (``''`` = the key itself is the keyspace id, ``md5``, ``xxhash64``) and, with a hash,
``offsets``: the sorted byte offsets where parts end, e.g. ``[3,5]`` for parts ``[0:3]``, ``[3:5]``, ``[5:]``.
The keyspace id concatenates each part's hash truncated to the part's length (md5 at most 16 bytes, xxhash64 at
most 8, little-endian). Equality (``=``, ``IN``) maps as any unique vindex; ``LIKE 'prefix%'`` goes through
``prefix_vindex()``: the prefix, cut at part boundaries, maps to the key range ``[k, k + 1)`` (all shards when the
prefix is shorter than the first part). Unique, cost 1.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise

import cython_ext
from sharding.destination import NO_SHARD, Destination, key_range_from_prefix
from sharding.vindexes.base import FunctionalVindex, Prefixable, SingleColumn, VindexBase, param_error
from sharding.vindexes.binary_md5 import md5
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_bytes

__all__ = ["CFCVindex", "like_prefix"]


def _xxhash64(data: bytes) -> bytes:
    return cython_ext.hashing.xxhash_ksid(data)


_HASHES: dict[str, Callable[[bytes], bytes]] = {"md5": md5, "xxhash64": _xxhash64}

# MySQL string escapes after a backslash (Vitess sqltypes.SQLDecodeMap); any other escaped byte stands for itself.
_UNESCAPE = {ord("0"): 0, ord("b"): 8, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("Z"): 26}


def like_prefix(pattern: bytes) -> bytes:
    """The literal prefix of a LIKE pattern: everything before the first unescaped ``%`` or ``_``."""
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in (0x25, 0x5F):  # % _
            break
        if c == 0x5C:  # backslash
            if i == n - 1:
                out.append(c)  # a trailing backslash stands for itself, as MySQL reads it
                break
            nxt = pattern[i + 1]
            out.append(_UNESCAPE.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _parse_offsets(name: str, text: str) -> tuple[int, ...]:
    bad = f"expected sorted positive integers in brackets, e.g. [2,4], got {text!r}"
    try:
        offsets = json.loads(text)
    except ValueError:
        raise param_error(name, "offsets", bad) from None
    if (
        not isinstance(offsets, list)
        or not offsets
        or any(isinstance(o, bool) or not isinstance(o, int) or o <= 0 for o in offsets)
        or any(b <= a for a, b in pairwise(offsets))
    ):
        raise param_error(name, "offsets", bad)
    return tuple(offsets)


class CFCVindex(FunctionalVindex):
    TYPE = "cfc"
    COST = 1
    KNOWN_PARAMS = frozenset({"hash", "offsets"})
    implements = (SingleColumn, Prefixable)
    __slots__ = ("_hash", "_offsets")

    def __init__(self, name: str, params: Mapping[str, str] | None = None, *, type_name: str | None = None) -> None:
        super().__init__(name, params, type_name=type_name)
        hash_name = self._param("hash")
        self._hash: Callable[[bytes], bytes] | None = None
        self._offsets: tuple[int, ...] = ()
        if not hash_name:
            return  # the key is the keyspace id; offsets play no part (Vitess ignores them too)
        if hash_name not in _HASHES:
            raise param_error(name, "hash", f"must be '', 'md5' or 'xxhash64', got {hash_name!r}")
        self._hash = _HASHES[hash_name]
        if not self._param("offsets"):
            raise param_error(name, "offsets", "required when 'hash' is set")
        self._offsets = _parse_offsets(name, self._param("offsets"))

    @property
    def offsets(self) -> tuple[int, ...]:
        return self._offsets

    def compute_ksid(self, key: bytes, *, prefix: bool) -> bytes | None:
        """The keyspace id of a whole key, or (``prefix=True``) of the whole parts a prefix holds."""
        if self._hash is None:
            return key
        n = len(key)
        if not prefix and n < self._offsets[-1]:
            return None  # shorter than its fixed-width parts: no row can have this key
        out = bytearray()
        prev = 0
        for offset in self._offsets:
            if n < offset:
                return bytes(out)  # a prefix ending inside a part: only the whole parts count
            out += self._hash(key[prev:offset])[: offset - prev]
            prev = offset
        if prev < n:
            out += self._hash(key[prev:])[: n - prev]
        return bytes(out)

    def ksid(self, value: SqlValue) -> bytes | None:
        key = to_bytes(value)
        return None if key is None else self.compute_ksid(key, prefix=False)

    def prefix_vindex(self) -> CFCPrefixVindex:
        return CFCPrefixVindex(self)


class CFCPrefixVindex(VindexBase):
    """``cfc`` inside ``LIKE``: maps a pattern to the key range of its literal prefix. Not unique; cost grows with
    the number of parts, since a shorter prefix reaches more shards (Vitess ``prefixCFC``)."""

    UNIQUE = False
    implements = (SingleColumn,)
    __slots__ = ("_cfc",)

    def __init__(self, cfc: CFCVindex) -> None:
        super().__init__(cfc.name, cfc.params, type_name=cfc.type)
        self._cfc = cfc

    @property
    def cost(self) -> int:
        return len(self._cfc.offsets) or 2

    def map(self, values: Sequence[SqlValue]) -> list[Destination]:
        out: list[Destination] = []
        for value in values:
            pattern = to_bytes(value)
            begin = None if pattern is None else self._cfc.compute_ksid(like_prefix(pattern), prefix=True)
            out.append(NO_SHARD if begin is None else key_range_from_prefix(begin))
        return out

    def verify(self, values: Sequence[SqlValue], ksids: Sequence[bytes]) -> list[bool]:
        return self._cfc.verify(values, ksids)


register("cfc", CFCVindex)
