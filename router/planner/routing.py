"""Routing: from a table and its predicates to an opcode, a vindex and value expressions.

This follows Vitess's ``operators/sharded_routing.go``. The predicates are first rewritten
(``router.planner.rewrite``: constants folded, NOT pushed down, ORs distributed, ``a = 1 OR a = 2`` as an IN).
Then each ANDed predicate that pins vindex columns opens an *option*:

- ``col = v`` → EqualUnique (unique vindex) or Equal; ``col IN (…)`` / ``col IN ::list`` → IN;
  ``(a, b) IN ((…), (…))`` → MultiEqual on each column that has a vindex; ``col IS NULL`` → Equal(NULL)
  (not for lookup vindexes); ``BETWEEN`` on an order-keeping vindex → Between; ``LIKE 'p%'`` on a prefixable
  vindex → Equal through its prefix vindex;
- a multi-column vindex collects its columns from several predicates; when all are pinned its opcode is the
  widest of theirs (``a = 1 AND b IN (2, 3)`` → IN with values ``[1, (2, 3)]``); a leading prefix of a vindex that
  maps prefixes (``partial_vindex()``) opens a SubShard option (or IN/MultiEqual for lists);
- a value may also come through a column equality: ``t.id = t.col AND t.col = 5`` pins ``id`` to 5;
- a value may be constant arithmetic (``id = 5 + 5``: ``+ - *`` over exact numbers, computed when the plan is bound,
  under an ``ExactNumbers`` guard), and ``(a, b) IN ::vals`` routes each vindex column by its position in every
  tuple of the list (``TupleColumn``, Vitess ``vals:0``) with MultiEqual.

The cheapest option wins: by opcode (Vitess's order: EqualUnique < Equal < IN < MultiEqual < … < SubShard <
Between), then a unique vindex before a non-unique one, then by vindex cost; on a tie the later option wins, as in
Vitess. Lookup vindexes that are still being backfilled (``write_only``) never route.

A WHERE that is provably empty routes nowhere (None): a constant FALSE, a comparison with a NULL literal, ``NOT
IN (…, NULL, …)``, or ``id = 1 AND id = 2`` on a vindex column (this one with a ``NumbersDiffer`` guard: the plan
is reused only for values that still differ). Predicates that cannot be proven about (expressions, columns of
unknown tables) simply open no option: the route stays wider, never wrong.
"""
from __future__ import annotations

import decimal
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from router.planner.context import NumbersDiffer, PlanContext
from router.planner.plan import KeyspaceRef, Opcode, RoutingParams
from router.planner.rewrite import extract_in_from_or, prepare_predicates, unparen
from router.planner.semantics import TableRef, column_name, column_owner
from router.planner.values import (
    Arg,
    Arith,
    CastValue,
    Const,
    ExactNumbers,
    TupleColumn,
    TupleExpr,
    ValueExpr,
    cast_value,
    is_exact_number,
)
from sharding.errors import InvalidValueError, UnsupportedError
from sharding.vindexes.base import Lookup, MultiColumn, Prefixable, Sequential
from sharding.vschema_model import ColumnVindex, Keyspace

__all__ = ["TableRoute", "VindexOption", "arith_value", "multicolumn_rows", "plan_time_value", "route_table",
           "route_tableless", "split_and", "to_value"]

OwnerOf = Callable[[exp.Column], "TableRef | None"]

# Vitess engine.Opcode order: the lower, the cheaper (SubShard and Between, added last, rank last).
_RANK = {
    Opcode.Unsharded: 0, Opcode.EqualUnique: 1, Opcode.Equal: 2, Opcode.IN: 3, Opcode.MultiEqual: 4,
    Opcode.Scatter: 5, Opcode.Next: 6, Opcode.DBA: 7, Opcode.Reference: 8, Opcode.None_: 9,
    Opcode.ByDestination: 10, Opcode.SubShard: 11, Opcode.Between: 12,
}


# --- values -------------------------------------------------------------------------------------------------
def to_value(node: exp.Expression, ctx: PlanContext | None = None) -> ValueExpr | None:
    """The value expression of a node that is a value (placeholder, literal, NULL, tuple of values), else None.

    Hex literals (``0x04``, ``x'04'``) are not values here: MySQL reads them as a number or as bytes depending on
    what they are compared with, so they cannot pick a shard before that is known."""
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
    if type(node) is exp.Cast:  # ``$1::bigint``, ``CAST(%s AS SIGNED)``: how ORMs type their placeholders
        return _cast_value(node, ctx)
    return None


_CAST_INT = frozenset({exp.DataType.Type.BIGINT, exp.DataType.Type.INT, exp.DataType.Type.SMALLINT,
                       exp.DataType.Type.TINYINT, exp.DataType.Type.MEDIUMINT})
_CAST_UINT = frozenset({exp.DataType.Type.UBIGINT, exp.DataType.Type.UINT, exp.DataType.Type.USMALLINT,
                        exp.DataType.Type.UTINYINT, exp.DataType.Type.UMEDIUMINT})
# Text types without a length: CHAR(3) / VARCHAR(3) casts truncate, which a router-side value would not.
_CAST_TEXT = frozenset({exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR})


def _cast_value(node: exp.Cast, ctx: PlanContext | None) -> ValueExpr | None:
    to = node.to
    if not isinstance(to, exp.DataType) or to.expressions:
        return None
    kind = ("int" if to.this in _CAST_INT else "uint" if to.this in _CAST_UINT
            else "text" if to.this in _CAST_TEXT else None)
    if kind is None:
        return None
    inner = to_value(node.this, ctx)
    if inner is None or isinstance(inner, TupleExpr):
        return None
    if isinstance(inner, Const):  # folded now; a cast the router cannot do exactly leaves it to the database
        try:
            return Const(cast_value(inner.value, kind))
        except InvalidValueError:
            return None
    return CastValue(inner, kind, to.sql())


_ARITH: dict[type[exp.Expression], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}


def arith_value(node: exp.Expression, ctx: PlanContext | None = None, dialect: str = "mysql") -> ValueExpr | None:
    """Constant arithmetic (``5 + 5``, ``:v1 * 2``) as an ``Arith`` value computed when the plan is bound, or None.

    With ``ctx`` (routing values): operands are literals and statement values that are exact numbers (int, Decimal)
    or NULL, and client bind parameters; anything else (strings, floats, booleans, columns, run-time values) gives
    None: MySQL computes ``'5' + 5`` as a DOUBLE, which a route must not guess. An ``ExactNumbers`` guard on the
    statement values used is recorded, so that a cached plan computes the value only for exact numbers. Without
    ``ctx`` (``LIMIT 1 + 1``) any statement value is an operand: one that is not a number fails when bound."""
    from cython_ext.fpvalues import Param

    if ctx is not None:
        dialect = ctx.session.dialect
    used: list[int] = []

    def build(n: exp.Expression) -> ValueExpr | None:
        n = unparen(n)
        op = _ARITH.get(type(n))
        if op is not None:
            left, right = build(n.this), build(n.expression)
            return None if left is None or right is None else Arith(op, left, right, dialect)
        if isinstance(n, exp.Neg) and not isinstance(unparen(n.this), exp.Literal):
            inner = build(n.this)
            return None if inner is None else Arith("-", Const(0), inner, dialect)
        value = to_value(n)
        if isinstance(value, Const):
            return value if value.value is None or is_exact_number(value.value) else None
        if not isinstance(value, Arg):
            return None
        if ctx is None:
            return value
        if value.index >= len(ctx.values):
            return None
        known = ctx.values[value.index]
        if ctx.value_known(value.index):
            if known is not None and not is_exact_number(known):
                return None
        elif type(known) is not Param or known.is_list:  # run-time values are not statement values
            return None
        used.append(value.index)
        return value

    out = build(node)
    if out is None or not isinstance(out, Arith):
        return None
    if ctx is not None and used:
        check = ExactNumbers(tuple(sorted(set(used))))
        if check not in ctx.guards:
            ctx.guards.append(check)  # type: ignore[arg-type]
    return out


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
    if isinstance(expr, Arith):
        ka, a = plan_time_value(expr.left, ctx)
        kb, b = plan_time_value(expr.right, ctx)
        if ka and kb:
            from router.planner.values import evaluate

            try:
                return True, evaluate(Arith(expr.op, Const(a), Const(b), expr.dialect), ())
            except (InvalidValueError, UnsupportedError):
                return False, None
    return False, None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def multicolumn_rows(opcode: Opcode, values: list[Any] | tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The rows (one value per leading vindex column) a multi-column vindex maps, from a route's evaluated values:
    each column holds one value or a list, and every combination is a row. For MultiEqual (a tuple IN) this is a
    superset of the tuples the IN lists: the route may reach a few more shards than zipping would, but a column
    pinned by another predicate, or listed by a second tuple IN, can never make it miss one. The Equal opcodes
    and SubShard give one row; fewer values than vindex columns make prefix rows (a partial vindex: key ranges)."""
    if opcode in (Opcode.MultiEqual, Opcode.IN):
        return list(itertools.product(*(v if isinstance(v, tuple) else (v,) for v in values)))
    return [tuple(values)]


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


# --- options ------------------------------------------------------------------------------------------------
@dataclass
class VindexOption:
    """One way to route a table: a vindex (or a prefix of a multi-column one), its opcode and values (one per
    vindex column for multi-column vindexes, else one). ``predicate`` is the predicate of the original statement
    it came from, when there is exactly one (None when it came from a rewrite)."""

    opcode: Opcode
    column_vindex: ColumnVindex
    values: tuple[ValueExpr, ...]
    predicate: exp.Expression | None = None
    vindex_name: str = ""
    unique: bool = True
    ready: bool = True
    cols_seen: dict[str, int] = field(default_factory=dict)
    slots: list[ValueExpr | None] = field(default_factory=list)

    def cost(self) -> tuple[int, int, int]:
        return (_RANK[self.opcode], 0 if self.unique else 1, self.column_vindex.vindex.cost)


def _cheaper(a: VindexOption, b: VindexOption) -> bool:
    """Whether ``a`` is at least as cheap as ``b`` (Vitess ``less``: ties go to ``a``, the later option)."""
    if a.opcode is not b.opcode:
        return _RANK[a.opcode] < _RANK[b.opcode]
    if a.unique == b.unique:
        return a.column_vindex.vindex.cost <= b.column_vindex.vindex.cost
    return a.unique


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


@dataclass
class _Candidate:
    """A column vindex of the table, or a leading prefix of a multi-column one (Vitess adds those as "partial"
    column vindexes), with the options predicates opened on it."""

    cv: ColumnVindex
    columns: tuple[str, ...]  # lower-cased
    partial: bool = False
    options: list[VindexOption] = field(default_factory=list)

    @property
    def multi(self) -> bool:
        return isinstance(self.cv.vindex, MultiColumn)

    @property
    def unique(self) -> bool:
        return self.cv.vindex.is_unique and not self.partial

    def equal_opcode(self) -> Opcode:
        if self.partial:
            return Opcode.SubShard
        return Opcode.EqualUnique if self.cv.vindex.is_unique else Opcode.Equal


def _is_backfilling(cv: ColumnVindex) -> bool:
    lookup = getattr(cv.vindex, "lookup", None) if isinstance(cv.vindex, Lookup) else None
    return bool(getattr(lookup, "write_only", False))


def _candidates(ref: TableRef) -> list[_Candidate]:
    table = ref.table
    if table is None:
        return []
    out = [_Candidate(cv, tuple(c.lower() for c in cv.columns)) for cv in table.column_vindexes
           if not _is_backfilling(cv)]
    partials = []
    for cand in out:
        vindex = cand.cv.vindex
        if isinstance(vindex, MultiColumn) and vindex.partial_vindex():
            for n in range(len(cand.columns) - 1, 0, -1):
                partials.append(_Candidate(cand.cv, cand.columns[:n], partial=True))
    return out + partials


class _Equalities:
    """Columns known equal (``a.x = a.y``) and the values their classes are pinned to (``a.y = 5``)."""

    def __init__(self) -> None:
        self.parent: dict[tuple[int, str], tuple[int, str]] = {}
        self.values: dict[tuple[int, str], list[ValueExpr]] = {}

    def find(self, key: tuple[int, str]) -> tuple[int, str]:
        while self.parent.get(key, key) != key:
            key = self.parent[key]
        return key

    def union(self, a: tuple[int, str], b: tuple[int, str]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.values.setdefault(ra, []).extend(self.values.pop(rb, []))

    def add_value(self, key: tuple[int, str], value: ValueExpr) -> None:
        self.values.setdefault(self.find(key), []).append(value)

    def value_of(self, key: tuple[int, str]) -> ValueExpr | None:
        vals = self.values.get(self.find(key))
        return vals[0] if vals else None


class _Collector:
    """Collects vindex options for one table from its (rewritten, ANDed) predicates."""

    def __init__(self, ref: TableRef, scope: list[TableRef], ctx: PlanContext,
                 originals: frozenset[int] = frozenset(), owner_of: OwnerOf | None = None) -> None:
        self.ref = ref
        self.owner_of = owner_of
        self.scope = scope
        self.ctx = ctx
        self.originals = originals  # ids of predicate nodes that belong to the statement's own tree
        self.candidates = _candidates(ref)
        self.none_reason: str | None = None
        self.equalities: dict[str, list[ValueExpr]] = {}  # column -> equality values seen (id=1 AND id=2)
        self.columns = _Equalities()

    # --- columns ------------------------------------------------------------------------------------------
    def _column_key(self, node: exp.Expression) -> tuple[int, str] | None:
        node = unparen(node)
        if not isinstance(node, exp.Column):
            return None
        if self.owner_of is not None:
            owner = self.owner_of(node)
        else:
            owner = column_owner(node, self.scope, self.ctx.session.dialect)
        if owner is None:
            return None
        return id(owner), column_name(node, self.ctx.session.dialect).lower()

    def _own_column(self, node: exp.Expression) -> str | None:
        key = self._column_key(node)
        if key is None or key[0] != id(self.ref):
            return None
        return key[1]

    def _has_vindex(self, col: str) -> bool:
        return any(col in cand.columns for cand in self.candidates)

    def learn(self, preds: list[exp.Expression]) -> None:
        """Record column equalities and the values they pin, before any option is opened."""
        for pred in preds:
            if not isinstance(pred, exp.EQ):
                continue
            a, b = self._column_key(pred.this), self._column_key(pred.expression)
            if a is not None and b is not None:
                self.columns.union(a, b)
            elif a is not None or b is not None:
                value = self.value(pred.expression if a is not None else pred.this)
                if value is not None and not isinstance(value, TupleExpr):
                    self.columns.add_value(a or b, value)  # type: ignore[arg-type]

    def value(self, node: exp.Expression) -> ValueExpr | None:
        """A routing value: ``to_value``, or constant arithmetic (``5 + 5``) computed when the plan is bound."""
        value = to_value(node, self.ctx)
        if value is None and isinstance(unparen(node), (exp.Add, exp.Sub, exp.Mul, exp.Neg)):
            value = arith_value(node, self.ctx)
        return value

    # --- predicates ---------------------------------------------------------------------------------------
    def add(self, pred: exp.Expression) -> None:
        pred = unparen(pred)
        if isinstance(pred, exp.Boolean):
            if not pred.this:
                self.none_reason = "WHERE is always false"
            return
        if _compares_with_null(pred):
            self.none_reason = "a comparison with NULL matches no row"
            return
        if isinstance(pred, exp.EQ):
            self._equal(pred)
        elif isinstance(pred, exp.In):
            self._in(pred)
        elif isinstance(pred, exp.Is):
            self._is_null(pred)
        elif isinstance(pred, exp.Between):
            self._between(pred)
        elif isinstance(pred, exp.Like):
            self._like(pred)

    def _source(self, pred: exp.Expression) -> exp.Expression | None:
        return pred if id(pred) in self.originals else None

    def _equal(self, pred: exp.EQ) -> None:
        """``col = value`` (either side), or ``col = other_col`` when the other column's class is pinned to a
        value (Vitess ``GetExprAndEqualities``)."""
        left, right = unparen(pred.this), unparen(pred.expression)
        for col_node, value_node in ((left, right), (right, left)):
            col = self._own_column(col_node)
            if col is None:
                continue
            value = self.value(value_node)
            if value is None:
                key = self._column_key(value_node)
                value = self.columns.value_of(key) if key is not None else None
            if value is None or isinstance(value, TupleExpr):
                continue
            if isinstance(value, Const) and value.value is None:
                self.none_reason = f"{col} = NULL matches no row"
                return
            self._note_equality(col, value)
            self._match(col, value, pred, _Candidate.equal_opcode)

    def _note_equality(self, col: str, value: ValueExpr) -> None:
        seen = self.equalities.setdefault(col, [])
        for other in seen:
            self._check_conflict(col, other, value)
        seen.append(value)

    def _check_conflict(self, col: str, a: ValueExpr, b: ValueExpr) -> None:
        ka, va = plan_time_value(a, self.ctx)
        kb, vb = plan_time_value(b, self.ctx)
        if ka and kb and _is_number(va) and _is_number(vb) and va != vb and self._has_vindex(col):
            self.none_reason = f"{col} cannot equal both {va} and {vb}"
            guard = NumbersDiffer(a, b)
            if not (isinstance(a, Const) and isinstance(b, Const)) and guard not in self.ctx.guards:
                self.ctx.guards.append(guard)

    def _match(self, col: str, value: ValueExpr, pred: exp.Expression, opcode_for: Any,
               vindex_ok: Any = None) -> None:
        """Open options on every candidate over ``col`` (Vitess ``haveMatchingVindex``)."""
        source = self._source(pred)
        for cand in self.candidates:
            # A single-column vindex declared over several columns (a lookup from ``a,b``) maps its first one.
            if (col not in cand.columns) if cand.multi else (col != cand.columns[0]):
                continue
            if vindex_ok is not None and not vindex_ok(cand):
                continue
            opcode = opcode_for(cand)
            if opcode is None or opcode is Opcode.Scatter:
                continue
            if not cand.multi:
                cand.options.append(VindexOption(opcode, cand.cv, (value,), source, cand.cv.name, cand.unique))
                continue
            index = cand.columns.index(col)
            grown = []
            for opt in cand.options:
                if opt.ready or col in opt.cols_seen:
                    continue
                copy = VindexOption(opt.opcode, opt.column_vindex, (), None, opt.vindex_name, opt.unique,
                                    False, dict(opt.cols_seen), list(opt.slots))
                self._grow(cand, copy, col, index, value, opcode)
                grown.append(copy)
            cand.options.extend(grown)
            fresh = VindexOption(Opcode.Unsharded, cand.cv, (), source, cand.cv.name, cand.unique, False, {},
                                 [None] * len(cand.columns))
            self._grow(cand, fresh, col, index, value, opcode)
            cand.options.append(fresh)

    @staticmethod
    def _grow(cand: _Candidate, opt: VindexOption, col: str, index: int, value: ValueExpr, opcode: Opcode) -> None:
        opt.cols_seen[col] = index
        opt.slots[index] = value
        if _RANK[opcode] > _RANK[opt.opcode]:
            opt.opcode = opcode
        if len(opt.cols_seen) == len(cand.columns):
            opt.ready = True
            opt.values = tuple(v for v in opt.slots if v is not None)
            if len(cand.columns) > 1:
                opt.predicate = None  # several predicates made it

    def _in(self, pred: exp.In) -> None:
        if pred.args.get("query") is not None or pred.args.get("unnest") is not None:
            return
        left = unparen(pred.this)
        field_arg = pred.args.get("field")
        if isinstance(left, exp.Tuple):
            if field_arg is None:
                self._tuple_in(left, pred.expressions, pred)
            else:
                self._tuple_in_list(left, field_arg, pred)
            return
        col = self._own_column(left)
        if col is None:
            return
        if field_arg is not None:  # ``col IN ::list``: one list parameter
            value = to_value(field_arg, self.ctx)
            if isinstance(value, Arg):
                self._match(col, value, pred, lambda _c: Opcode.IN)
            return
        items = pred.expressions
        values = [self.value(i) for i in items]
        if not values or any(v is None for v in values):
            return
        if len(values) == 1 and isinstance(values[0], Arg) and self._is_folded_list(values[0]):
            list_value: ValueExpr = values[0]
        elif len(values) == 1:
            self._equal(exp.EQ(this=left, expression=items[0]))
            return
        else:
            list_value = TupleExpr(tuple(values))  # type: ignore[arg-type]
        self._match(col, list_value, pred, lambda _c: Opcode.IN)

    def _is_folded_list(self, arg: Arg) -> bool:
        v = self.ctx.values[arg.index] if arg.index < len(self.ctx.values) else None
        return isinstance(v, tuple) or (getattr(v, "is_list", False) is True)

    def _tuple_in(self, left: exp.Tuple, items: list[exp.Expression], pred: exp.In) -> None:
        """``(a, b) IN ((1, 2), (3, 4))``: MultiEqual on each tuple column that has a vindex, with that column's
        values of every row (Vitess ``planCompositeInOpRecursive``, one level of nesting)."""
        if len(items) == 1 and isinstance(unparen(items[0]), exp.Placeholder):  # ``(a, b) IN (::vals)``
            self._tuple_in_list(left, unparen(items[0]), pred)
            return
        rows = []
        for item in items:
            item = unparen(item) if not isinstance(item, exp.Tuple) else item
            if not isinstance(item, exp.Tuple) or len(item.expressions) != len(left.expressions):
                return
            rows.append(item.expressions)
        for pos, col_node in enumerate(left.expressions):
            col = self._own_column(col_node)
            if col is None or not self._has_vindex(col):
                continue
            values = [self.value(r[pos]) for r in rows]
            if not values or any(v is None or isinstance(v, TupleExpr) for v in values):
                return
            self._match(col, TupleExpr(tuple(values)), pred, lambda _c: Opcode.MultiEqual)  # type: ignore[arg-type]

    def _tuple_in_list(self, left: exp.Tuple, field_arg: exp.Expression, pred: exp.In) -> None:
        """``(a, b) IN ::vals`` (a client's list of tuples): MultiEqual on each tuple column that has a vindex, with
        that column's position in every tuple (Vitess ``TupleBindVariable``: ``vals:0``, ``vals:1``)."""
        from cython_ext.fpvalues import Param

        value = to_value(field_arg, self.ctx)
        if not isinstance(value, Arg) or value.index >= len(self.ctx.values):
            return
        # The client's list: ``::vals`` (``(::vals)`` folds into a tuple holding it), or its tuples once bound (a
        # plan made for one execution). Run-time lists (pulled-out subquery values) hold no tuples.
        def is_list(v: Any) -> bool:
            return type(v) is Param and v.is_list

        param = self.ctx.values[value.index]
        if not (is_list(param) or (isinstance(param, tuple) and param and all(
                is_list(v) or (isinstance(v, (tuple, list))) for v in param))):
            return
        for pos, col_node in enumerate(left.expressions):
            col = self._own_column(col_node)
            if col is None or not self._has_vindex(col):
                continue
            self._match(col, TupleColumn(value, pos), pred, lambda _c: Opcode.MultiEqual)

    def _is_null(self, pred: exp.Is) -> None:
        if not isinstance(pred.expression, exp.Null):
            return
        col = self._own_column(pred.this)
        if col is None:
            return

        def opcode(cand: _Candidate) -> Opcode | None:
            return None if isinstance(cand.cv.vindex, Lookup) else cand.equal_opcode()

        self._match(col, Const(None), pred, opcode)

    def _between(self, pred: exp.Between) -> None:
        col = self._own_column(pred.this)
        low, high = self.value(pred.args["low"]), self.value(pred.args["high"])
        if col is None or low is None or high is None:
            return
        self._match(col, TupleExpr((low, high)), pred, lambda _c: Opcode.Between,
                    lambda c: not c.multi and isinstance(c.cv.vindex, Sequential))

    def _like(self, pred: exp.Like) -> None:
        col = self._own_column(pred.this)
        value = to_value(pred.expression, self.ctx)
        if col is None or value is None:
            return
        self._match(col, value, pred, lambda _c: Opcode.Equal,
                    lambda c: not c.multi and isinstance(c.cv.vindex, Prefixable))

    def best(self) -> VindexOption | None:
        """Vitess ``PickBestAvailableVindex``: the cheapest ready option; a later one wins a tie."""
        best: VindexOption | None = None
        for cand in self.candidates:
            for opt in cand.options:
                if opt.ready and (best is None or _cheaper(opt, best)):
                    best = opt
        return best


_NULL_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Like, exp.ILike)


def _compares_with_null(pred: exp.Expression) -> bool:
    """A comparison with a NULL literal is never true, nor is ``x NOT IN (…, NULL, …)``; in an ANDed WHERE that
    makes the whole WHERE empty (``<=>`` and ``IS NULL`` are other operators)."""
    negated = isinstance(pred, exp.Not)
    node = unparen(pred.this) if negated else pred
    if isinstance(node, _NULL_COMPARISONS):
        return isinstance(unparen(node.this), exp.Null) or isinstance(unparen(node.expression), exp.Null)
    if isinstance(node, exp.In) and node.args.get("query") is None and node.args.get("field") is None:
        items = [unparen(i) for i in node.expressions]
        if isinstance(unparen(node.this), exp.Null):
            return bool(items)
        if negated:
            return any(isinstance(i, exp.Null) for i in items)
        return bool(items) and all(isinstance(i, exp.Null) for i in items)
    return False


def _analyse(ref: TableRef, predicates: list[exp.Expression], scope: list[TableRef], ctx: PlanContext,
             owner_of: OwnerOf | None) -> _Collector:
    originals = frozenset(id(p) for pred in predicates for p in [pred, *split_and(pred)])
    prepared = prepare_predicates(predicates, ctx)
    collector = _Collector(ref, scope, ctx, originals, owner_of)
    collector.learn(prepared)
    for pred in prepared:
        collector.add(pred)
    if collector.none_reason is None and collector.best() is None:
        # Vitess's last resort: an OR of ANDed equalities over the same columns as one tuple IN.
        for pred in prepared:
            tuple_in = extract_in_from_or(pred)
            if tuple_in is not None:
                collector.add(tuple_in)
    return collector


def route_table(ref: TableRef, predicates: list[exp.Expression], scope: list[TableRef],
                ctx: PlanContext, owner_of: OwnerOf | None = None) -> TableRoute:
    """The best route for one table given the predicates that apply to it (ANDed; each may itself be an AND).

    Columns belong to tables by ``semantics.column_owner`` over ``scope``, unless ``owner_of`` (a binder's
    resolution: column node → its table, or None when unknown) is given."""
    ks = ref.keyspace
    assert ks is not None
    if ref.kind == "system":
        return TableRoute(Opcode.DBA, ks, [ref], reason="system schema")
    if ref.kind == "dual":
        return _with_none(TableRoute(Opcode.Reference, ks, [ref], reason="dual"), ref, predicates, scope, ctx,
                          owner_of)
    if ref.target is not None:
        return TableRoute(Opcode.ByDestination, ks, [ref], target=ref.target, reason=f"target {ref.target}")
    if not ks.sharded:
        return _with_none(TableRoute(Opcode.Unsharded, ks, [ref], reason="unsharded keyspace"),
                          ref, predicates, scope, ctx, owner_of)
    table = ref.table
    assert table is not None
    if table.is_reference:
        return _with_none(TableRoute(Opcode.Reference, ks, [ref], reason="reference table"),
                          ref, predicates, scope, ctx, owner_of)
    collector = _analyse(ref, predicates, scope, ctx, owner_of)
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
        return TableRoute(Opcode.Scatter, ks, [ref], reason="no vindex predicate")
    route = TableRoute(best.opcode, ks, [ref], best, reason=f"{best.opcode.value} on vindex {best.vindex_name}")
    if (best.opcode is Opcode.IN and isinstance(best.predicate, exp.In) and len(best.values) == 1
            and isinstance(best.values[0], Arg) and not best.predicate.args.get("field")):
        route.in_predicate = best.predicate
    return route


def route_tableless(ctx: PlanContext, predicates: list[exp.Expression] | None = None) -> TableRoute:
    """A SELECT without tables (``SELECT 1``, ``SELECT @@x``) reads ``dual``: a Reference route in the default
    keyspace (Vitess plans it so), None when its WHERE is provably false."""
    from router.planner.semantics import _default_keyspace

    ks = _default_keyspace(ctx)
    route = TableRoute(Opcode.Reference, ks, [], reason="no table")
    if predicates:
        collector = _Collector(_NO_TABLE, [], ctx)
        for pred in prepare_predicates(predicates, ctx):
            collector.add(pred)
        if collector.none_reason is not None:
            return TableRoute(Opcode.None_, ks, [], reason=collector.none_reason)
    return route


_NO_TABLE = TableRef(exp.Table(this=exp.to_identifier("dual")), "dual", "dual", "dual")


def _with_none(route: TableRoute, ref: TableRef, predicates: list[exp.Expression], scope: list[TableRef],
               ctx: PlanContext, owner_of: OwnerOf | None = None) -> TableRoute:
    """Unsharded and reference routes still become None when the WHERE is provably false."""
    collector = _Collector(ref, scope, ctx, owner_of=owner_of)
    for pred in prepare_predicates(predicates, ctx):
        collector.add(pred)
    if collector.none_reason is not None:
        return TableRoute(Opcode.None_, route.keyspace, route.tables, reason=collector.none_reason)
    return route
