"""The parameters every lookup vindex shares (Vitess ``lookup_internal.go`` and ``lookupCommon``).

A lookup vindex reads (and, when its owner table is written, maintains) a table mapping ``from`` column values to
keyspace ids in the ``to`` column. Booleans are the strings ``true``/``false`` exactly, as Vitess requires.
``table``, ``from`` and ``to`` are not enforced by Vitess at load time (its test "no params" passes), so a missing
one is a warning here: the VSchema loads, the lookup cannot run until it is set.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sharding.vindexes.base import ParamWarning, param_error

__all__ = [
    "COMMON_PARAMS",
    "INTERNAL_PARAMS",
    "READ_LOCKS",
    "LookupParams",
    "parse_lookup_params",
]

INTERNAL_PARAMS = frozenset({"table", "from", "to", "ignore_nulls", "batch_lookup", "read_lock"})
"""What every lookup reads, consistent lookups included."""
COMMON_PARAMS = frozenset({"autocommit", "multi_shard_autocommit", "write_only", "no_verify"})
"""What the non-consistent lookups add (consistent lookups take only ``write_only`` of these)."""
READ_LOCKS = ("exclusive", "shared", "none")

_BOOL_PARAMS = ("autocommit", "multi_shard_autocommit", "write_only", "no_verify", "ignore_nulls", "batch_lookup")
_IDENT = re.compile(r"[^\s.,`]+|`[^`]+`")  # a column or table name, plain or back-quoted


@dataclass(frozen=True, slots=True)
class LookupParams:
    """The lookup table (``table``, possibly ``keyspace.table``), its columns, and how to use it."""

    table: str = ""
    from_columns: tuple[str, ...] = ()
    to: str = ""
    autocommit: bool = False
    multi_shard_autocommit: bool = False
    write_only: bool = False
    no_verify: bool = False
    ignore_nulls: bool = False
    batch_lookup: bool = False
    read_lock: str = "exclusive"


def _bool(name: str, params: Mapping[str, str], key: str) -> bool:
    value = params.get(key)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise param_error(name, key, f"must be 'true' or 'false', got {value!r}")
    return value == "true"


def parse_lookup_params(
    name: str, params: Mapping[str, str], accepted: frozenset[str]
) -> tuple[LookupParams, tuple[ParamWarning, ...]]:
    """Validated lookup params, and warnings for required ones that are missing.

    Only the keys in ``accepted`` are read; the others are the caller's unknown params.
    """
    warnings: list[ParamWarning] = []
    missing = [key for key in ("table", "from", "to") if not params.get(key, "").strip()]
    if missing:
        names = ", ".join(repr(k) for k in missing)
        warnings.append(ParamWarning("", f"missing {names}: lookups through this vindex cannot run until set"))

    table = params.get("table", "").strip()
    if table and not all(_IDENT.fullmatch(part) for part in table.split(".", 1)):
        raise param_error(name, "table", f"expected 'table' or 'keyspace.table', got {table!r}")
    from_columns: tuple[str, ...] = ()
    if params.get("from", "").strip():
        from_columns = tuple(c.strip() for c in params["from"].split(","))
        if not all(_IDENT.fullmatch(c) for c in from_columns):
            raise param_error(name, "from", f"expected comma-separated column names, got {params['from']!r}")
    to = params.get("to", "").strip()
    if to and not _IDENT.fullmatch(to):
        raise param_error(name, "to", f"expected one column name, got {to!r}")

    flags = {key: _bool(name, params, key) for key in _BOOL_PARAMS if key in accepted}
    read_lock = params.get("read_lock", "exclusive") if "read_lock" in accepted else "exclusive"
    if read_lock not in READ_LOCKS:
        raise param_error(name, "read_lock", f"must be one of {', '.join(READ_LOCKS)}, got {read_lock!r}")
    return LookupParams(table, from_columns, to, read_lock=read_lock, **flags), tuple(warnings)
