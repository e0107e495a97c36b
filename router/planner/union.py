"""UNION [ALL | DISTINCT]: one route when the branches can be sent together, else ``Concatenate`` (+
``Distinct``).

Branches merge (``merging.merge_union``) when each shard can return its part of both: same unsharded keyspace,
reference tables, the same pinned shard, or sharded queries of one keyspace of which one scatters (a narrowed
branch finds nothing on the other shards); for UNION DISTINCT also a reference or ``dual`` branch with a sharded
one (every shard returns the same copy; the router's Distinct keeps one). A merged UNION ALL is complete; a
merged multi-shard UNION DISTINCT still needs a router-side Distinct (each shard only de-duplicates its own rows).
Branches that do not merge run apart: their streams are concatenated, and for UNION DISTINCT de-duplicated by the
router. MySQL text is compared by its weight strings, which every branch then returns as extra columns
(``weight_string(col)``, Vitess does the same); PostgreSQL values compare as they are (deterministic collations
compare bytes). ORDER BY / LIMIT of the whole union run on the shards when everything runs on one shard, else the
router computes them (``joins.horizon_over``) over the union's rows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from router.planner.merging import merge_union, single_shard
from router.planner.plan import Concatenate, Distinct, Primitive, Projection
from router.planner.select import REWRITTEN, Planned, _route_primitive
from sharding.errors import UnsupportedError

if TYPE_CHECKING:
    from router.planner.select import QueryPlanner

_TAIL = ("order", "limit", "offset")


def plan_union(qp: QueryPlanner, node: exp.SetOperation) -> Planned:
    if not isinstance(node, exp.Union):
        raise UnsupportedError(f"{node.key.upper()} is not supported across shards")
    distinct = bool(node.args.get("distinct"))
    left = qp.plan_query(node.this)
    right = qp.plan_query(node.expression)
    columns = left.columns
    refs = left.refs + right.refs
    if _can_merge(left, distinct) and _can_merge(right, distinct):
        assert left.route is not None and right.route is not None
        route = merge_union(left.route, right.route, distinct, ctx=qp.ctx)
        if route is not None:
            if single_shard(route):
                return Planned(node, refs, columns, route=route, complete=True)
            complete = not distinct and not any(node.args.get(k) is not None for k in _TAIL)
            return Planned(node, refs, columns, route=route, complete=complete, distinct=distinct)
    return Planned(node, refs, columns, prim=_apart(qp, node, left, right, distinct))


def _can_merge(part: Planned, distinct: bool) -> bool:
    if part.route is None or part.prim is not None:
        return False
    if part.distinct:
        return distinct  # a DISTINCT on top absorbs the branch's own
    return part.complete or single_shard(part.route)


def _width(node: exp.Expression, columns: list[str | None]) -> int:
    if None in columns:
        raise UnsupportedError("a UNION across shards needs the column lists of its SELECTs (no SELECT *)")
    return len(columns)


def _weights_needed(qp: QueryPlanner, node: exp.Union, parts: list[Planned], distinct: bool) -> bool:
    """MySQL-backed branches compared at the router (DISTINCT, ORDER BY) must return weight strings."""
    if not (distinct or node.args.get("order") is not None):
        return False
    return any(_backend(qp, p) == "mysql" for p in parts)


def _apart(qp: QueryPlanner, node: exp.Union, left: Planned, right: Planned, distinct: bool) -> Primitive:
    """Concatenate the branches' results (and de-duplicate them for UNION DISTINCT)."""
    parts = [left, right]
    width = _width(node, left.columns)
    if len(right.columns) != width:
        raise UnsupportedError("the SELECTs of a UNION have different numbers of columns")
    weights = _weights_needed(qp, node, parts, distinct)
    if weights and distinct and any(not _weighable(p) for p in parts):
        # DISTINCT over everything below: each SELECT of the union becomes a branch of its own.
        parts = [qp.plan_query(select) for select in _selects(node)]
        if any(len(p.columns) != width for p in parts):
            raise UnsupportedError("the SELECTs of a UNION have different numbers of columns")
    sources: list[Primitive] = []
    for p in parts:
        sources.append(_with_weights(qp, p, width) if weights else qp.primitive(p))
    flat: list[Primitive] = []
    for s in sources:
        flat.extend(s.sources if isinstance(s, Concatenate) else (s,))
    prim: Primitive = Concatenate(tuple(flat))
    return _finish(qp, node, prim, left.columns, width, weights, distinct)


def _finish(qp: QueryPlanner, node: exp.Union, prim: Primitive, columns: list[str | None], width: int,
            weights: bool, distinct: bool) -> Primitive:
    """Distinct and the ORDER BY / LIMIT of the union over rows of ``width`` columns (followed by as many weight
    strings when ``weights``)."""
    tail = any(node.args.get(k) is not None for k in _TAIL)
    if distinct:
        prim = Distinct(tuple(range(width)), prim, truncate_columns=width if weights and not tail else 0,
                        weight_cols=tuple(width + i for i in range(width)) if weights else ())
    elif weights and not tail:
        prim = Projection(tuple(_cols(width)), tuple(c or "" for c in columns), prim)
    if tail:
        prim = union_tail(qp, node, prim, columns, weights)
    return prim


def _cols(width: int) -> list[object]:
    from router.planner.evalexpr import Col

    return [Col(i) for i in range(width)]


def _backend(qp: QueryPlanner, p: Planned) -> str:
    keyspaces = {r.keyspace_name for r in p.refs if r.keyspace is not None}
    dialects = {qp.ctx.backend_dialect(k) for k in keyspaces} or {qp.ctx.session.dialect}
    return "mysql" if "mysql" in dialects else dialects.pop()


def _weighable(p: Planned) -> bool:
    return p.route is not None and p.prim is None and (p.complete or single_shard(p.route)) and not p.distinct


def _with_weights(qp: QueryPlanner, p: Planned, width: int) -> Primitive:
    """A branch on MySQL shards with ``weight_string()`` of each of its columns appended."""
    tree = p.tree
    if not _weighable(p):
        raise UnsupportedError("UNION DISTINCT / ORDER BY across shards needs each SELECT of the union to run as one "
                               "query on its shards (the router compares MySQL text by the shards' weight strings)")
    return _route_primitive(_weighted(tree, width), p.route, p.refs, qp.ctx)


def _weighted(body: exp.Expression, width: int) -> exp.Expression:
    out = body.copy()
    for select in _selects(out):
        for e in list(select.expressions)[:width]:
            inner = e.unalias() if isinstance(e, exp.Alias) else e
            select.append("expressions", exp.WeightString(this=inner.copy()))
    out.meta[REWRITTEN] = True
    return out


def _selects(node: exp.Expression) -> list[exp.Select]:
    if isinstance(node, exp.Subquery):
        return _selects(node.this)
    if isinstance(node, exp.SetOperation):
        return _selects(node.this) + _selects(node.expression)
    if isinstance(node, exp.Select):
        return [node]
    raise UnsupportedError(f"unsupported UNION branch: {node.key.upper()}")


def union_primitive(qp: QueryPlanner, planned: Planned, top: bool) -> Primitive:
    """The primitive of a UNION merged into one route."""
    node = planned.tree
    route = planned.route
    assert route is not None and isinstance(node, exp.Union)
    if single_shard(route):
        return _route_primitive(node, route, planned.refs, qp.ctx)
    tail = any(node.args.get(k) is not None for k in _TAIL)
    if planned.complete and not (top and node.args.get("order") is not None):
        return _route_primitive(node, route, planned.refs, qp.ctx)
    width = _width(node, planned.columns)
    body: exp.Expression = node.copy()
    for k in _TAIL:
        body.set(k, None)
    body.meta[REWRITTEN] = True
    weights = _weights_needed(qp, node, [planned], planned.distinct)
    if weights:
        body = _weighted(body, width)
    prim: Primitive = _route_primitive(body, route, planned.refs, qp.ctx)
    if not planned.distinct and not tail:
        return prim
    return _finish(qp, node, prim, planned.columns, width, weights, planned.distinct)


def union_tail(qp: QueryPlanner, node: exp.Union, prim: Primitive, columns: list[str | None],
               weights: bool = False) -> Primitive:
    """ORDER BY / LIMIT of a union computed by the router over its rows."""
    from router.planner.join_horizon import horizon_over

    cols: list[exp.Expression] = [exp.column(c) for c in columns]  # type: ignore[arg-type]
    items: list[exp.Expr] = [c.copy() for c in cols]
    if not weights:  # PostgreSQL: text of C-collated columns merges by code point; say so to the horizon
        for i, coll in enumerate(_codepoint_collations(qp, node, len(cols))):
            if coll is not None:
                items[i] = exp.alias_(exp.Collate(this=items[i], expression=exp.to_identifier(coll, quoted=True)),
                                      str(columns[i]))
    wrapper = exp.Select(expressions=items)
    for k in _TAIL:
        if node.args.get(k) is not None:
            wrapper.set(k, node.args[k].copy())
    inputs = cols + ([exp.WeightString(this=c.copy()) for c in cols] if weights else [])
    backend = "mysql" if weights else None
    return horizon_over(wrapper, prim, inputs, qp.ctx, backend=backend)


def _codepoint_collations(qp: QueryPlanner, node: exp.Union, width: int) -> list[str | None]:
    """Per column of the union: the code-point collation (``C``, ``binary``…) every SELECT's column declares in the
    VSchema (or names with COLLATE), else None."""
    from router.planner.evalexpr import _collation_name, codepoint_collation

    selects = _selects(node)
    out: list[str | None] = []
    for i in range(width):
        found: set[str | None] = set()
        for select in selects:
            if i >= len(select.expressions):
                found.add(None)
                continue
            e = select.expressions[i]
            inner = e.unalias() if isinstance(e, exp.Alias) else e
            if isinstance(inner, exp.Collate):
                found.add(_collation_name(inner))
            elif isinstance(inner, exp.Column):
                found.add(_declared_collation(qp, select, inner))
            else:
                found.add(None)
        coll = found.pop() if len(found) == 1 else None
        out.append(coll if coll is not None and codepoint_collation(coll) else None)
    return out


def _declared_collation(qp: QueryPlanner, select: exp.Select, col: exp.Column) -> str | None:
    """The VSchema's collation of a column of one of ``select``'s own tables (None: not declared or ambiguous)."""
    from router.planner.semantics import scope_tables

    tables = {id(t) for t in scope_tables(select)}
    qualifier = col.table.lower()
    found: set[str | None] = set()
    for ref in qp.refs:
        if id(ref.node) not in tables or ref.table is None:
            continue
        if qualifier and ref.alias.lower() != qualifier:
            continue
        decl = next((c for c in ref.table.columns if c.name.lower() == col.name.lower()), None)
        if decl is not None:
            found.add(decl.collation_name or None)
    return found.pop() if len(found) == 1 else None
