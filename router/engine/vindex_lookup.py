"""``VindexLookup``: read the lookup table first, then send the statement to the shards of the keyspace ids it
returned (Vitess ``VindexLookup``).

The lookup primitive is a route on the lookup table whose query and routing read the values from
``ListVar(<from column>)``; the engine binds the route's values there, runs it, hands the ``(from, to)`` rows to
the vindex's ``map_result``, and runs ``send`` (a ``ByDestination`` route) on exactly those shards.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from router.engine.runtime import Runtime, Source
from router.planner.plan import Opcode, Primitive, Route, VindexLookup
from router.planner.resolve import group_by_shard
from router.planner.values import ListVar, evaluate
from sharding.errors import RoutingError

__all__ = ["open_vindex_lookup"]

Opener = Callable[[Primitive, Runtime], Awaitable[Source]]


def _list_var(prim: Primitive) -> str | None:
    routing = getattr(prim, "routing", None)
    for v in getattr(routing, "values", ()) or ():
        if isinstance(v, ListVar):
            return v.name
    query = getattr(prim, "query", None)
    for s in getattr(query, "slots", ()) or ():
        if isinstance(s, ListVar):
            return s.name
    return None


def _norm(v: Any) -> Any:
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return v.casefold()
    return v


async def open_vindex_lookup(prim: VindexLookup, rt: Runtime, open_source: Opener) -> Source:
    from router.engine.route import RouteSource

    routing = prim.routing
    keyspace = routing.keyspace.name
    ks = rt.snapshot.vschema.keyspaces.get(keyspace)
    vindex: Any = ks.vindexes.get(routing.vindex or "") if ks is not None else None
    if vindex is None:
        raise RoutingError(f"vindex {routing.vindex} not found in keyspace {keyspace}")
    raw = evaluate(routing.values[0], rt.binds, rt.env)
    values = list(raw) if isinstance(raw, tuple) else [raw]
    wanted = tuple(v for v in values if v is not None)
    found: dict[Any, list[Any]] = {}
    if wanted:
        name = _list_var(prim.lookup) or (vindex.lookup.from_columns[0] if vindex.lookup.from_columns else "from")
        rows = await (await open_source(prim.lookup, rt.child({**rt.env, name: wanted}))).drain()
        for row in rows:
            found.setdefault(_norm(row[0]), []).append(row[1])
    per_value = [found.get(_norm(v), []) if v is not None else [] for v in values]
    dests = vindex.map_result(values, per_value)
    resolved = group_by_shard(rt.snapshot, keyspace, values, dests, keep_values=False)
    send = prim.send
    if not isinstance(send, Route):
        raise RoutingError(f"VindexLookup sends through a {type(send).__name__}, expected a Route")
    source = RouteSource(send, rt, small=routing.opcode in (Opcode.EqualUnique, Opcode.Equal, Opcode.IN,
                                                             Opcode.MultiEqual))
    source.resolved = resolved
    return await source.open()
