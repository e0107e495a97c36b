"""SELECT planning: resolve the tables, route each, merge what can run as one query, and plan the rest.

A SELECT whose tables all land on the same shards runs as one Route (Vitess "merging"); the router then only
adds what a multi-shard route needs on top (merge sort, limit, aggregation: ``router.planner.horizon``).
Otherwise the statement is planned block by block (``router.planner.scope`` binds every column first):

- a block's FROM relations (tables and derived tables) are routed with their own predicates and merged into
  groups that can each run as one query (``router.planner.block``, rules in ``router.planner.merging``); several
  groups are joined by the router (``router.planner.joins``: nested-loop ``Join``, ``HashJoin``, ``SemiJoin``);
- expression subqueries are merged into the query of the group they belong to when they run on the same shards,
  else evaluated first (``UncorrelatedSubquery``) or joined (``SemiJoin``) (``router.planner.subqueries``);
- UNIONs merge into one route or become ``Concatenate`` (+ ``Distinct``) (``router.planner.union``);
- non-recursive CTEs are inlined as derived tables first.

Run-time values (join variables, pulled-out results) are written into the trees as placeholders
(``router.planner.runvars``) and become ``JoinVar``/``ListVar`` in the finished plan. Planning one statement is
pure: everything it learns lives in a ``QueryPlanner`` made for that statement.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from router.planner import runvars
from router.planner.context import PlanContext
from router.planner.lookup import wrap_lookup
from router.planner.merging import SINGLE_SHARD, single_shard
from router.planner.plan import Opcode, Primitive, Route, UncorrelatedSubquery
from router.planner.querytext import strip_keyspaces
from router.planner.routing import TableRoute, route_table, split_and, to_value
from router.planner.scope import QUERY_NODES, REF_KEY, Binder, own_nodes
from router.planner.semantics import TableRef, resolve_table
from router.planner.values import Arg, ListVar
from sharding.errors import UnsupportedError
from sharding.vindexes.base import Lookup

__all__ = ["Planned", "Pullout", "QueryPlanner", "SINGLE_SHARD", "all_tables", "plan_select"]

REWRITTEN = "sg_rewritten"  # meta flag on a statement root: its text differs from the client's


def all_tables(tree: exp.Expression) -> list[exp.Table]:
    """Every table the statement reads, subqueries and CTE bodies included. A name refers to a CTE only inside
    the query whose WITH defines it (and, for a CTE body, after it); elsewhere it is the real table."""
    for cte in tree.find_all(exp.CTE):
        if isinstance(cte.this, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
            raise UnsupportedError("a WITH query that writes (data-modifying CTE) is not supported")
    return [t for t in tree.find_all(exp.Table) if not _names_a_cte(t)]


def _names_a_cte(table: exp.Table) -> bool:
    if table.args.get("db") is not None:
        return False
    name = table.name
    node: exp.Expression | None = table
    while node is not None:
        parent = node.parent
        if parent is None:
            return False
        with_ = parent.args.get("with_") or parent.args.get("with")
        if isinstance(with_, exp.With):
            ctes = list(with_.expressions)
            for i, cte in enumerate(ctes):
                if cte.alias_or_name != name:
                    continue
                if node is with_:
                    # Inside a CTE body: earlier CTEs are visible (all of them WITH RECURSIVE).
                    body = next((j for j, c in enumerate(ctes) if c is _ancestor_in(table, ctes)), len(ctes))
                    if i < body or with_.args.get("recursive"):
                        return True
                else:
                    return True
        node = parent
    return False


def _ancestor_in(node: exp.Expression, candidates: list[exp.Expression]) -> exp.Expression | None:
    while node is not None:
        if any(node is c for c in candidates):
            return node
        node = node.parent  # type: ignore[assignment]
    return None


# --- entry point --------------------------------------------------------------------------------------------
def plan_select(tree: exp.Expression, ctx: PlanContext) -> tuple[Primitive, list[TableRef]]:
    """The plan of a SELECT (or UNION) and every table it touches."""
    refs = [resolve_table(t, ctx) for t in all_tables(tree)]
    whole = _whole_statement_route(tree, refs, ctx)
    if whole is not None:
        return _route_primitive(tree, whole, refs, ctx), refs
    if tree.find(exp.CTE) is not None:
        _inline_ctes(tree)
        refs = [resolve_table(t, ctx) for t in all_tables(tree)]
        tree.meta[REWRITTEN] = True
    for i, t in enumerate(all_tables(tree)):
        t.meta[REF_KEY] = i
    if strip_keyspaces(refs):
        tree.meta[REWRITTEN] = True
    planner = QueryPlanner(runvars.extend(ctx), refs)
    root = planner.plan_statement(tree)
    return root, refs


def _whole_statement_route(tree: exp.Expression, refs: list[TableRef], ctx: PlanContext) -> TableRoute | None:
    """When every table of the statement (subqueries included) lives in one unsharded keyspace, or is a system
    table, or the statement has no table, the whole statement is one route."""
    if not refs:
        from router.planner.routing import route_tableless

        return route_tableless(ctx, split_and(tree.args.get("where")) if isinstance(tree, exp.Select) else [])
    kinds = {r.kind for r in refs}
    if "system" in kinds and kinds <= {"system", "dual"}:
        system = next(r for r in refs if r.kind == "system")
        return TableRoute(Opcode.DBA, system.keyspace, refs, reason="system schema")  # type: ignore[arg-type]
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


def _inline_ctes(tree: exp.Expression) -> None:
    """Replace every reference to a (non-recursive) CTE by its body as a derived table, and drop the WITH."""
    for with_ in list(tree.find_all(exp.With)):
        if with_.args.get("recursive"):
            raise UnsupportedError("WITH RECURSIVE is not supported across shards")
        owner = with_.parent
        ctes = list(with_.expressions)
        assert owner is not None
        owner.set("with_", None)
        for i, cte in enumerate(ctes):
            name = cte.alias_or_name
            scopes: list[exp.Expression] = [owner, *(c.this for c in ctes[i + 1:])]  # type: ignore[list-item]
            for scope in scopes:
                for table in list(scope.find_all(exp.Table)):
                    if table.args.get("db") is not None or table.name != name:
                        continue
                    alias = cte.args["alias"].copy()
                    if table.alias:
                        alias.set("this", exp.to_identifier(table.alias))
                    table.replace(exp.Subquery(this=cte.this.copy(), alias=alias))


# --- plan pieces --------------------------------------------------------------------------------------------
@dataclass
class Pullout:
    """A subquery evaluated before everything else; its result binds run-time variables (Vitess pull-out)."""

    variant: str  # PulloutValue | PulloutIn | PulloutNotIn | PulloutExists
    values_var: str
    has_var: str
    primitive: Primitive


@dataclass
class Planned:
    """A planned query (a SELECT block, a UNION, a derived table's or subquery's body).

    ``route`` is set when the whole query runs as one route; ``complete`` says that the rows the route's shards
    return, put together, are the query's rows (no merge, aggregation, limit or de-duplication needed: order
    aside). ``prim`` is set when more is needed. ``distinct``: a UNION merged into one multi-shard route still
    needs a router-side Distinct."""

    tree: exp.Expression
    refs: list[TableRef]
    columns: list[str | None]
    col_sources: list[tuple[TableRef, str] | None] = field(default_factory=list)
    route: TableRoute | None = None
    complete: bool = False
    prim: Primitive | None = None
    distinct: bool = False

    @property
    def mergeable(self) -> bool:
        """Whether the query can be embedded in another query sent to the same shards."""
        return (self.route is not None and self.prim is None and not self.distinct
                and (self.complete or single_shard(self.route)))


class QueryPlanner:
    """Plans one statement (its blocks, unions, subqueries). Holds the statement's run-time variable names and
    the pulled-out subqueries, which wrap the finished plan."""

    def __init__(self, ctx: PlanContext, refs: list[TableRef]) -> None:
        self.ctx = ctx
        self.refs = refs
        self.binder = Binder(refs, ctx.session.dialect)
        self.names = runvars.Names()
        self.pullouts: list[Pullout] = []

    @property
    def dialect(self) -> str:
        return self.ctx.session.dialect

    def plan_statement(self, tree: exp.Expression) -> Primitive:
        if not isinstance(tree, QUERY_NODES):
            raise UnsupportedError(f"unsupported statement: {tree.key.upper()}")
        self.binder.bind(tree)
        planned = self.plan_query(tree)
        root = self.primitive(planned, top=True)
        for p in reversed(self.pullouts):
            root = UncorrelatedSubquery(p.variant, p.values_var, p.has_var, p.primitive, root)
        return root

    def plan_query(self, node: exp.Expression) -> Planned:
        if isinstance(node, exp.Subquery):
            return self.plan_query(node.this)
        if isinstance(node, exp.SetOperation):
            from router.planner.union import plan_union

            return plan_union(self, node)
        if isinstance(node, exp.Select):
            from router.planner.block import plan_block

            return plan_block(self, node)
        raise UnsupportedError(f"unsupported query: {node.key.upper()}")

    def primitive(self, planned: Planned, top: bool = False) -> Primitive:
        """The primitive that produces a planned query's rows (at the top: in order, with its LIMIT)."""
        if planned.prim is not None:
            return planned.prim
        route = planned.route
        assert route is not None
        if isinstance(planned.tree, exp.SetOperation):
            from router.planner.union import union_primitive

            return union_primitive(self, planned, top)
        if single_shard(route) or (planned.complete and not top) or (
                top and isinstance(planned.tree, exp.Select) and is_complete(planned.tree)
                and not _needs_order(planned.tree)):
            # A route by a lookup vindex reads the lookup table first (Vitess VindexLookup).
            return wrap_lookup(_route_primitive(planned.tree, route, planned.refs, self.ctx), route, self.ctx)
        assert isinstance(planned.tree, exp.Select)
        from router.planner.derived import derived_refs
        from router.planner.horizon import plan_horizon

        return plan_horizon(planned.tree, route, planned.refs, self.ctx, derived_refs(self.binder, planned.tree))


def _needs_order(select: exp.Expression) -> bool:
    return select.args.get("order") is not None


# --- query shape --------------------------------------------------------------------------------------------
def has_aggregation(select: exp.Select) -> bool:
    """Aggregate functions or window functions in the block's own expressions."""
    return any(isinstance(n, (exp.AggFunc, exp.Window)) for n in own_nodes(select))


def is_complete(select: exp.Select) -> bool:
    """Whether the block's rows, computed shard by shard and put together, are its rows (order aside)."""
    for key in ("group", "having", "limit", "offset", "distinct"):
        if select.args.get(key) is not None:
            return False
    return not has_aggregation(select)


# --- one route ----------------------------------------------------------------------------------------------
def _route_primitive(tree: exp.Expression, route: TableRoute, refs: list[TableRef], ctx: PlanContext) -> Route:
    """One Route that sends the whole (sub)statement. Run-time values (join variables, pulled-out subquery
    results) become ``JoinVar``/``ListVar`` slots and routing values."""
    rewritten = strip_keyspaces(refs) or bool(tree.root().meta.get(REWRITTEN))
    backend = ctx.backend_dialect(route.keyspace.name)
    template = runvars.template(tree, backend, ctx)
    params = runvars.resolve_params(route.params(), ctx)
    in_slot = _in_slot(template, route, ctx)
    passthrough = (not rewritten and backend == ctx.session.dialect and in_slot < 0
                   and runvars.only_args(template) and tree.parent is None)
    table = ", ".join(sorted({r.table.name for r in refs if r.table is not None}))
    # A scalar aggregate answers one row even where no shard is selected (Vitess NoRoutesSpecialHandling): a
    # provably empty WHERE, or a lookup vindex that finds no keyspace id.
    special = isinstance(tree, exp.Select) and not tree.args.get("group") and has_aggregation(tree) and (
        route.opcode is Opcode.None_ or (route.option is not None
                                         and isinstance(route.option.column_vindex.vindex, Lookup)))
    return Route(params, template, table=table, in_slot=in_slot, passthrough=passthrough,
                 no_routes_special_handling=special)


def _in_slot(template: object, route: TableRoute, ctx: PlanContext) -> int:
    """The template slot of the IN route's folded list, so each shard can get only its own values."""
    pred = route.in_predicate
    if pred is None or route.opcode is not Opcode.IN:
        return -1
    items = pred.expressions
    value = to_value(items[0]) if len(items) == 1 else None
    if not isinstance(value, Arg):
        return -1
    value = runvars.resolve(value, ctx)  # type: ignore[assignment]
    if route.option is not None and route.option.values and runvars.resolve(route.option.values[0], ctx) != value:
        return -1
    if not isinstance(value, (Arg, ListVar)):
        return -1
    slots = getattr(template, "slots", ())
    matches = [i for i, s in enumerate(slots) if s == value]
    return matches[0] if len(matches) == 1 else -1
