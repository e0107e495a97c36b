"""What the router knows of a derived table's columns: their types and collations, as a table of its own.

A derived table that runs apart from its outer query (a LIMIT, GROUP BY or DISTINCT inside it, across shards) gives
the router rows whose ORDER BY, GROUP BY, MIN/MAX or join keys it must compare as the shards would. Its columns
have no VSchema declaration, so the types come from its body: a column keeps its table's declaration (type and
collation), an expression its type category (``horizon.output_column``), a UNION what every branch agrees on.
``derived_ref`` wraps them as a ``TableRef`` of kind ``derived`` with the derived table's alias, which the horizon
then reads like any table's declared columns.
"""
from __future__ import annotations

from sqlglot import exp

from router.planner.scope import Binder, Rel
from router.planner.semantics import TableRef
from sharding.vschema_model import Column, Table

__all__ = ["derived_ref", "derived_refs", "output_columns"]


def derived_ref(binder: Binder, rel: Rel) -> TableRef | None:
    """A table standing for derived table ``rel``: its columns (in its alias list's names) with what is known of
    their types. None when no column's type is known."""
    if rel.kind != "derived" or rel.body is None or rel.columns is None:
        return None
    outputs = output_columns(binder, rel.body)
    if outputs is None:
        return None
    renamed = rel.authoritative and len(rel.columns) == len(outputs)
    cols: list[Column] = []
    for i, name in enumerate(rel.columns):
        decl = outputs[i] if renamed else next((c for c in outputs if c is not None and c.name == name), None)
        if decl is not None:
            cols.append(Column(name, decl.type, collation_name=decl.collation_name))
    if not cols:
        return None
    table = Table(name=rel.alias, keyspace="", columns=tuple(cols),
                  column_list_authoritative=rel.authoritative and len(cols) == len(rel.columns))
    return TableRef(exp.Table(this=exp.to_identifier(rel.alias)), rel.alias, rel.alias, "derived", table)


def derived_refs(binder: Binder, select: exp.Expression) -> list[TableRef]:
    """``derived_ref`` of every derived table in the FROM clause of block ``select``."""
    if not isinstance(select, exp.Select):
        return []
    refs = (derived_ref(binder, r) for r in binder.scope_of(select).rels if r.kind == "derived")
    return [r for r in refs if r is not None]


def output_columns(binder: Binder, query: exp.Expression) -> list[Column | None] | None:
    """The output columns of a query in order (None: one of unknown type), or None when their positions are not
    known (a ``*`` over a table of unknown columns)."""
    from router.planner.horizon import output_column

    while isinstance(query, exp.Subquery):
        query = query.this
    if isinstance(query, exp.SetOperation):
        left, right = output_columns(binder, query.this), output_columns(binder, query.expression)
        if left is None or right is None or len(left) != len(right):
            return None
        return [_agree(a, b) for a, b in zip(left, right, strict=True)]
    if not isinstance(query, exp.Select):
        return None
    scope = binder.scope_of(query)
    refs = [r.ref for r in scope.rels if r.ref is not None]
    refs += [d for d in (derived_ref(binder, r) for r in scope.rels if r.kind == "derived") if d is not None]
    out: list[Column | None] = []
    for e in query.expressions:
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
            rels = scope.rels if isinstance(e, exp.Star) else [
                r for r in scope.rels if binder.alias_matches(r.alias, e.table)]
            for rel in rels:
                if rel.columns is None or not rel.authoritative:
                    return None
                out.extend(_rel_column(binder, rel, c) for c in rel.columns)
            continue
        name = e.alias_or_name.lower() if e.alias_or_name else ""
        out.append(output_column(e.unalias() if isinstance(e, exp.Alias) else e, name, refs, binder.dialect))
    return out


def _rel_column(binder: Binder, rel: Rel, name: str) -> Column | None:
    ref = rel.ref if rel.ref is not None else derived_ref(binder, rel)
    if ref is None or ref.table is None:
        return None
    return next((c for c in ref.table.columns if c.name.lower() == name), None)


def _agree(a: Column | None, b: Column | None) -> Column | None:
    """A UNION column: the first branch's type when both branches have the same type category; the collation only
    when both declare the same one."""
    from router.planner.horizon import same_category

    if a is None or b is None or not same_category(a.type, b.type):
        return None
    if a.collation_name != b.collation_name:
        return Column(a.name, a.type)
    return a
