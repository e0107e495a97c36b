"""When two routes can run as one query (Vitess ``tryMerge``): the rules for joins, outer joins, subqueries and
unions, each stated as the reason the merged query gives the same rows as the two run apart.

A route's rows are partitioned over the shards it reaches: a sharded table's row lives on exactly one shard, a
reference table's rows on every shard of its keyspace, an unsharded keyspace has one shard, ``dual`` (and a
query without tables) is everywhere. Two parts of a query can be sent together when every row combination the
query needs meets on one shard, exactly once: both parts pinned to the same shard, one part complete on every
shard (a reference table) joined to a partitioned one, or rows paired by an equality of columns that carry the
same unique vindex (equal values, same keyspace id, same shard). Everything else runs apart.
"""
from __future__ import annotations

from router.planner.context import PlanContext
from router.planner.plan import Opcode
from router.planner.routing import TableRoute
from router.planner.semantics import TableRef

# Vitess engine.Opcode order (routing.py's ranking), used to pick the cheaper of two valid routes.
_RANK = {
    Opcode.Unsharded: 0, Opcode.EqualUnique: 1, Opcode.Equal: 2, Opcode.IN: 3, Opcode.MultiEqual: 4,
    Opcode.Scatter: 5, Opcode.Next: 6, Opcode.DBA: 7, Opcode.Reference: 8, Opcode.None_: 9,
    Opcode.ByDestination: 10, Opcode.SubShard: 11, Opcode.Between: 12,
}
# Opcodes that narrow a sharded table's shards (a narrower route of the same rows).
NARROWING = frozenset({Opcode.EqualUnique, Opcode.Equal, Opcode.IN, Opcode.MultiEqual, Opcode.SubShard,
                       Opcode.Between, Opcode.None_})
SINGLE_SHARD = frozenset({Opcode.Unsharded, Opcode.EqualUnique, Opcode.Reference, Opcode.DBA, Opcode.None_,
                          Opcode.Next})


def single_shard(route: TableRoute) -> bool:
    """Whether a route reaches at most one shard (so whatever its query computes, it computes whole)."""
    if route.opcode in SINGLE_SHARD:
        return True
    return route.opcode is Opcode.ByDestination and "-" not in (route.target or "-")


def anywhere(route: TableRoute) -> bool:
    """A route of ``dual`` only (or of no table): its rows exist on every server of every keyspace."""
    return route.opcode is not Opcode.None_ and all(t.kind == "dual" for t in route.tables)


def cost(route: TableRoute) -> tuple[int, int, int]:
    opt = route.option
    if opt is None:
        return (_RANK[route.opcode], 0, 0)
    return (_RANK[route.opcode], 0 if opt.column_vindex.vindex.is_unique else 1, opt.column_vindex.vindex.cost)


def with_tables(route: TableRoute, tables: list[TableRef], reason: str | None = None) -> TableRoute:
    return TableRoute(route.opcode, route.keyspace, tables, route.option, route.target,
                      reason or route.reason, route.in_predicate, dict(route.extra))


def _same_value(a: TableRoute, b: TableRoute, ctx: PlanContext | None) -> bool:
    """Both EqualUnique on the same vindex with the same value: the same keyspace id. Two literals of the statement
    that are equal count (with a guard: a cached plan is reused only while they stay equal)."""
    if not (a.opcode is Opcode.EqualUnique and b.opcode is Opcode.EqualUnique and a.option is not None
            and b.option is not None and a.option.vindex_name == b.option.vindex_name):
        return False
    if a.option.values == b.option.values:
        return True
    if ctx is None or len(a.option.values) != len(b.option.values):
        return False
    from router.planner.dml import same_value

    return all(same_value(x, y, ctx) for x, y in zip(a.option.values, b.option.values, strict=True))


def _same_place(a: TableRoute, b: TableRoute, ctx: PlanContext | None = None) -> bool:
    """Both routes reach the same single place for reasons that do not depend on the rows."""
    if a.opcode is Opcode.Unsharded and b.opcode is Opcode.Unsharded:
        return True
    if a.opcode is Opcode.ByDestination and b.opcode is Opcode.ByDestination and a.target == b.target:
        return True
    if a.opcode is Opcode.DBA and b.opcode is Opcode.DBA:
        return True
    return _same_value(a, b, ctx)


def cheaper(a: TableRoute, b: TableRoute) -> TableRoute:
    return a if cost(a) <= cost(b) else b


def merge_inner(a: TableRoute, b: TableRoute, linked: bool,
                ctx: PlanContext | None = None) -> TableRoute | None:
    """An inner join of ``a`` and ``b``; ``linked``: a join predicate pairs columns of the same unique vindex."""
    tables = a.tables + b.tables
    if anywhere(a):
        return with_tables(b, tables)
    if anywhere(b):
        return with_tables(a, tables)
    if a.keyspace.name != b.keyspace.name:
        return None
    if a.opcode is Opcode.None_:
        return with_tables(a, tables)
    if b.opcode is Opcode.None_:
        return with_tables(b, tables)
    if a.opcode is Opcode.Reference:
        return with_tables(b, tables)  # a is complete on each of b's shards
    if b.opcode is Opcode.Reference:
        return with_tables(a, tables)
    if _same_place(a, b, ctx):
        return with_tables(a, tables)
    if not a.keyspace.sharded:
        return None
    if linked:
        # Every joined pair sits on one shard, which both routes reach: either route is enough.
        return with_tables(cheaper(a, b), tables)
    return None


def merge_outer(preserved: TableRoute, nullable: TableRoute, linked: bool,
                ctx: PlanContext | None = None) -> TableRoute | None:
    """``preserved LEFT JOIN nullable``: every preserved row must come out exactly once, so the merged route is
    the preserved side's (the ON clause never narrows it)."""
    tables = preserved.tables + nullable.tables
    if anywhere(nullable):
        return with_tables(preserved, tables)
    if anywhere(preserved):
        # dual's row exists on every shard: only one shard may answer.
        if single_shard(nullable) and nullable.opcode is not Opcode.None_:
            return with_tables(nullable, tables)
        return None
    if preserved.keyspace.name != nullable.keyspace.name:
        return None
    if preserved.opcode is Opcode.None_:
        return with_tables(preserved, tables)
    if nullable.opcode in (Opcode.None_, Opcode.Reference):
        return with_tables(preserved, tables)
    if preserved.opcode is Opcode.Reference:
        if single_shard(nullable):
            return with_tables(nullable, tables)
        return None
    if _same_place(preserved, nullable, ctx):
        return with_tables(preserved, tables)
    if not preserved.keyspace.sharded:
        return None
    if linked:
        return with_tables(preserved, tables)
    return None


def merge_full(a: TableRoute, b: TableRoute, linked: bool,
                ctx: PlanContext | None = None) -> TableRoute | None:
    """``a FULL JOIN b``: both sides are preserved."""
    tables = a.tables + b.tables
    if anywhere(a) or anywhere(b) or a.keyspace.name != b.keyspace.name:
        return None
    if a.opcode is Opcode.Reference and b.opcode is Opcode.Reference:
        return with_tables(a, tables)
    if _same_place(a, b, ctx):
        return with_tables(a, tables)
    if linked and a.keyspace.sharded and Opcode.None_ not in (a.opcode, b.opcode) \
            and Opcode.Reference not in (a.opcode, b.opcode):
        scatter = TableRoute(Opcode.Scatter, a.keyspace, tables, reason="full join on a unique vindex")
        return scatter
    return None


def merge_subquery(outer: TableRoute, sub: TableRoute, colocated: bool,
                ctx: PlanContext | None = None) -> TableRoute | None:
    """A subquery (run once per shard of ``outer`` inside its query) merged into ``outer``.

    The subquery must see, on each shard, every row the outer rows of that shard need: it is complete there (a
    reference table, dual, one shard that is also the outer's only shard), or its rows are co-located with the
    outer rows they relate to (``colocated``: an equality of the same unique vindex ties them). The caller checks
    that the subquery's own query is exact on its shards."""
    if anywhere(sub):
        return outer
    if anywhere(outer):
        if single_shard(sub) and sub.opcode is not Opcode.None_:
            return with_tables(sub, outer.tables + sub.tables)
        return None
    if outer.keyspace.name != sub.keyspace.name:
        return None
    if sub.opcode in (Opcode.Reference, Opcode.None_) or outer.opcode is Opcode.None_:
        return outer
    if _same_place(outer, sub, ctx):
        return outer
    if outer.opcode is Opcode.Reference:
        if single_shard(sub):
            return with_tables(sub, outer.tables + sub.tables)
        return None
    if colocated and outer.keyspace.sharded:
        return outer
    return None


def merge_union(a: TableRoute, b: TableRoute, distinct: bool = False,
                ctx: PlanContext | None = None) -> TableRoute | None:
    """The branches of a UNION sent as one query: each shard returns its part of both branches, and no row may
    come from two shards, unless the union is DISTINCT (a router-side Distinct then removes the copies of a
    reference or ``dual`` branch that every shard returns)."""
    tables = a.tables + b.tables
    if anywhere(a) and anywhere(b):
        return with_tables(a, tables)
    if anywhere(a) or anywhere(b):
        other = b if anywhere(a) else a
        if single_shard(other) and other.opcode is not Opcode.None_:
            return with_tables(other, tables)
        if distinct and other.opcode is not Opcode.None_:
            return with_tables(other, tables)
        return None
    if a.keyspace.name != b.keyspace.name:
        return None
    if a.opcode is Opcode.None_:
        return with_tables(b, tables)
    if b.opcode is Opcode.None_:
        return with_tables(a, tables)
    if a.opcode is Opcode.Reference and b.opcode is Opcode.Reference:
        return with_tables(a, tables)
    if _same_place(a, b, ctx):
        return with_tables(a, tables)
    if a.opcode is Opcode.Reference or b.opcode is Opcode.Reference:
        other = b if a.opcode is Opcode.Reference else a
        if single_shard(other) or distinct:
            return with_tables(other, tables)
        return None
    if a.keyspace.sharded and Opcode.Scatter in (a.opcode, b.opcode) \
            and a.opcode is not Opcode.ByDestination and b.opcode is not Opcode.ByDestination:
        # A narrowed branch's rows live only on its shards; elsewhere its WHERE finds nothing.
        return TableRoute(Opcode.Scatter, a.keyspace, tables, reason="union of sharded queries")
    return None
