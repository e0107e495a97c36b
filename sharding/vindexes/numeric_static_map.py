"""``numeric_static_map``: ``numeric`` with a fixed table of exceptions (Vitess ``numeric_static_map.go``).

The table maps uint64 values to the uint64 used as keyspace id; it comes from a JSON object in the ``json`` param
or in the file named by ``json_path`` (read once, when the vindex is created; relative paths are relative to the
working directory, as in Vitess). Values not in the table keep their own number, or go through the
``fallback_type`` vindex (e.g. ``xxhash``) when one is set. Unique, cost 1.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sharding.errors import VSchemaError
from sharding.vindexes.base import FunctionalVindex, Hashing, SingleColumn, param_error
from sharding.vindexes.registry import create, register
from sharding.vindexes.values import MASK64, SqlValue, be64, to_uint64

__all__ = ["NumericStaticMapVindex"]


def _parse_table(name: str, param: str, doc: Any) -> dict[int, int]:
    if not isinstance(doc, dict):
        raise param_error(name, param, f"expected a JSON object of uint64 -> uint64, got {type(doc).__name__}")
    table: dict[int, int] = {}
    for key, value in doc.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit()) or int(key) > MASK64:
            raise param_error(name, param, f"key {key!r} is not a uint64")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MASK64:
            raise param_error(name, param, f"value {value!r} for key {key!r} is not a uint64")
        table[int(key)] = value
    return table


def _load_table(name: str, params: Mapping[str, str]) -> dict[int, int]:
    has_path, has_json = "json_path" in params, "json" in params
    if has_path == has_json:
        which = "both" if has_path else "neither"
        raise param_error(name, "json_path", f"give exactly one of 'json_path' or 'json' ({which} given)")
    if has_json:
        try:
            doc = json.loads(params["json"])
        except ValueError as exc:
            raise param_error(name, "json", f"invalid JSON: {exc}") from None
        return _parse_table(name, "json", doc)
    path = params["json_path"]
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise param_error(name, "json_path", f"cannot read {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise param_error(name, "json_path", f"{path!r} is not valid JSON: {exc}") from None
    return _parse_table(name, "json_path", doc)


class NumericStaticMapVindex(FunctionalVindex):
    TYPE = "numeric_static_map"
    COST = 1
    KNOWN_PARAMS = frozenset({"json_path", "json", "fallback_type"})
    implements = (SingleColumn, Hashing)
    __slots__ = ("_fallback", "_table")

    def __init__(self, name: str, params: Mapping[str, str] | None = None, *, type_name: str | None = None) -> None:
        super().__init__(name, params, type_name=type_name)
        self._table: Mapping[int, int] = MappingProxyType(_load_table(name, self.params))
        self._fallback: Hashing | None = None
        fallback_type = self._param("fallback_type")
        if fallback_type:
            try:
                fallback, _ = create(fallback_type, f"{name}_fallback", {})
            except VSchemaError as exc:  # unknown type, or it needs params
                raise param_error(name, "fallback_type", f"cannot create {fallback_type!r}: {exc}") from None
            if not isinstance(fallback, Hashing) or not fallback.is_unique or fallback.needs_vcursor:
                raise param_error(name, "fallback_type", f"{fallback_type!r} is not a unique functional vindex")
            self._fallback = fallback

    def ksid(self, value: SqlValue) -> bytes | None:
        n = to_uint64(value)
        if n is None:
            return None
        mapped = self._table.get(n)
        if mapped is not None:
            return be64(mapped)
        if self._fallback is not None:
            return self._fallback.hash(value)
        return be64(n)


register("numeric_static_map", NumericStaticMapVindex)
