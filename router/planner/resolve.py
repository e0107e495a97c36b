"""From a route's routing parameters and one execution's values to the shards it runs on. Pure.

Functional vindexes (hash, xxhash, numeric, …) map values to keyspace ids here, synchronously, on the hot path.
Lookup vindexes need their lookup table read first; ``resolve_route`` says so with ``NeedsLookup`` and the engine
does the read (``VindexLookup``), then calls ``shards_for_destinations``.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from router.planner.plan import Opcode, RoutingParams
from router.planner.routing import multicolumn_rows
from router.planner.values import evaluate
from sharding.destination import ALL_SHARDS, NO_SHARD, Destination, KeyRangeDest, KeyspaceId
from sharding.errors import RoutingError, ShardgateError
from sharding.keyrange import KeyRange
from sharding.snapshot import ClusterSnapshot, Shard
from sharding.vindexes.base import FunctionalVindex, Lookup, MultiColumn, Prefixable, Sequential, SingleColumn


class ResolvedRoute(NamedTuple):
    """The shards a route runs on. ``values`` (IN routes) gives each shard the values that map to it, in the
    order of ``shards``; ``any_one`` means any single shard will do (reference tables). Made per query, so a
    NamedTuple (cheaper to build than a frozen dataclass)."""

    shards: tuple[Shard, ...]
    values: tuple[tuple[Any, ...], ...] | None = None
    any_one: bool = False


@dataclass(frozen=True, slots=True)
class NeedsLookup:
    """The route's vindex is a lookup vindex: read ``vindex``'s table for ``values`` first."""

    vindex: Lookup
    values: tuple[Any, ...]


_binary_vindex: SingleColumn | None = None


@dataclass(frozen=True, slots=True)
class _Caps:
    functional: bool  # computes one keyspace id from one value: the fast path
    multi: bool
    lookup: bool
    prefixable: bool
    sequential: bool


_caps_by_type: dict[type, _Caps] = {}


def _caps(vindex: Any) -> _Caps:
    """A vindex class's capabilities, checked once per class: runtime Protocol checks cost ~10 µs each."""
    cls = type(vindex)
    caps = _caps_by_type.get(cls)
    if caps is None:
        caps = _Caps(isinstance(vindex, FunctionalVindex), isinstance(vindex, MultiColumn),
                     isinstance(vindex, Lookup), isinstance(vindex, Prefixable), isinstance(vindex, Sequential))
        _caps_by_type[cls] = caps
    return caps


def _vindex(snapshot: ClusterSnapshot, routing: RoutingParams) -> Any:
    ks = snapshot.vschema.keyspaces.get(routing.keyspace.name)
    vindex = ks.vindexes.get(routing.vindex or "") if ks is not None else None
    if vindex is None and routing.vindex == "binary":  # pinned tables route by their fixed keyspace id
        global _binary_vindex
        if _binary_vindex is None:
            from sharding.vindexes import registry

            _binary_vindex = registry.create("binary", "binary", {})[0]  # type: ignore[assignment]
        vindex = _binary_vindex
    if vindex is None:
        raise RoutingError(f"vindex {routing.vindex} not found in keyspace {routing.keyspace.name}")
    return vindex


def _target_shards(snapshot: ClusterSnapshot, keyspace: str, target: str) -> list[Shard]:
    shards = snapshot.shards(keyspace)
    named = [s for s in shards if s.name == target]
    if named:
        return named
    if target in ("", "-", "0"):
        return list(shards)
    try:
        kr = KeyRange.parse(target)
    except Exception:
        raise RoutingError(f"keyspace {keyspace} has no shard or key range {target!r}") from None
    return snapshot.resolve(keyspace, KeyRangeDest(kr))


def resolve_route(routing: RoutingParams, binds: Sequence[Any], snapshot: ClusterSnapshot,
                  env: dict[str, Any] | None = None) -> ResolvedRoute | NeedsLookup:
    op = routing.opcode
    ks = routing.keyspace.name
    if op is Opcode.None_:
        return ResolvedRoute(())
    if op in (Opcode.Unsharded, Opcode.Next, Opcode.DBA):
        return ResolvedRoute((snapshot.shards(ks)[0],))
    if op is Opcode.Reference:
        return ResolvedRoute(tuple(snapshot.shards(ks)), any_one=True)
    if op is Opcode.Scatter:
        return ResolvedRoute(tuple(snapshot.shards(ks)))
    if op is Opcode.ByDestination:
        return ResolvedRoute(tuple(_target_shards(snapshot, ks, routing.target or "-")))
    vindex = _vindex(snapshot, routing)
    caps = _caps(vindex)
    if op is Opcode.EqualUnique and caps.functional and not caps.prefixable:
        # The hot path (a point query): one keyspace id, one shard lookup, no destination objects.
        ksid = vindex.ksid(evaluate(routing.values[0], binds, env))
        return ResolvedRoute(() if ksid is None else (snapshot.keyspaces[ks].shard_for_ksid(ksid),))
    values = [evaluate(v, binds, env) for v in routing.values]
    if caps.multi:
        # One value (or list) per leading vindex column: the rows they make, each a keyspace id or a key range.
        # The query goes unchanged to every shard reached (no per-shard narrowing for multi-column lists).
        kss = snapshot.keyspaces[ks]
        hit: dict[str, Shard] = {}
        for dest in vindex.map_rows(multicolumn_rows(op, values)):
            for shard in kss.resolve(dest):
                hit.setdefault(shard.name, shard)
        order = {s.name: i for i, s in enumerate(kss.shards)}
        return ResolvedRoute(tuple(sorted(hit.values(), key=lambda s: order[s.name])))
    if op in (Opcode.EqualUnique, Opcode.Equal):
        if caps.lookup:
            return NeedsLookup(vindex, (values[0],))
        if caps.prefixable and op is Opcode.Equal:
            # A unique prefixable vindex (cfc) routes equality as EqualUnique; Equal on it comes from LIKE 'p%'.
            vindex = vindex.prefix_vindex()
        dest = vindex.map([values[0]])[0]
        return ResolvedRoute(tuple(snapshot.resolve(ks, dest)))
    if op in (Opcode.IN, Opcode.MultiEqual):
        items = values[0] if isinstance(values[0], tuple) else (values[0],)
        if caps.lookup:
            return NeedsLookup(vindex, tuple(items))
        dests = vindex.map(list(items))
        return group_by_shard(snapshot, ks, items, dests, keep_values=op is Opcode.IN)
    if op is Opcode.SubShard:  # only multi-column vindexes make SubShard routes
        return ResolvedRoute(tuple(snapshot.resolve(ks, ALL_SHARDS)))
    if op is Opcode.Between:
        low, high = values[0] if isinstance(values[0], tuple) else (values[0], values[0])
        dest = vindex.range_map(low, high) if caps.sequential else ALL_SHARDS
        return ResolvedRoute(tuple(snapshot.resolve(ks, dest)))
    raise RoutingError(f"cannot resolve a {op.value} route")


def group_by_shard(snapshot: ClusterSnapshot, keyspace: str, items: Sequence[Any], dests: Sequence[Destination],
                   keep_values: bool) -> ResolvedRoute:
    """Shards of several values in key order, each with the values that map to it."""
    kss = snapshot.keyspaces[keyspace]
    order: dict[str, int] = {s.name: i for i, s in enumerate(kss.shards)}
    per_shard: dict[str, tuple[Shard, list[Any]]] = {}
    for item, dest in zip(items, dests, strict=True):
        if dest is NO_SHARD:
            continue
        targets = (kss.shard_for_ksid(dest.ksid),) if type(dest) is KeyspaceId else kss.resolve(dest)
        for shard in targets:
            entry = per_shard.setdefault(shard.name, (shard, []))
            if item not in entry[1]:
                entry[1].append(item)
    names = sorted(per_shard, key=order.__getitem__)
    shards = tuple(per_shard[n][0] for n in names)
    if not keep_values:
        return ResolvedRoute(shards)
    return ResolvedRoute(shards, tuple(tuple(per_shard[n][1]) for n in names))


def single_shard(routing: RoutingParams, binds: Sequence[Any], snapshot: ClusterSnapshot,
                 turn: Iterator[int]) -> Shard | None:
    """The one shard a read of ``routing`` goes to without asking a lookup table: its only shard, or one of an
    "any shard will do" route (``turn``: a round-robin counter); None otherwise (the single-shard fast paths of
    the frontends then leave the statement to the engine)."""
    try:
        resolved = resolve_route(routing, binds, snapshot)
    except ShardgateError:
        return None
    if isinstance(resolved, NeedsLookup) or not resolved.shards:
        return None
    shards = resolved.shards
    if len(shards) == 1:
        return shards[0]
    if resolved.any_one:
        return shards[next(turn) % len(shards)]
    return None
