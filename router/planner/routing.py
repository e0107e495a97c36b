"""Routing: from a table and its predicates to an opcode, a vindex and value expressions.

This follows Vitess's ``operators/sharded_routing.go``: each predicate that pins a vindex column opens an option
(``col = v`` → EqualUnique/Equal, ``col IN (…)`` → IN, ``(a, b) IN ((…), (…))`` → MultiEqual, a prefix of a
multi-column vindex → SubShard, ``BETWEEN`` on an order-keeping vindex → Between, ``LIKE 'p%'`` on a prefixable
vindex → Equal), and the cheapest option wins: first by opcode, then unique before non-unique, then by vindex
cost. Predicates that cannot be proven about (expressions, columns of unknown tables) simply open no option; the
route stays wider, never wrong.
"""
from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from router.planner.context import NumbersDiffer, PlanContext
from router.planner.plan import KeyspaceRef, Opcode, RoutingParams
from router.planner.semantics import TableRef, column_name, column_owner
from router.planner.values import Arg, Const, TupleExpr, ValueExpr
from sharding.vindexes.base import Lookup, MultiColumn, Prefixable, Sequential
from sharding.vschema_model import ColumnVindex, Keyspace

# Vitess engine.Opcode order: the lower, the cheaper (Between, newest, last).
_RANK = {
    Opcode.Unsharded: 0, Opcode.EqualUnique: 1, Opcode.Equal: 2, Opcode.IN: 3, Opcode.MultiEqual: 4,
    Opcode.Scatter: 5, Opcode.Next: 6, Opcode.DBA: 7, Opcode.Reference: 8, Opcode.None_: 9,
    Opcode.ByDestination: 10, Opcode.SubShard: 11, Opcode.Between: 12,
}


# --- values -------------------------------------------------------------------------------------------------
def to_value(node: exp.Expression, ctx: PlanContext | None = None) -> ValueExpr | None:
    """The value expression of a node that is a value (placeholder, literal, NULL, tuple of values), else None."""
    if isinstance(node, exp.Placeholder):
        name = node.name
        if name.startswith("v") and name[1:].isdigit():
            return Arg(int(name[1:]) - 1)
        return None
    if isinstance(node, exp.Null):
        return Const(None)
    if isinstance(node, exp.Boolean):
        return Const(bool(node.this))
    if isinstance(node, exp.Literal):
        if node.is_string:
            return Const(node.this)
        return Const(_number(node.this))
    if isinstance(node, exp.Neg):
        inner = to_value(node.this, ctx)
        if isinstance(inner, Const) and isinstance(inner.value, (int, decimal.Decimal, float)):
            return Const(-inner.value)
        return None
    if isinstance(node, exp.Paren):
        return to_value(node.this, ctx)
    if isinstance(node, exp.Tuple):
        items = [to_value(e, ctx) for e in node.expressions]
        if any(i is None for i in items):
            return None
        return TupleExpr(tuple(items))  # type: ignore[arg-type]
    if isinstance(node, exp.Introducer):  # _binary 'abc', _utf8mb4 'x'
        inner = to_value(node.expression, ctx)
        if isinstance(inner, Const) and isinstance(inner.value, str):
            return Const(inner.value.encode() if node.name.lower() == "_binary" else inner.value)
        return inner
    return None


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    if "e" in text.lower():
        return float(text)
    return decimal.Decimal(text)


def plan_time_value(expr: ValueExpr, ctx: PlanContext) -> tuple[bool, Any]:
    """(known, value) of an expression at plan time; a bind parameter is not known."""
    if isinstance(expr, Const):
        return True, expr.value
    if isinstance(expr, Arg) and ctx.value_known(expr.index):
        return True, ctx.values[expr.index]
    return False, None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def split_and(expr: exp.Expression | None) -> list[exp.Expression]:
    if expr is None:
        return []
    if isinstance(expr, exp.Where):
        expr = expr.this
    while isinstance(expr, exp.Paren):
        expr = expr.this
    if isinstance(expr, exp.And):
        return split_and(expr.this) + split_and(expr.expression)
    return [expr]


def _split_or(expr: exp.Expression) -> list[exp.Expression]:
    while isinstance(expr, exp.Paren):
        expr = expr.this
    if isinstance(expr, exp.Or):
        return _split_or(expr.this) + _split_or(expr.expression)
    return [expr]


# --- options ------------------------------------------------------------------------------------------------
@dataclass
class VindexOption:
    opcode: Opcode
    column_vindex: ColumnVindex
    values: tuple[ValueExpr, ...]
    predicate: exp.Expression | None = None
    vindex_name: str = ""

    def cost(self) -> tuple[int, int, int]:
        v = self.column_vindex.vindex
        return (_RANK[self.opcode], 0 if v.is_unique else 1, v.cost)


@dataclass
class TableRoute:
    """The route of one table, or of several merged tables."""

    opcode: Opcode
    keyspace: Keyspace
    tables: list[TableRef]
    option: VindexOption | None = None
    target: str | None = None
    reason: str = ""
    # The IN predicate whose folded list each shard receives only its own values of (Vitess ``::__vals``).
    in_predicate: exp.Expression | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self) -> RoutingParams:
        opt = self.option
        return RoutingParams(
            opcode=self.opcode,
            keyspace=KeyspaceRef(self.keyspace.name, self.keyspace.sharded),
            vindex=opt.vindex_name if opt is not None else None,
            values=opt.values if opt is not None else (),
            target=self.target,
            reason=self.reason,
        )


def _equal_opcode(cv: ColumnVindex) -> Opcode:
    return Opcode.EqualUnique if cv.vindex.is_unique else Opcode.Equal


class _Collector:
    """Collects vindex options for one table from its predicates."""

    def __init__(self, ref: TableRef, scope: list[TableRef], ctx: PlanContext) -> None:
        self.ref = ref
        self.scope = scope
        self.ctx = ctx
        self.options: list[VindexOption] = []
        self.none_reason: str | None = None
        # multi-column vindexes: per column vindex, column index -> value
        self.partial: dict[str, dict[int, ValueExpr]] = {}
        self.equalities: dict[str, list[ValueExpr]] = {}  # column -> equality values seen (for id=1 AND id=2)

    def _own_column(self, node: exp.Expression) -> str | None:
        if not isinstance(node, exp.Column):
            return None
        owner = column_owner(node, self.scope, self.ctx.session.dialect)
        if owner is not self.ref:
            return None
        return column_name(node, self.ctx.session.dialect).lower()

    def _vindexes_on(self, col: str) -> list[tuple[ColumnVindex, int]]:
        table = self.ref.table
        if table is None:
            return []
        out = []
        for cv in table.column_vindexes:
            for i, c in enumerate(cv.columns):
                if c.lower() == col:
                    out.append((cv, i))
        return out

    def add(self, pred: exp.Expression) -> None:
        while isinstance(pred, exp.Paren):
            pred = pred.this
        if isinstance(pred, exp.Boolean) and not pred.this:
            self.none_reason = "WHERE is always false"
        elif isinstance(pred, exp.EQ):
            self._equal(pred)
        elif isinstance(pred, exp.In):
            self._in(pred)
        elif isinstance(pred, exp.Is):
            self._is_null(pred)
        elif isinstance(pred, exp.Between):
            self._between(pred)
        elif isinstance(pred, exp.Like):
            self._like(pred)

    def _equal(self, pred: exp.EQ) -> None:
        left, right = pred.this, pred.expression
        col = self._own_column(left)
        value_node = right
        if col is None:
            col = self._own_column(right)
            value_node = left
        if col is None:
            self._constant_comparison(left, right)
            return
        value = to_value(value_node, self.ctx)
        if value is None or isinstance(value, TupleExpr):
            return
        if isinstance(value, Const) and value.value is None:
            self.none_reason = f"{col} = NULL matches no row"
            return
        seen = self.equalities.setdefault(col, [])
        for other in seen:
            self._check_conflict(col, other, value)
        seen.append(value)
        self._single_value(col, value, pred, _equal_opcode)

    def _check_conflict(self, col: str, a: ValueExpr, b: ValueExpr) -> None:
        ka, va = plan_time_value(a, self.ctx)
        kb, vb = plan_time_value(b, self.ctx)
        if ka and kb and _is_number(va) and _is_number(vb) and va != vb and self._vindexes_on(col):
            self.none_reason = f"{col} cannot equal both {va} and {vb}"
            self.ctx.guards.append(NumbersDiffer(a, b))

    def _constant_comparison(self, left: exp.Expression, right: exp.Expression) -> None:
        """``1 = 0``: two numbers that differ make the whole WHERE false."""
        a, b = to_value(left, self.ctx), to_value(right, self.ctx)
        if a is None or b is None:
            return
        ka, va = plan_time_value(a, self.ctx)
        kb, vb = plan_time_value(b, self.ctx)
        if ka and kb and _is_number(va) and _is_number(vb) and va != vb:
            self.none_reason = f"{va} = {vb} is false"
            if not (isinstance(a, Const) and isinstance(b, Const)):
                self.ctx.guards.append(NumbersDiffer(a, b))

    def _single_value(self, col: str, value: ValueExpr, pred: exp.Expression, opcode_for: Any) -> None:
        for cv, index in self._vindexes_on(col):
            if isinstance(cv.vindex, MultiColumn):
                if opcode_for is _equal_opcode:
                    self._multi_column(cv, index, value, pred)
                continue
            opcode = opcode_for(cv)
            if opcode is None:
                continue
            self.options.append(VindexOption(opcode, cv, (value,), pred, cv.name))

    def _multi_column(self, cv: ColumnVindex, index: int, value: ValueExpr, pred: exp.Expression) -> None:
        cols = self.partial.setdefault(cv.name, {})
        cols.setdefault(index, value)
        n = len(cv.columns)
        if all(i in cols for i in range(n)):
            self.options.append(VindexOption(_equal_opcode(cv), cv, tuple(cols[i] for i in range(n)), pred,
                                             cv.name))
        else:
            prefix = 0
            while prefix in cols:
                prefix += 1
            vindex = cv.vindex
            if prefix and isinstance(vindex, MultiColumn) and vindex.partial_vindex():
                self.options.append(VindexOption(Opcode.SubShard, cv, tuple(cols[i] for i in range(prefix)), pred,
                                                 cv.name))

    def _in(self, pred: exp.In) -> None:
        if pred.args.get("query") is not None or pred.args.get("unnest") is not None:
            return
        items = pred.expressions
        left = pred.this
        if isinstance(left, exp.Tuple):
            self._tuple_in(left, items, pred)
            return
        col = self._own_column(left)
        if col is None:
            return
        values = [to_value(i, self.ctx) for i in items]
        if not values or any(v is None for v in values):
            return
        if len(values) == 1 and isinstance(values[0], Arg) and self._is_folded_list(values[0]):
            list_value: ValueExpr = values[0]
        elif len(values) == 1:
            self._equal(exp.EQ(this=left, expression=items[0]))
            return
        else:
            list_value = TupleExpr(tuple(values))  # type: ignore[arg-type]
        for cv, _ in self._vindexes_on(col):
            if isinstance(cv.vindex, MultiColumn):
                continue
            self.options.append(VindexOption(Opcode.IN, cv, (list_value,), pred, cv.name))

    def _is_folded_list(self, arg: Arg) -> bool:
        v = self.ctx.values[arg.index] if arg.index < len(self.ctx.values) else None
        return isinstance(v, tuple) or (getattr(v, "is_list", False) is True)

    def _tuple_in(self, left: exp.Tuple, items: list[exp.Expression], pred: exp.In) -> None:
        rows = []
        for item in items:
            if not isinstance(item, exp.Tuple) or len(item.expressions) != len(left.expressions):
                return
            rows.append(item.expressions)
        for pos, col_node in enumerate(left.expressions):
            col = self._own_column(col_node)
            if col is None:
                continue
            values = [to_value(r[pos], self.ctx) for r in rows]
            if not values or any(v is None for v in values):
                continue
            for cv, _ in self._vindexes_on(col):
                if isinstance(cv.vindex, MultiColumn):
                    continue
                self.options.append(VindexOption(Opcode.MultiEqual, cv, (TupleExpr(tuple(values)),), pred,  # type: ignore[arg-type]
                                                 cv.name))

    def _is_null(self, pred: exp.Is) -> None:
        if not isinstance(pred.expression, exp.Null):
            return
        col = self._own_column(pred.this)
        if col is None:
            return

        def opcode(cv: ColumnVindex) -> Opcode | None:
            return None if isinstance(cv.vindex, Lookup) else _equal_opcode(cv)

        self._single_value(col, Const(None), pred, opcode)

    def _between(self, pred: exp.Between) -> None:
        col = self._own_column(pred.this)
        low, high = to_value(pred.args["low"], self.ctx), to_value(pred.args["high"], self.ctx)
        if col is None or low is None or high is None:
            return
        for cv, _ in self._vindexes_on(col):
            if isinstance(cv.vindex, Sequential) and not isinstance(cv.vindex, MultiColumn):
                self.options.append(VindexOption(Opcode.Between, cv, (TupleExpr((low, high)),), pred, cv.name))

    def _like(self, pred: exp.Like) -> None:
        col = self._own_column(pred.this)
        value = to_value(pred.expression, self.ctx)
        if col is None or value is None:
            return
        for cv, _ in self._vindexes_on(col):
            if isinstance(cv.vindex, Prefixable):
                self.options.append(VindexOption(Opcode.Equal, cv, (value,), pred, cv.name))

    def add_or_as_in(self, pred: exp.Expression) -> None:
        """``id = 1 OR id = 2`` as ``id IN (1, 2)`` (Vitess ``ExtractINFromOR``), when nothing better exists."""
        branches = _split_or(pred)
        if len(branches) < 2:
            return
        col: str | None = None
        col_node = None
        values: list[ValueExpr] = []
        for b in branches:
            while isinstance(b, exp.Paren):
                b = b.this
            if isinstance(b, exp.EQ):
                c = self._own_column(b.this)
                v_node = b.expression
                if c is None:
                    c = self._own_column(b.expression)
                    v_node = b.this
                v = to_value(v_node, self.ctx) if c is not None else None
                if c is None or v is None or (col is not None and c != col):
                    return
                col, col_node = c, b.this if self._own_column(b.this) else b.expression
                values.append(v)
            else:
                return
        if col is None or col_node is None:
            return
        for cv, _ in self._vindexes_on(col):
            if not isinstance(cv.vindex, MultiColumn):
                self.options.append(VindexOption(Opcode.IN, cv, (TupleExpr(tuple(values)),), None, cv.name))

    def best(self) -> VindexOption | None:
        best: VindexOption | None = None
        for opt in self.options:
            if best is None or opt.cost() < best.cost():
                best = opt
        return best


def route_table(ref: TableRef, predicates: list[exp.Expression], scope: list[TableRef],
                ctx: PlanContext) -> TableRoute:
    """The best route for one table given the predicates that apply to it."""
    ks = ref.keyspace
    assert ks is not None
    if ref.kind == "system":
        return TableRoute(Opcode.DBA, ks, [ref], reason="system schema")
    if ref.kind == "dual":
        return _with_none(TableRoute(Opcode.Reference, ks, [ref], reason="dual"), ref, predicates, scope, ctx)
    if ref.target is not None:
        return TableRoute(Opcode.ByDestination, ks, [ref], target=ref.target, reason=f"target {ref.target}")
    if not ks.sharded:
        return _with_none(TableRoute(Opcode.Unsharded, ks, [ref], reason="unsharded keyspace"),
                          ref, predicates, scope, ctx)
    table = ref.table
    assert table is not None
    if table.is_reference:
        return _with_none(TableRoute(Opcode.Reference, ks, [ref], reason="reference table"),
                          ref, predicates, scope, ctx)
    collector = _Collector(ref, scope, ctx)
    for pred in predicates:
        collector.add(pred)
    if collector.none_reason is not None:
        return TableRoute(Opcode.None_, ks, [ref], reason=collector.none_reason)
    if table.pinned is not None:
        from sharding.vindexes import registry

        vindex, _ = registry.create("binary", "binary", {})
        cv = ColumnVindex(columns=(), name="binary", vindex=vindex)
        opt = VindexOption(Opcode.EqualUnique, cv, (Const(table.pinned),), None, "binary")
        return TableRoute(Opcode.EqualUnique, ks, [ref], opt, reason="pinned table")
    best = collector.best()
    if best is None:
        for pred in predicates:
            collector.add_or_as_in(pred)
        best = collector.best()
    if best is None:
        return TableRoute(Opcode.Scatter, ks, [ref], reason="no vindex predicate")
    route = TableRoute(best.opcode, ks, [ref], best, reason=f"{best.opcode.value} on vindex {best.vindex_name}")
    if best.opcode is Opcode.IN and isinstance(best.predicate, exp.In) and isinstance(best.values[0], Arg):
        route.in_predicate = best.predicate
    return route


def _with_none(route: TableRoute, ref: TableRef, predicates: list[exp.Expression], scope: list[TableRef],
               ctx: PlanContext) -> TableRoute:
    """Unsharded and reference routes still become None when the WHERE is provably false."""
    collector = _Collector(ref, scope, ctx)
    for pred in predicates:
        collector.add(pred)
    if collector.none_reason is not None:
        return TableRoute(Opcode.None_, route.keyspace, route.tables, reason=collector.none_reason)
    return route
