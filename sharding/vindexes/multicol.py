"""``multicol``: a keyspace id assembled from several columns, each hashed by its own vindex (Vitess
``multicol.go``).

Params: ``column_count`` (1..8, required); ``column_bytes``, how many leading bytes of each column's hash go into
the 8-byte keyspace id (default: split evenly, earlier columns taking the larger share: 3 columns -> 3,3,2);
``column_vindex``, the vindex type per column (default ``hash``; each must be a unique functional ``Hashing``
vindex). Other params are handed to the column vindexes. Given only the leading columns, the vindex maps to the key
range of that prefix. Unique; cost is the sum of the column vindexes' costs.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sharding.destination import NO_SHARD, Destination, KeyspaceId, key_range_from_prefix
from sharding.errors import InvalidValueError, VSchemaError
from sharding.vindexes.base import Hashing, MultiColumn, ParamWarning, VindexBase, param_error
from sharding.vindexes.registry import create, register
from sharding.vindexes.values import SqlValue

__all__ = ["MultiColVindex"]

_OWN_PARAMS = frozenset({"column_count", "column_bytes", "column_vindex"})
_SMALL_INT = re.compile(r"[0-9]{1,2}")
_KSID_BYTES = 8


def _column_count(name: str, params: Mapping[str, str]) -> int:
    text = params.get("column_count")
    if text is None:
        raise param_error(name, "column_count", "missing required param (number of columns, 1..8)")
    if not _SMALL_INT.fullmatch(text) or not 1 <= int(text) <= _KSID_BYTES:
        raise param_error(name, "column_count", f"must be a number of columns from 1 to 8, got {text!r}")
    return int(text)


def _column_bytes(name: str, params: Mapping[str, str], count: int) -> tuple[int, ...]:
    parts = params["column_bytes"].split(",") if "column_bytes" in params else []
    if len(parts) > count:
        raise param_error(name, "column_bytes", f"{len(parts)} entries for {count} columns")
    given: dict[int, int] = {}
    for i, part in enumerate(parts):
        part = part.strip()
        if not part:
            continue  # left for the even split
        if not _SMALL_INT.fullmatch(part) or not 1 <= int(part) <= _KSID_BYTES:
            raise param_error(name, "column_bytes", f"entry {i} must be 1..8 bytes, got {part!r}")
        given[i] = int(part)
    remaining = _KSID_BYTES - sum(given.values())
    pending = count - len(given)
    if pending > remaining or remaining < 0:
        raise param_error(name, "column_bytes", "the columns need more than the 8 bytes of a keyspace id")
    sizes: list[int] = []
    for i in range(count):
        if i in given:
            sizes.append(given[i])
            continue
        share = -(-remaining // pending)  # ceiling: earlier columns get the larger share
        sizes.append(share)
        remaining -= share
        pending -= 1
    return tuple(sizes)


def _column_vindexes(name: str, params: Mapping[str, str], count: int) -> tuple[Hashing, ...]:
    types = [t.strip() for t in params["column_vindex"].split(",")] if "column_vindex" in params else []
    if len(types) > count:
        raise param_error(name, "column_vindex", f"{len(types)} vindex types for {count} columns")
    sub_params = {k: v for k, v in params.items() if k not in _OWN_PARAMS}
    out: list[Hashing] = []
    for i in range(count):
        type_name = types[i] if i < len(types) and types[i] else "hash"
        try:
            vindex, _ = create(type_name, type_name, sub_params)
        except VSchemaError as exc:
            raise param_error(name, "column_vindex", f"column {i}: {exc.message}") from None
        if not isinstance(vindex, Hashing) or not vindex.is_unique or vindex.needs_vcursor:
            raise param_error(
                name, "column_vindex", f"column {i}: {type_name!r} is not a unique functional hashing vindex"
            )
        out.append(vindex)
    return tuple(out)


class MultiColVindex(VindexBase):
    TYPE = "multicol"
    implements = (MultiColumn,)
    __slots__ = ("_bytes", "_count", "_vindexes")

    def __init__(self, name: str, params: Mapping[str, str] | None = None, *, type_name: str | None = None) -> None:
        super().__init__(name, params, type_name=type_name)
        self._count = _column_count(name, self.params)
        self._bytes = _column_bytes(name, self.params, self._count)
        self._vindexes = _column_vindexes(name, self.params, self._count)

    @property
    def cost(self) -> int:
        return sum(v.cost for v in self._vindexes)  # type: ignore[attr-defined]

    @property
    def column_count(self) -> int:
        return self._count

    @property
    def column_bytes(self) -> tuple[int, ...]:
        return self._bytes

    def partial_vindex(self) -> bool:
        return True

    def param_warnings(self) -> tuple[ParamWarning, ...]:
        # Params outside multicol's own were handed to the column vindexes: unknown only if none of them knows it.
        known = set(_OWN_PARAMS)
        for v in self._vindexes:
            known.update(getattr(v, "known_params", frozenset)())
        return tuple(
            ParamWarning(p, f"unknown param {p!r} for vindex type {self.type!r}")
            for p in sorted(self.params)
            if p not in known
        )

    def _ksid(self, row: Sequence[SqlValue]) -> bytes | None:
        if not row or len(row) > self._count:
            return None
        ksid = bytearray()
        used = 0
        for value, vindex, size in zip(row, self._vindexes, self._bytes, strict=False):
            try:
                column_hash = vindex.hash(value)
            except InvalidValueError:
                return None
            ksid += b"\x00" * (used - len(ksid))  # a short hash of an earlier column keeps its width
            ksid += column_hash[:size]
            used += size
        return bytes(ksid)

    def map_rows(self, rows: Sequence[Sequence[SqlValue]]) -> list[Destination]:
        out: list[Destination] = []
        for row in rows:
            ksid = self._ksid(row)
            if ksid is None:
                out.append(NO_SHARD)
            elif len(row) < self._count:
                out.append(key_range_from_prefix(ksid))
            else:
                out.append(KeyspaceId(ksid))
        return out

    def verify_rows(self, rows: Sequence[Sequence[SqlValue]], ksids: Sequence[bytes]) -> list[bool]:
        return [
            len(row) == self._count and self._ksid(row) == k for row, k in zip(rows, ksids, strict=True)
        ]


register("multicol", MultiColVindex)
