"""SELECT planning: resolve the tables, route each, merge routes that can run as one query, build the plan.

A SELECT whose tables all land on the same shards runs as one Route (Vitess "merging"); the router then only
adds what a multi-shard route needs on top (merge sort, limit, aggregation: ``router.planner.horizon``).
Tables that cannot merge become a nested-loop join (``router.planner.joins``).
"""
from __future__ import annotations

from sqlglot import exp

from router.planner.context import PlanContext
from router.planner.plan import Opcode, Primitive, Route
from router.planner.querytext import build_template, strip_keyspaces
from router.planner.routing import TableRoute, route_table, split_and, to_value
from router.planner.semantics import TableRef, column_name, column_owner, resolve_table, scope_tables
from router.planner.values import Arg
from sharding.errors import UnsupportedError

SINGLE_SHARD = frozenset({Opcode.Unsharded, Opcode.EqualUnique, Opcode.Reference, Opcode.DBA, Opcode.None_,
                          Opcode.Next})


def all_tables(tree: exp.Expression) -> list[exp.Table]:
    """Every table the statement reads, subqueries and CTE bodies included (not CTE names themselves)."""
    cte_names = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return [t for t in tree.find_all(exp.Table) if not (not t.args.get("db") and t.name in cte_names)]


def plan_select(tree: exp.Expression, ctx: PlanContext) -> tuple[Primitive, list[TableRef]]:
    """The plan of a SELECT (or UNION) and every table it touches."""
    refs = [resolve_table(t, ctx) for t in all_tables(tree)]
    whole = _whole_statement_route(tree, refs, ctx)
    if whole is not None:
        return _route_primitive(tree, whole, refs, ctx), refs
    if not isinstance(tree, exp.Select):
        raise UnsupportedError(f"cross-shard {tree.key.upper()} is not supported yet")
    if _has_subquery(tree):
        raise UnsupportedError("cross-shard subqueries are not supported yet")
    scope = [r for r in refs if r.node in set(scope_tables(tree))]
    route = _merge_scope(tree, scope, ctx)
    if route is None:
        raise UnsupportedError("a join across shards is not supported yet")
    if route.opcode in SINGLE_SHARD or (route.opcode is Opcode.ByDestination and "-" not in (route.target or "-")):
        return _route_primitive(tree, route, refs, ctx), refs
    from router.planner.horizon import plan_horizon

    return plan_horizon(tree, route, refs, ctx), refs


def _has_subquery(tree: exp.Expression) -> bool:
    return any(isinstance(n, (exp.Subquery, exp.CTE)) or (isinstance(n, exp.Select) and n is not tree)
               for n in tree.find_all(exp.Subquery, exp.CTE, exp.Select))


def _whole_statement_route(tree: exp.Expression, refs: list[TableRef], ctx: PlanContext) -> TableRoute | None:
    """When every table of the statement (subqueries included) lives in one unsharded keyspace, or is a system
    table, or the statement has no table, the whole statement is one route."""
    if not refs:
        from router.planner.semantics import _default_keyspace

        ks = _default_keyspace(ctx)
        opcode = Opcode.Unsharded if not ks.sharded else Opcode.Reference
        return TableRoute(opcode, ks, [], reason="no table")
    kinds = {r.kind for r in refs}
    if kinds == {"system"}:
        return TableRoute(Opcode.DBA, refs[0].keyspace, refs, reason="system schema")  # type: ignore[arg-type]
    if "system" in kinds:
        raise UnsupportedError("mixing system schema tables with keyspace tables is not supported")
    keyspaces = {r.keyspace_name for r in refs if r.kind == "vschema"}
    if len(keyspaces) == 1:
        ks = next(r.keyspace for r in refs if r.kind == "vschema")
        assert ks is not None
        targets = {r.target for r in refs if r.kind == "vschema"}
        if len(targets) == 1 and None not in targets:
            target = next(iter(targets))
            return TableRoute(Opcode.ByDestination, ks, refs, target=target, reason=f"target {target}")
        if not ks.sharded and targets == {None}:
            route = route_table(refs[0], split_and(tree.args.get("where")) if isinstance(tree, exp.Select)
                                else [], [refs[0]] if len(refs) == 1 else refs, ctx)
            route.tables = refs
            return route
    return None


def _predicates(select: exp.Select) -> list[exp.Expression]:
    preds = split_and(select.args.get("where"))
    for join in select.args.get("joins") or ():
        if (join.args.get("side") or "").upper() in ("", "INNER") and not join.args.get("kind", "").upper() == "CROSS":
            preds.extend(split_and(join.args.get("on")))
    return preds


def _merge_scope(select: exp.Select, scope: list[TableRef], ctx: PlanContext) -> TableRoute | None:
    preds = _predicates(select)
    routes = []
    for ref in scope:
        own = [p for p in preds if _only_refers_to(p, ref, scope, ctx)]
        routes.append(route_table(ref, own, scope, ctx))
    outer_right = _outer_joined(select, scope)
    merged = routes[0]
    for route in routes[1:]:
        joined = _merge(merged, route, preds, scope, ctx, outer=route.tables[0] in outer_right)
        if joined is None:
            return None
        merged = joined
    return merged


def _outer_joined(select: exp.Select, scope: list[TableRef]) -> set[TableRef]:
    out = set()
    for join in select.args.get("joins") or ():
        if (join.args.get("side") or "").upper() in ("LEFT", "RIGHT", "FULL"):
            out.update(r for r in scope if r.node is join.this)
    return out


def _only_refers_to(pred: exp.Expression, ref: TableRef, scope: list[TableRef], ctx: PlanContext) -> bool:
    """Whether every column of ``pred`` belongs to ``ref`` (unknown owners count as not)."""
    dialect = ctx.session.dialect
    cols = list(pred.find_all(exp.Column))
    if any(isinstance(n, (exp.Subquery, exp.Select)) for n in pred.find_all(exp.Subquery, exp.Select)):
        return False
    return all(column_owner(c, scope, dialect) is ref for c in cols)


def _merge(a: TableRoute, b: TableRoute, preds: list[exp.Expression], scope: list[TableRef], ctx: PlanContext,
           outer: bool) -> TableRoute | None:
    """One route for both, when the rows they join are always on the same shard (Vitess ``tryMerge``)."""
    tables = a.tables + b.tables

    def merged(route: TableRoute) -> TableRoute:
        out = TableRoute(route.opcode, route.keyspace, tables, route.option, route.target, route.reason,
                         route.in_predicate)
        return out

    if a.opcode is Opcode.None_ and not outer:
        return merged(a)
    if b.opcode is Opcode.None_ and not outer:
        return merged(b)
    if a.keyspace.name != b.keyspace.name:
        return None
    if a.opcode is Opcode.Reference:
        return merged(b)
    if b.opcode is Opcode.Reference:
        return merged(a)
    if a.opcode is Opcode.Unsharded and b.opcode is Opcode.Unsharded:
        return merged(a)
    if a.opcode is Opcode.ByDestination and b.opcode is Opcode.ByDestination and a.target == b.target:
        return merged(a)
    if a.opcode is Opcode.DBA and b.opcode is Opcode.DBA:
        return merged(a)
    if not a.keyspace.sharded:
        return None
    if (a.opcode is Opcode.EqualUnique and b.opcode is Opcode.EqualUnique and a.option and b.option
            and a.option.vindex_name == b.option.vindex_name and a.option.values == b.option.values):
        return merged(a)
    if _joined_on_same_vindex(a, b, preds, scope, ctx):
        best = a if _cost(a) <= _cost(b) else b
        return merged(best)
    return None


def _cost(r: TableRoute) -> tuple[int, ...]:
    return r.option.cost() if r.option is not None else (99, 0, 0)


def _joined_on_same_vindex(a: TableRoute, b: TableRoute, preds: list[exp.Expression], scope: list[TableRef],
                           ctx: PlanContext) -> bool:
    """A predicate ``x.c1 = y.c2`` where c1 and c2 carry the same unique single-column vindex pins both sides
    to the same shard for every joined row."""
    dialect = ctx.session.dialect
    for pred in preds:
        if not isinstance(pred, exp.EQ):
            continue
        left, right = pred.this, pred.expression
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            continue
        lo, ro = column_owner(left, scope, dialect), column_owner(right, scope, dialect)
        if lo is None or ro is None:
            continue
        if lo in a.tables and ro in b.tables:
            pass
        elif ro in a.tables and lo in b.tables:
            left, right, lo, ro = right, left, ro, lo
        else:
            continue
        lv = _unique_vindex_of(lo, column_name(left, dialect))
        rv = _unique_vindex_of(ro, column_name(right, dialect))
        if lv is not None and lv == rv:
            return True
    return False


def _unique_vindex_of(ref: TableRef, col: str) -> str | None:
    if ref.table is None:
        return None
    for cv in ref.table.column_vindexes:
        if len(cv.columns) == 1 and cv.columns[0].lower() == col.lower() and cv.vindex.is_unique:
            return cv.name
    return None


def _route_primitive(tree: exp.Expression, route: TableRoute, refs: list[TableRef], ctx: PlanContext) -> Route:
    """One Route that sends the whole statement."""
    rewritten = strip_keyspaces(refs)
    backend = ctx.backend_dialect(route.keyspace.name)
    template = build_template(tree, backend)
    in_slot = _in_slot(template, route)
    passthrough = not rewritten and backend == ctx.session.dialect and in_slot < 0
    table = ", ".join(sorted({r.table.name for r in refs if r.table is not None}))
    return Route(route.params(), template, table=table, in_slot=in_slot, passthrough=passthrough)


def _in_slot(template: object, route: TableRoute) -> int:
    """The template slot of the IN route's folded list, so each shard can get only its own values."""
    pred = route.in_predicate
    if pred is None or route.opcode is not Opcode.IN:
        return -1
    items = pred.expressions
    value = to_value(items[0]) if len(items) == 1 else None
    if not isinstance(value, Arg):
        return -1
    slots = getattr(template, "slots", ())
    matches = [i for i, s in enumerate(slots) if s == value]
    return matches[0] if len(matches) == 1 else -1
