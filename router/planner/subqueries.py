"""Expression subqueries (``x IN (SELECT …)``, ``EXISTS (…)``, scalar ``(SELECT …)``): merged, pulled out, or
semi-joined.

For each subquery of a block, in Vitess's order of preference:

1. **Merged**: the subquery stays in the text of the query of the group it belongs to, when it runs on the same
   shards and finds there every row it needs (``merging.merge_subquery``): it reads only reference tables or
   ``dual``, both sides are pinned to the same shard, or its rows are co-located with the outer rows they relate
   to: a correlation ``inner.c = outer.c`` or an ``outer.c IN (SELECT inner.c …)`` where both columns carry the
   same unique vindex. A positive top-level ``IN``/``EXISTS`` may then narrow the outer route to the subquery's
   (a row without a match is not returned, and matches are co-located), and a provably empty one makes it None.
2. **Pulled out** (uncorrelated): run first, once (``UncorrelatedSubquery``); its result is bound into the outer
   query as run-time values: ``x IN (…)`` → ``(:__sq_has_values AND x IN ::__sq1)`` (PulloutIn), ``x NOT IN (…)``
   → ``(NOT :__sq_has_values OR NOT (x IN ::__sq1))`` (PulloutNotIn), ``EXISTS`` → ``:__sq_has_values``
   (PulloutExists), a scalar → ``:__sq1`` (PulloutValue). The outer route may then become an IN route over the
   list, as in Vitess.
3. **Semi-joined** (correlated, a top-level ``[NOT] EXISTS`` / ``[NOT] IN`` of WHERE or of an inner join's ON):
   the block's rows are the left side of a ``SemiJoin`` whose right side is the subquery with the outer columns
   as join variables (and, for ``IN``, the comparison added: ``AND y = :x``; for ``NOT IN``, ``AND (y = :x OR y IS
   NULL OR :x IS NULL)``, which is exactly when NOT IN is not true).

Anything else (a correlated subquery in the select list that cannot be merged, ``ANY``/``ALL``, row subqueries
that cannot be merged) is an ``UnsupportedError`` that names it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp

from router.planner import runvars
from router.planner.context import PlanContext
from router.planner.merging import cheaper, merge_subquery, single_shard
from router.planner.plan import Opcode, Primitive
from router.planner.rewrite import unparen
from router.planner.routing import TableRoute, split_and
from router.planner.scope import Rel, Scope
from router.planner.select import REWRITTEN, Planned, Pullout, has_aggregation
from router.planner.values import JoinVar, ListVar
from sharding.errors import UnsupportedError

if TYPE_CHECKING:
    from router.planner.block import Block, Group


@dataclass(eq=False)
class Use:
    """One expression subquery of a block and the place it is used."""

    query: exp.Expression  # the subquery's query (exp.Select or a set operation)
    node: exp.Expression  # the node its result replaces: In / Exists / Subquery, or the Not around In / Exists
    kind: str  # in | exists | scalar | other
    negated: bool
    lhs: exp.Expression | None  # IN: the left operand
    location: str  # where | on | select | having | order | group | other
    item: exp.Expression  # the top-level item holding it (a conjunct, a select expression, an ORDER BY key…)
    rel: Rel | None = None  # ON: the relation whose join condition holds it
    top: bool = False  # the use is a top-level conjunct of WHERE or of an ON clause

    def describe(self) -> str:
        text = self.node.sql()
        return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class SemiSpec:
    """A correlated subquery planned as the right side of a SemiJoin."""

    anti: bool
    right: Primitive
    vars: list[tuple[str, exp.Column]]  # join var -> the outer column it binds


@dataclass
class MergedUse:
    """A subquery merged into its group's query (re-applied when the group is routed again)."""

    use: Use
    group: int
    planned: Planned
    colocated: bool
    narrow: bool  # a positive top-level IN/EXISTS: may narrow the group's route
    pairing: bool  # merged through an IN pairing of unique vindex columns
    group_obj: Group  # the group whose query holds it (the join planner must place it there)


@dataclass
class Correlation:
    rels: set[Rel] = field(default_factory=set)  # relations of the block the subquery refers to
    beyond: bool = False  # it refers to a block enclosing this one


# --- finding uses -------------------------------------------------------------------------------------------
def find_uses(select: exp.Select, scope: Scope, rel_of_join: dict[int, Rel]) -> list[Use]:
    out = []
    for query in scope.subqueries:
        if _attached(query, select):  # a block planned again: its pulled-out subqueries are gone from the tree
            out.append(_use(select, query, rel_of_join))
    return out


def _attached(node: exp.Expression, root: exp.Expression) -> bool:
    while node is not None and node is not root:
        node = node.parent  # type: ignore[assignment]
    return node is root


def _use(select: exp.Select, query: exp.Expression, rel_of_join: dict[int, Rel]) -> Use:
    parent = query.parent
    kind, negated, lhs = "other", False, None
    node: exp.Expression = query
    if isinstance(parent, exp.Exists):
        kind, node = "exists", parent
    elif isinstance(parent, exp.Subquery):
        node = parent
        grand = parent.parent
        if isinstance(grand, exp.In) and parent.arg_key == "query":
            kind, node, lhs = "in", grand, grand.this
        elif isinstance(grand, exp.Exists):
            kind, node = "exists", grand
        elif isinstance(grand, (exp.Any, exp.All)):
            kind, node = "other", grand
        else:
            kind = "scalar"
    elif isinstance(parent, exp.In) and query.arg_key == "query":
        kind, node, lhs = "in", parent, parent.this
    outer = node.parent
    while isinstance(outer, exp.Paren):
        outer = outer.parent
    if kind in ("in", "exists") and isinstance(outer, exp.Not):
        negated, node = True, outer
    # Where does it sit?
    item = node
    while item.parent is not None and item.parent is not select and not isinstance(item.parent, exp.Join):
        item = item.parent  # type: ignore[assignment]
    location, rel = "other", None
    if isinstance(item.parent, exp.Join):
        location, rel = "on", rel_of_join.get(id(item.parent))
    elif item.parent is select:
        key = item.arg_key
        location = {"where": "where", "expressions": "select", "having": "having", "order": "order",
                    "group": "group"}.get(key or "", "other")
    clause = item
    top = False
    if location in ("where", "on", "having"):
        body = clause.this if isinstance(clause, (exp.Where, exp.Having)) else clause
        conjuncts = split_and(body)
        top = any(c is node for c in conjuncts)
        if top:
            item = node
        else:
            item = next((c for c in conjuncts if any(n is node for n in c.walk())), body)
    elif location in ("order", "group"):
        exprs = item.expressions if hasattr(item, "expressions") else [item]
        item = next((e for e in exprs if any(n is node for n in e.walk())), item)
    return Use(query, node, kind, negated, lhs, location, item, rel, top)


# --- deciding -----------------------------------------------------------------------------------------------
def correlation(block: Block, query: exp.Expression) -> Correlation:
    out = Correlation()
    for col in query.find_all(exp.Column):
        owner = block.binder.owner(col)
        if not isinstance(owner, Rel):
            continue
        if owner.scope is block.scope:
            out.rels.add(owner)
        elif owner.scope is not block.scope and owner.scope.encloses(block.scope):
            out.beyond = True
    return out


def decide(block: Block, use: Use) -> None:
    """Merge, pull out, or semi-join one subquery (see the module docstring)."""
    corr = correlation(block, use.query)
    qp = block.qp
    try:
        planned: Planned | None = qp.plan_query(use.query)
        error: UnsupportedError | None = None
    except UnsupportedError as exc:
        if not corr.rels and not corr.beyond:
            raise
        planned, error = None, exc
    if planned is not None and _try_merge(block, use, planned, corr):
        return
    what = f"subquery {use.describe()}"
    if corr.beyond:
        raise UnsupportedError(f"{what} refers to an enclosing query and cannot run on the same shards as it")
    if not corr.rels:
        assert planned is not None
        _pull_out(block, use, planned)
        return
    if use.top and use.kind in ("in", "exists") and (use.location == "where" or (
            use.location == "on" and use.rel is not None and use.rel.join == "inner")):
        _semi_join(block, use, corr)
        return
    if error is not None:
        raise error
    raise UnsupportedError(f"correlated {what} cannot run on the same shards as its outer query; only "
                           "top-level [NOT] EXISTS / [NOT] IN subqueries of WHERE are joined across shards")


def _try_merge(block: Block, use: Use, planned: Planned, corr: Correlation) -> bool:
    if planned.route is None or planned.prim is not None:
        return False
    target = block.rels_of(use.item)
    if target.unknown or target.outer:
        return False
    g = block.group_index(target.rels)
    group = block.groups[g]
    if group.route is None:
        return False
    if group.kind == "left":
        if not (use.location == "on" and use.rel is not None and use.rel in group.rels):
            return False
    elif group.kind != "inner":
        return False
    # Co-location must be with the relations of the group whose query the subquery joins (columns of other groups
    # are join variables there, values of one row).
    members = set(group.rels)
    colocated, pairing = False, False
    if corr.rels:
        colocated = block.correlated_on_vindex(use.query, corr.rels & members)
    elif use.kind == "in" and not use.negated:
        pairing = colocated = block.in_pairing(use.lhs, planned, members)
    exact = planned.complete or single_shard(planned.route) or (planned.distinct and use.kind in ("in", "exists"))
    if not exact and not (corr.rels and colocated):
        return False
    merged = merge_subquery(group.route, planned.route, colocated, ctx=block.ctx)
    if merged is None:
        return False
    narrow = use.top and not use.negated and use.kind in ("in", "exists") and (
        use.location == "where" or (use.location == "on" and group.kind == "inner"))
    block.merged.append(MergedUse(use, g, planned, colocated, narrow, pairing, group))
    group.route = apply_merge(group.route, block.merged[-1], block.ctx) or group.route
    return True


def apply_merge(route: TableRoute, m: MergedUse, ctx: PlanContext) -> TableRoute | None:
    """The group's route once the subquery ``m`` is merged into it (None: it no longer merges)."""
    sub = m.planned.route
    assert sub is not None
    merged = merge_subquery(route, sub, m.colocated, ctx=ctx)
    if merged is None:
        return None
    if m.narrow:
        if sub.opcode is Opcode.None_:
            from router.planner.merging import with_tables

            return with_tables(sub, merged.tables, reason="subquery matches no row")
        if m.pairing and sub.keyspace.name == merged.keyspace.name:
            return cheaper(merged, sub) if cheaper(merged, sub) is merged else _narrowed(merged, sub)
    return merged


def _narrowed(route: TableRoute, sub: TableRoute) -> TableRoute:
    from router.planner.merging import with_tables

    return with_tables(sub, route.tables, reason=f"{sub.reason} (through an IN subquery)")


def _pull_out(block: Block, use: Use, planned: Planned) -> None:
    qp, ctx = block.qp, block.qp.ctx
    if use.kind == "other":
        raise UnsupportedError(f"subquery {use.describe()} cannot run on the same shards as its outer query "
                               "(ANY / ALL and row subqueries are not supported across shards)")
    if use.kind in ("in", "scalar"):
        ncols = len(planned.columns)
        if ncols != 1 or (planned.columns[0] is None and _select_star(planned.tree)):
            raise UnsupportedError(f"subquery {use.describe()} must return exactly one column to run apart "
                                   "from its outer query")
    if use.kind == "in" and isinstance(unparen(use.lhs), exp.Tuple):  # type: ignore[arg-type]
        raise UnsupportedError(f"row subquery {use.describe()} is not supported across shards")
    prim = qp.primitive(planned)
    values_var, has_var = qp.names.pullout()
    if use.kind == "in":
        assert use.lhs is not None
        has = runvars.placeholder(ctx, JoinVar(has_var))
        values = runvars.placeholder(ctx, ListVar(values_var), is_list=True)
        test = exp.In(this=use.lhs.copy(), expressions=[values])
        if use.negated:
            new: exp.Expression = exp.Paren(this=exp.or_(exp.Not(this=has), exp.Not(this=exp.Paren(this=test))))
            variant = "PulloutNotIn"
        else:
            new = exp.Paren(this=exp.and_(has, test))
            variant = "PulloutIn"
    elif use.kind == "exists":
        has = runvars.placeholder(ctx, JoinVar(has_var))
        new = exp.Not(this=has) if use.negated else has
        variant, values_var = "PulloutExists", ""
    else:
        new = runvars.placeholder(ctx, JoinVar(values_var))
        variant, has_var = "PulloutValue", ""
    # A select expression keeps the name the client would see: its own text (Vitess does the same).
    item = use.item if use.location == "select" and use.item.parent is block.select else None
    name = runvars.display_name(item, block.ctx.session.dialect) if item is not None and not isinstance(
        item, exp.Alias) else None
    use.node.replace(new)
    if name is not None:
        current = new if use.node is item else item
        assert current is not None
        # Wrapped in place, never copied: the item may hold other subqueries of this block still to be decided,
        # whose ``Use.node`` must stay in the tree (a copy left the second scalar of ``(SELECT …) - (SELECT …)`` in
        # the outer query's text, sent to one shard).
        alias = exp.Alias(alias=exp.to_identifier(name, quoted=True))
        current.replace(alias)
        alias.set("this", current)
    block.select.root().meta[REWRITTEN] = True
    qp.pullouts.append(Pullout(variant, values_var, has_var, prim))


def _select_star(tree: exp.Expression) -> bool:
    return isinstance(tree, exp.Select) and any(isinstance(e, exp.Star) for e in tree.expressions)


def _semi_join(block: Block, use: Use, corr: Correlation) -> None:
    qp, ctx = block.qp, block.qp.ctx
    query = use.query
    if not isinstance(query, exp.Select):
        raise UnsupportedError(f"correlated subquery {use.describe()} must be a simple SELECT to be joined "
                               "across shards")
    copy = query.copy()
    vars_: dict[str, exp.Column] = {}

    def bind(col: exp.Column) -> exp.Expression:
        owner = block.binder.owner(col)
        assert isinstance(owner, Rel)
        name = qp.names.join_var((id(owner), block.colname(col)), f"{owner.alias}_{block.colname(col)}")
        vars_.setdefault(name, col)
        return runvars.placeholder(ctx, JoinVar(name))

    for col in list(copy.find_all(exp.Column)):
        owner = block.binder.owner(col)
        if isinstance(owner, Rel) and owner in corr.rels:
            orig = col.copy()
            col.replace(bind(orig))
    simple = not any(copy.args.get(k) is not None for k in ("group", "having", "limit", "offset")) \
        and not has_aggregation(copy)
    if use.kind == "in":
        lhs = unparen(use.lhs) if use.lhs is not None else None
        owner = block.binder.owner(lhs) if isinstance(lhs, exp.Column) else None
        if not isinstance(owner, Rel) or owner.scope is not block.scope:
            raise UnsupportedError(f"correlated subquery {use.describe()}: the left side of IN must be a column "
                                   "to be joined across shards")
        if not simple or len(copy.expressions) != 1 or isinstance(copy.expressions[0], exp.Star):
            raise UnsupportedError(f"correlated subquery {use.describe()} must select one plain expression to "
                                   "be joined across shards")
        out = copy.expressions[0].unalias().copy()
        x = bind(lhs.copy())  # type: ignore[union-attr,arg-type]
        if use.negated:
            cond: exp.Expression = exp.Paren(this=exp.or_(
                exp.EQ(this=out, expression=x),
                exp.Is(this=out.copy(), expression=exp.Null()),
                exp.Is(this=x.copy(), expression=exp.Null())))
        else:
            cond = exp.EQ(this=out, expression=x)
        copy.where(cond, copy=False)
    if simple:
        copy.set("expressions", [exp.Literal.number(1)])
    copy.set("order", None)
    copy.meta[REWRITTEN] = True
    planned = qp.plan_query(copy)
    if planned.route is not None and planned.prim is None and simple and not planned.distinct:
        from router.planner.select import _route_primitive

        copy.set("limit", exp.Limit(expression=exp.Literal.number(1)))
        right: Primitive = _route_primitive(copy, planned.route, planned.refs, ctx)
    else:
        right = qp.primitive(planned)
    block.semis.append(SemiSpec(use.negated, right, list(vars_.items())))
    use.node.replace(exp.true())
    block.select.root().meta[REWRITTEN] = True
