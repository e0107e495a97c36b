"""Reading a lookup vindex's table to route a statement (Vitess ``lookupInternal.Lookup``).

``resolve_route`` answers ``NeedsLookup(vindex, values)`` for a route on a lookup vindex; this module reads
``SELECT from, to FROM table WHERE from IN (…)`` on the lookup table's shards (the table is itself a VSchema
table: an unsharded keyspace's single shard, or, when sharded by its ``from`` column, only the shards those values
map to; otherwise all of them), hands the rows to ``vindex.map_result`` and groups the values by shard.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from router.engine.context import as_rows
from router.engine.runtime import Runtime
from router.planner.resolve import ResolvedRoute, group_by_shard
from router.planner.sqltext import ENCODERS
from sharding.errors import RoutingError, UnknownTableError
from sharding.snapshot import Shard
from sharding.vindexes.base import FunctionalVindex, Lookup

__all__ = ["lookup_destinations", "resolve_lookup"]


def _quote(name: str, dialect: str) -> str:
    if dialect == "postgres":
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def _lookup_table(rt: Runtime, vindex: Lookup, route_keyspace: str) -> tuple[str, str, Any]:
    params = vindex.lookup
    if not params.table or not params.from_columns or not params.to:
        raise RoutingError(f"lookup vindex {vindex.name} has no table/from/to parameters: it cannot route yet")
    keyspace, _, table = params.table.rpartition(".")
    keyspace, table = keyspace.strip("`"), table.strip("`")
    vschema = rt.snapshot.vschema
    try:
        found = vschema.find_table(table, keyspace or None)
    except UnknownTableError:
        if keyspace:
            raise RoutingError(f"lookup table {params.table} of vindex {vindex.name} is not in the VSchema") from None
        found = None
    return (found.keyspace if found is not None else route_keyspace), table, found


def _lookup_shards(rt: Runtime, keyspace: str, table: Any, values: Sequence[Any]
                   ) -> list[tuple[Shard, tuple[Any, ...]]]:
    shards = list(rt.snapshot.shards(keyspace))
    ks = rt.snapshot.vschema.keyspaces.get(keyspace)
    if ks is None or not ks.sharded or len(shards) == 1:
        return [(shards[0], tuple(values))]
    primary = table.primary_vindex if table is not None else None
    vindex = primary.vindex if primary is not None else None
    if primary is not None and isinstance(vindex, FunctionalVindex) and len(primary.columns) == 1:
        resolved = group_by_shard(rt.snapshot, keyspace, list(values), vindex.map(list(values)), keep_values=True)
        assert resolved.values is not None
        return list(zip(resolved.shards, resolved.values, strict=True))
    return [(s, tuple(values)) for s in shards]


def _norm(value: Any) -> Any:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.casefold()
    return value


async def lookup_destinations(rt: Runtime, vindex: Lookup, values: Sequence[Any], route_keyspace: str) -> list[Any]:
    """One destination per value, from the lookup table's rows (``vindex.map_result``)."""
    keyspace, table, table_def = _lookup_table(rt, vindex, route_keyspace)
    params = vindex.lookup
    dialect = rt.ctx.backend_dialect(keyspace)
    encode = ENCODERS[dialect]
    stored = [vindex.from_value(v) for v in values]
    wanted = [v for v in stored if v is not None]
    found: dict[Any, list[Any]] = {}
    if wanted:
        frm, to = params.from_columns[0], params.to
        head = f"SELECT {_quote(frm, dialect)}, {_quote(to, dialect)} FROM {_quote(table, dialect)} WHERE " \
               f"{_quote(frm, dialect)} IN ("

        async def one(shard: Shard, vals: tuple[Any, ...]) -> Sequence[Any]:
            sql = head + ", ".join(encode(v) for v in vals) + ")"
            return as_rows(await rt.wait(rt.ctx.execute(rt.target(keyspace, shard.name), sql,
                                                        timeout=rt.remaining())))

        parts = _lookup_shards(rt, keyspace, table_def, wanted)
        results = await asyncio.gather(*(one(s, v) for s, v in parts))
        for rows in results:
            for row in rows:
                found.setdefault(_norm(row[0]), []).append(row[1])
    per_value = [found.get(_norm(v), []) if v is not None else [] for v in stored]
    return list(vindex.map_result(list(values), per_value))


async def resolve_lookup(rt: Runtime, keyspace: str, vindex: Lookup, values: Sequence[Any],
                         keep_values: bool) -> ResolvedRoute:
    dests = await lookup_destinations(rt, vindex, values, keyspace)
    return group_by_shard(rt.snapshot, keyspace, list(values), dests, keep_values=keep_values)
