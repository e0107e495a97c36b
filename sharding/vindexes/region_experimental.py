"""``region_experimental``: two columns (region, id); keyspace id = region bytes + ``hash(id)`` (Vitess
``region_experimental.go``).

For geo-partitioning: the region picks a slice of the keyspace, the hashed id spreads rows inside it. The
``region_bytes`` param (1 or 2) sets how many low-order bytes of the region number lead the keyspace id. Given the
region alone, the vindex maps to that region's key range. Unique, cost 1.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import cython_ext
from sharding.destination import NO_SHARD, Destination, KeyspaceId, key_range_from_prefix
from sharding.vindexes.base import MultiColumn, VindexBase, param_error
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_uint64

__all__ = ["RegionExperimentalVindex"]


class RegionExperimentalVindex(VindexBase):
    TYPE = "region_experimental"
    COST = 1
    KNOWN_PARAMS = frozenset({"region_bytes"})
    implements = (MultiColumn,)
    __slots__ = ("_region_bytes",)

    def __init__(self, name: str, params: Mapping[str, str] | None = None, *, type_name: str | None = None) -> None:
        super().__init__(name, params, type_name=type_name)
        if "region_bytes" not in self.params:
            raise param_error(name, "region_bytes", "missing required param (1 or 2)")
        region_bytes = self._param("region_bytes")
        if region_bytes not in ("1", "2"):
            raise param_error(name, "region_bytes", f"must be 1 or 2, got {region_bytes!r}")
        self._region_bytes = int(region_bytes)

    @property
    def column_count(self) -> int:
        return 2

    def partial_vindex(self) -> bool:
        return True

    def _region(self, value: SqlValue) -> bytes | None:
        n = to_uint64(value)
        if n is None:
            return None
        return (n & 0xFFFF).to_bytes(2, "big")[2 - self._region_bytes :]

    def map_rows(self, rows: Sequence[Sequence[SqlValue]]) -> list[Destination]:
        out: list[Destination] = []
        pending: list[tuple[int, bytes, int]] = []  # (position, region, id) to hash in one batch
        for row in rows:
            region = self._region(row[0]) if 1 <= len(row) <= 2 else None
            if region is None:
                out.append(NO_SHARD)
            elif len(row) == 1:
                out.append(key_range_from_prefix(region))
            else:
                ident = to_uint64(row[1])
                if ident is None:
                    out.append(NO_SHARD)
                else:
                    pending.append((len(out), region, ident))
                    out.append(NO_SHARD)  # replaced below
        if pending:
            hashes = cython_ext.hashing.vhash_many([ident for _, _, ident in pending])
            for (pos, region, _), h in zip(pending, hashes, strict=True):
                out[pos] = KeyspaceId(region + h)
        return out

    def verify_rows(self, rows: Sequence[Sequence[SqlValue]], ksids: Sequence[bytes]) -> list[bool]:
        return [
            isinstance(d, KeyspaceId) and d.ksid == k for d, k in zip(self.map_rows(rows), ksids, strict=True)
        ]


register("region_experimental", RegionExperimentalVindex)
