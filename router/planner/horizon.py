"""The SELECT "horizon" across shards: what the router adds on top of a multi-shard route (ORDER BY, LIMIT,
aggregates, GROUP BY, HAVING, DISTINCT), and the same horizon computed in router memory over any input.

Vitess's aim: push as much as possible down to the shards, then merge exactly at the router.

- ORDER BY: every shard sorts; the Route merges the sorted streams (``Route.order_by`` on output offsets). Keys
  not in the select list become hidden columns, dropped after the merge (``truncate_columns``).
- Comparing text exactly as the shard did. MySQL/MariaDB shards: a key not known to be numeric or temporal (from
  the VSchema's column types, or the expression) gets a hidden ``weight_string(key)`` column, compared as bytes
  (``OrderByParam.weight_col``), as Vitess does. PostgreSQL shards have no weight strings, and the router compares
  text itself only by code point, so the rule is: a text key is merged only under a code-point collation: an
  explicit ``COLLATE "C"`` (or ``POSIX``/``ucs_basic``) in the query or the column's ``collation_name`` in the
  VSchema (``OrderByParam.collation = "C"``). A key the planner knows is text under an unknown collation (the
  database default) is an ``UnsupportedError`` for a user-visible ORDER BY or MIN/MAX, while for GROUP BY the
  planner may add ``COLLATE "C"`` itself (grouping only needs some order both sides agree on; equality under a
  deterministic collation is byte equality). A key of unknown type gets no collation; the engine then raises if
  text reaches it (see ``OrderByParam``), and GROUP BY keys of unknown type are grouped by hash instead of merged.
- LIMIT n OFFSET m (and MySQL's LIMIT m, n): the shards get ``LIMIT n+m`` without an offset (folded when both are
  literals, else the run-time ``:__upper_limit``), a ``Limit`` on top applies both. A count or offset that is
  constant arithmetic (``LIMIT 1 + 1``) is computed when the plan is bound (``values.Arith``).
- Aggregates are computed per shard and merged (``Aggregate``): COUNT(*), COUNT(x) (summed), SUM, MIN, MAX,
  BIT_AND/OR/XOR, BOOL_AND/OR, ANY_VALUE, GROUP_CONCAT/string_agg (no DISTINCT or ORDER BY inside), AVG (split into
  SUM and COUNT, divided at the router: ``evalexpr.avg_divide``), COUNT/SUM/AVG(DISTINCT x) (x is pushed as a GROUP BY
  key, or left to the shards when x includes the table's primary vindex columns, which makes it shard-local).
  GROUP BY: the keys (plus their weight strings) are pushed with an ORDER BY on them, the Route merges, and the
  ``Aggregate`` runs ``Ordered``; Vitess's ``Scalar`` when there is no GROUP BY. When the GROUP BY covers a table's
  primary vindex, each group lives on one shard and the whole aggregation is pushed down. HAVING conjuncts without
  aggregates go to the shards; the rest is a ``Filter`` at the router. DISTINCT is pushed and repeated at the router
  (``Distinct``), or dropped when the rows are already unique. Expressions over aggregates (``count(*) + 1``) are a
  ``Projection``; an ORDER BY that the merge cannot give is a ``Sort`` (Memory) after aggregation.
- ORDER BY RAND() sorts on a hidden ``RAND() AS __sg_orderN`` column (one random key per row, merged as numbers).
  Window functions run on the shards when every PARTITION BY includes a primary vindex column (and nothing is
  aggregated at the router first).
- Anything else (other window functions, GROUP BY ROLLUP/CUBE/GROUPING SETS, DISTINCT ON, aggregates that do not
  merge exactly such as STDDEV, PERCENTILE or JSON_ARRAYAGG, two different DISTINCT aggregates, ``SELECT *`` with
  aggregates) is an ``UnsupportedError`` naming the construct. A user-defined aggregate function cannot be told
  from a scalar function and is sent to the shards as one (as Vitess does without declared UDFs).

``plan_horizon_over`` computes the same horizon entirely in router memory over an input primitive whose columns
are given expressions (the cross-shard join planner's output); ``horizon_needs`` lists what it wants from its input.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlglot import exp

from router.planner import evalexpr as ev
from router.planner import runvars
from router.planner.context import PlanContext
from router.planner.plan import (
    Aggregate,
    AggregateOp,
    AggregateParam,
    Distinct,
    Filter,
    GroupByParam,
    Limit,
    OrderByParam,
    Primitive,
    Projection,
    Route,
    Sort,
)
from router.planner.routing import TableRoute, arith_value, split_and, to_value
from router.planner.scope import QUERY_NODES, REF_KEY, own_nodes
from router.planner.semantics import TableRef, column_name, column_owner, ident, scope_tables
from router.planner.values import Arg, Arith, Const, JoinVar, ValueExpr
from sharding.errors import InvalidValueError, UnknownColumnError, UnsupportedError
from sharding.vschema_model import Column as VColumn

__all__ = ["UPPER_LIMIT_VAR", "HorizonNeeds", "horizon_needs", "plan_horizon", "plan_horizon_over"]

UPPER_LIMIT_VAR = "__upper_limit"

# --- types ----------------------------------------------------------------------------------------------------
# Categories: "number", "temporal", "bool", "binary", "uuid" compare natively; "text" needs a collation;
# "opaque" (ENUM, SET, JSON, citext, geometry…) cannot be compared by the router at all; None is unknown.
_NATIVE = frozenset({"number", "temporal", "bool", "binary", "uuid", "null"})
_TYPE_CATEGORY: dict[str, str] = {}
for _names, _cat in (
    ("INT8 UINT8 INT16 UINT16 INT24 UINT24 INT32 UINT32 INT64 UINT64 FLOAT32 FLOAT64 DECIMAL TINYINT SMALLINT "
     "MEDIUMINT INT INTEGER BIGINT FLOAT DOUBLE REAL NUMERIC INT2 INT4 FLOAT4 FLOAT8 SERIAL BIGSERIAL SMALLSERIAL "
     "DOUBLE_PRECISION UNSIGNED_BIGINT DEC FIXED", "number"),
    ("DATE DATETIME TIMESTAMP TIME YEAR TIMESTAMPTZ TIMETZ INTERVAL TIMESTAMP_WITH_TIME_ZONE "
     "TIMESTAMP_WITHOUT_TIME_ZONE TIME_WITH_TIME_ZONE TIME_WITHOUT_TIME_ZONE", "temporal"),
    ("VARCHAR CHAR TEXT TINYTEXT MEDIUMTEXT LONGTEXT CHARACTER CHARACTER_VARYING BPCHAR NAME STRING NVARCHAR NCHAR",
     "text"),
    ("VARBINARY BINARY BLOB TINYBLOB MEDIUMBLOB LONGBLOB BYTEA", "binary"),
    ("BOOLEAN BOOL", "bool"),
    ("UUID", "uuid"),
    ("ENUM SET", "enum"),
    ("JSON JSONB CITEXT GEOMETRY BIT EXPRESSION HEXNUM HEXVAL BITNUM TUPLE NULL_TYPE", "opaque"),
):
    for _n in _names.split():
        _TYPE_CATEGORY[_n] = _cat


def _type_category(type_name: str) -> str | None:
    base = re.sub(r"\(.*$", "", type_name.strip()).strip().upper().replace(" ", "_")
    return _TYPE_CATEGORY.get(base)


_TEXT_FUNCS = (exp.Lower, exp.Upper, exp.Concat, exp.ConcatWs, exp.DPipe, exp.Substring, exp.Trim, exp.Replace,
               exp.Left, exp.Right, exp.GroupConcat)
_NUMBER_FUNCS = (exp.Count, exp.Sum, exp.Avg, exp.Length, exp.Abs, exp.Round, exp.Floor, exp.Ceil,
                 exp.BitwiseAndAgg, exp.BitwiseOrAgg, exp.BitwiseXorAgg)
_PREDICATES = (exp.Predicate, exp.And, exp.Or, exp.Not, exp.Xor)
_ARITH = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod)


# Text functions whose result has their (first) argument's collation, and those that combine their operands'.
_COLLATION_KEEPING = (exp.Lower, exp.Upper, exp.Trim, exp.Substring, exp.Left, exp.Right)
_COLLATION_COMBINING = (exp.Concat, exp.DPipe, exp.Coalesce)


def _unwrap(node: exp.Expression) -> exp.Expression:
    while isinstance(node, (exp.Paren, exp.Alias)):
        node = node.this
    return node


class _Types:
    """What the VSchema and the expression itself say about a value's type and collation."""

    def __init__(self, scope: Sequence[TableRef], dialect: str, arithmetic_is_number: bool = False,
                 ctx: PlanContext | None = None) -> None:
        self.scope = list(scope)
        self.dialect = dialect
        self.ctx = ctx  # with it, a statement's literal (a placeholder) has the type of its plan-time value
        # Arithmetic is always numeric in both databases; the pushdown still gives MySQL weight strings to
        # arithmetic over unknown types, as Vitess does (plans compare one to one), the router-memory path not.
        self.arithmetic_is_number = arithmetic_is_number

    def declared(self, col: exp.Column) -> VColumn | None:
        owner = column_owner(col, self.scope, self.dialect)
        if owner is None or owner.table is None:
            return None
        name = column_name(col, self.dialect).lower()
        return next((c for c in owner.table.columns if c.name.lower() == name), None)

    def declared_collation(self, node: exp.Expression) -> str | None:
        node = _unwrap(node)
        if isinstance(node, exp.Column):
            decl = self.declared(node)
            return decl.collation_name or None if decl is not None else None
        if isinstance(node, (exp.Min, exp.Max, exp.AnyValue, *_COLLATION_KEEPING)):
            return self.declared_collation(node.this)
        if isinstance(node, _COLLATION_COMBINING):
            # Both databases derive the result's collation from the text operands (a literal's is weaker than a
            # column's): one declared collation among the non-constant operands is the result's.
            operands = [node.this, *node.expressions] if not isinstance(node, exp.DPipe) else [node.this,
                                                                                                node.expression]
            found = {self.declared_collation(o) for o in operands if o is not None and not _is_constant(o)}
            return found.pop() if len(found) == 1 and None not in found else None
        return None

    def collation(self, node: exp.Expression) -> str | None:
        """An explicit COLLATE on the expression, else the declared collation of the column it is."""
        inner = _unwrap(node)
        if isinstance(inner, exp.Collate):
            return ev._collation_name(inner)
        if isinstance(inner, (exp.Min, exp.Max, exp.AnyValue)):
            return self.collation(inner.this)
        return self.declared_collation(inner)

    def _placeholder_category(self, node: exp.Placeholder) -> str | None:
        """A literal's category from its plan-time value, under a ``ValueCategory`` guard (a cached plan serves
        only values of the same category); a client's bind parameter or a run-time value is unknown."""
        name = node.name
        if self.ctx is None or not (name.startswith("v") and name[1:].isdigit()):
            return None
        index = int(name[1:]) - 1
        if not (0 <= index < len(self.ctx.values)) or not self.ctx.value_known(index):
            return None
        cat = value_category(self.ctx.values[index])
        if cat is not None:
            guard = ValueCategory(Arg(index), cat)
            if guard not in self.ctx.guards:
                self.ctx.guards.append(guard)  # type: ignore[arg-type]
        return cat

    def category(self, node: exp.Expression) -> str | None:
        node = _unwrap(node)
        if isinstance(node, exp.Collate):
            return "text"
        if isinstance(node, exp.Column):
            decl = self.declared(node)
            return _type_category(decl.type) if decl is not None and decl.type else None
        if isinstance(node, exp.Literal):
            return "text" if node.is_string else "number"
        if isinstance(node, exp.Placeholder):
            return self._placeholder_category(node)
        if isinstance(node, exp.Boolean):
            return "bool"
        if isinstance(node, exp.Null):
            return "null"
        if isinstance(node, (exp.Filter, exp.Window)):
            return self.category(node.this)
        if isinstance(node, (exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile, exp.PercentRank, exp.CumeDist)):
            return "number"
        if isinstance(node, (exp.FirstValue, exp.LastValue, exp.Lag, exp.Lead, exp.NthValue)):
            return self.category(node.this)
        if isinstance(node, (exp.Min, exp.Max, exp.AnyValue)):
            return self.category(node.this)
        if isinstance(node, exp.Distinct):
            return self.category(node.expressions[0]) if len(node.expressions) == 1 else None
        if isinstance(node, _NUMBER_FUNCS):
            return "number"
        if isinstance(node, _TEXT_FUNCS):
            return "text"
        if isinstance(node, exp.WeightString):
            return "binary"
        if isinstance(node, _PREDICATES):
            return "bool"
        if isinstance(node, (*_ARITH, exp.Neg)):
            operands = [node.this] + ([node.expression] if isinstance(node, _ARITH) else [])
            if all(self.category(o) == "number" for o in operands):
                return "number"
            # MySQL arithmetic is always numeric, PostgreSQL's never text; Vitess still adds a weight string
            # for MySQL when an operand's type is unknown, and so do we.
            return None if self.dialect == "mysql" and not self.arithmetic_is_number else "number"
        if isinstance(node, exp.Cast):
            to = node.args.get("to")
            name = to.this.name if isinstance(to, exp.DataType) and hasattr(to.this, "name") else ""
            return _type_category(name.replace("U", "", 1) if name.startswith("U") and "INT" in name else name)
        if isinstance(node, (exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.If, exp.Case)):
            branches: list[exp.Expression]
            if isinstance(node, exp.Case):
                branches = [i.args["true"] for i in node.args.get("ifs") or ()]
                if node.args.get("default") is not None:
                    branches.append(node.args["default"])
            elif isinstance(node, exp.If):
                branches = [node.args["true"]] + ([node.args["false"]] if node.args.get("false") else [])
            elif isinstance(node, exp.Nullif):
                branches = [node.this]
            else:
                branches = [node.this, *node.expressions]
            cats = {self.category(b) for b in branches} - {"null"}
            return cats.pop() if len(cats) == 1 else None
        return None


# A representative declared type per category, for the columns of a derived table or a union (``output_column``).
_CATEGORY_TYPE = {"number": "DECIMAL", "temporal": "DATETIME", "text": "VARCHAR", "binary": "VARBINARY",
                  "bool": "BOOLEAN", "uuid": "UUID", "enum": "ENUM", "opaque": "JSON"}


def same_category(a: str, b: str) -> bool:
    """Whether two declared type names compare the same way at the router (both known)."""
    ca, cb = _type_category(a), _type_category(b)
    return ca is not None and ca == cb


def output_column(node: exp.Expression, name: str, scope: Sequence[TableRef], dialect: str) -> VColumn | None:
    """What the router knows of the values of ``node`` (a select expression over ``scope``) as a declared column
    named ``name``: a column's own declaration, else its type category and collation; None when unknown."""
    types = _Types(scope, dialect, arithmetic_is_number=True)
    inner = _unwrap(node)
    if isinstance(inner, exp.Column):
        decl = types.declared(inner)
        return dataclasses.replace(decl, name=name) if decl is not None else None
    cat = types.category(inner)
    if cat is None or cat not in _CATEGORY_TYPE:
        return None
    coll = types.collation(inner) if cat == "text" else None
    return VColumn(name=name, type=_CATEGORY_TYPE[cat], collation_name=coll or "")


def value_category(value: Any) -> str | None:
    """The comparison category of a Python value as the backends return it (None: NULL or unknown)."""
    import datetime as dt
    import uuid

    if value is None or isinstance(value, (tuple, list)):
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (dt.date, dt.time, dt.timedelta)):
        return "temporal"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "binary"
    if isinstance(value, uuid.UUID):
        return "uuid"
    return None


@dataclass(frozen=True, slots=True)
class ValueCategory:
    """Guard: the statement value ``arg`` is of comparison category ``category`` (the plan compares an expression
    built from it natively, or with a weight string, because of that)."""

    arg: Arg
    category: str

    def holds(self, binds: Any) -> bool:
        from router.planner.values import evaluate

        return value_category(evaluate(self.arg, binds)) == self.category


def _volatile(node: exp.Expression) -> bool:
    return any(isinstance(n, (exp.Rand, exp.Uuid)) for n in node.walk())


def _is_constant(node: exp.Expression) -> bool:
    """No column, aggregate, star or volatile function: the same value on every row."""
    for n in node.walk():
        if isinstance(n, (exp.Column, exp.Star, exp.AggFunc, exp.Rand, exp.Uuid, exp.Anonymous, exp.Subquery,
                          exp.Select, exp.Window, exp.RowNumber)):
            return False
    return True


# --- text of expressions --------------------------------------------------------------------------------------
def _sql(node: exp.Expression, dialect: str) -> str:
    """Text of an expression for plan descriptions: functions in lower case, placeholders as ``:vN``."""
    text = node.sql(dialect=dialect, normalize_functions="lower")
    text = re.sub(r"%\(v(\d+)\)s", r":v\1", text)
    return re.sub(r"\bDISTINCT\b", "distinct", text)


class _Canon:
    """Canonical text of an expression, so that ``id``, ``user.id`` and ``USER.ID`` (MySQL) compare equal.

    The statement's literals are placeholders, one per occurrence: ``SELECT score % 3 … GROUP BY score % 3`` reads
    ``score % :v1`` and ``score % :v2``. With ``ctx``, a placeholder of a known plan-time value stands for the
    first placeholder of an equal value (same type, not a float, not NULL), so the two compare equal. A plan that
    matched expressions that way holds only while those values stay equal: the first time two different texts
    share a canonical one, ``SameValue`` guards on their placeholders are recorded (other values plan afresh)."""

    def __init__(self, scope: Sequence[TableRef], dialect: str, ctx: PlanContext | None = None) -> None:
        self.scope = list(scope)
        self.dialect = dialect
        self.ctx = ctx
        self._first: dict[tuple[type, Any], int] = {}  # (type, value) -> the first placeholder index holding it
        self._seen: dict[str, list[int]] = {}  # canonical text -> the placeholder indices of its first text
        self._guarded: set[tuple[int, int]] = set()
        self._params: set[int] = set()  # placeholders that are the client's bind parameters

    def _placeholder_index(self, node: exp.Placeholder) -> int | None:
        name = node.name
        if self.ctx is None or not (name.startswith("v") and name[1:].isdigit()):
            return None
        index = int(name[1:]) - 1
        values = self.ctx.values
        if not (0 <= index < len(values)):
            return None
        value = values[index]
        if not self.ctx.value_known(index):
            from cython_ext.fpvalues import Param
            from router.planner.runvars import RunTimeValue

            if isinstance(value, Param) and not isinstance(value, RunTimeValue):  # ``$1`` twice: one value always
                first = self._first.setdefault((Param, (value.key, value.is_list)), index)
                self._params.add(index)
                return first
            return None
        if value is None or isinstance(value, (float, tuple, list, bool)) or not isinstance(value, Hashable):
            return None
        if isinstance(value, Decimal) and not value.is_finite():
            return None
        return self._first.setdefault((type(value), value), index)

    def _guard(self, key: str, indices: list[int]) -> None:
        first = self._seen.setdefault(key, indices)
        if first is indices or first == indices or self.ctx is None:
            return
        from router.planner.dml import SameValue

        for a, b in zip(first, indices, strict=False):
            if a != b and (a, b) not in self._guarded and not (a in self._params and b in self._params):
                self._guarded.add((a, b))
                self.ctx.guards.append(SameValue(Arg(a), Arg(b)))  # type: ignore[arg-type]

    def column_key(self, col: exp.Column) -> tuple[str, str]:
        name = column_name(col, self.dialect)
        if self.dialect == "mysql":
            name = name.lower()
        owner = column_owner(col, self.scope, self.dialect) if self.scope else None
        if owner is not None:
            qual = owner.alias
        else:
            qual = ident(col.args.get("table"), self.dialect) if col.args.get("table") is not None else ""
        return (qual.lower() if self.dialect == "mysql" else qual), name

    def __call__(self, node: exp.Expression) -> str:
        node = _unwrap(node)

        def fix(n: exp.Expression) -> exp.Expression:
            if isinstance(n, exp.Column) and not isinstance(n.this, exp.Star):
                qual, name = self.column_key(n)
                return exp.Column(this=exp.to_identifier(name, quoted=True),
                                  table=exp.to_identifier(qual, quoted=True) if qual else None)
            if isinstance(n, exp.Paren):
                return n.this
            if isinstance(n, exp.Placeholder):
                index = self._placeholder_index(n)
                if index is not None:
                    indices.append(int(n.name[1:]) - 1)
                    return exp.Placeholder(this=f"v{index + 1}")
            return n

        indices: list[int] = []
        key = node.transform(fix, copy=True).sql(dialect=self.dialect)
        if indices:
            self._guard(key, indices)
        return key


# --- leaves: aggregate calls ----------------------------------------------------------------------------------
# Aggregate functions of MySQL/MariaDB and PostgreSQL that sqlglot may parse as plain (anonymous) functions; a
# user-defined aggregate (CREATE AGGREGATE) cannot be told from a function and is sent as a scalar function.
AGGREGATE_NAMES = frozenset("""
    json_arrayagg json_objectagg json_agg jsonb_agg json_object_agg jsonb_object_agg xmlagg every range_agg
    range_intersect_agg std stddev stddev_pop stddev_samp variance var_pop var_samp mode percentile_cont
    percentile_disc array_agg string_agg group_concat bit_and bit_or bit_xor bool_and bool_or any_value count sum
    avg min max corr covar_pop covar_samp regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx
    regr_sxy regr_syy approx_count_distinct median cume_dist percent_rank rank dense_rank
""".split())


def _is_aggregate_call(node: exp.Expression) -> bool:
    if isinstance(node, (exp.AggFunc, exp.WithinGroup)):
        return True
    return isinstance(node, exp.Anonymous) and str(node.this).lower() in AGGREGATE_NAMES


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.WithinGroup):
        return f"{_function_name(node.this)} … WITHIN GROUP"
    if isinstance(node, exp.Anonymous):
        return str(node.this).upper()
    return node.sql_name() if isinstance(node, exp.Func) else node.key.upper()


def _is_leaf(node: exp.Expression) -> bool:
    return _is_aggregate_call(node) or (isinstance(node, exp.Filter) and _is_aggregate_call(node.this))


def _leaves(node: exp.Expression | None) -> list[exp.Expression]:
    """The aggregate calls in ``node``, outermost first (not those nested inside another)."""
    if node is None:
        return []
    out: list[exp.Expression] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if _is_leaf(n):
            out.append(n)
            continue
        if isinstance(n, (exp.Subquery, exp.Window, *QUERY_NODES)):
            continue  # a nested query's aggregates are its own; a window function is not an aggregate
        stack.extend(reversed(list(n.iter_expressions())))
    return out


# --- analysis ---------------------------------------------------------------------------------------------------
@dataclass
class _Item:
    node: exp.Expression  # as in the select list (with its alias)
    expr: exp.Expression  # without the alias
    alias: str | None
    name: str


@dataclass
class _Key:
    """A GROUP BY or ORDER BY key: its expression, and the select item it names (by position, alias or equality)."""

    expr: exp.Expression
    item: int | None
    desc: bool = False
    nulls_first: bool = True


class _Horizon:
    """The horizon of one SELECT, resolved: items, keys, HAVING, DISTINCT, LIMIT."""

    def __init__(self, select: exp.Select, ctx: PlanContext, scope: Sequence[TableRef]) -> None:
        self.select = select
        self.ctx = ctx
        self.dialect = ctx.session.dialect
        self.scope = list(scope)
        self.canon = _Canon(scope, self.dialect, ctx)
        _reject(select)
        self.items = [self._item(e) for e in select.expressions]
        self.star = any(_is_star(i.expr) for i in self.items)
        group = select.args.get("group")
        self.group = [self._group_key(g) for g in (group.expressions if group is not None else [])]
        order = select.args.get("order")
        self.order: list[_Key] = []
        for o in order.expressions if order is not None else []:
            key = self._order_key(o)
            if key is not None:
                self.order.append(key)
        having = select.args.get("having")
        self.having: exp.Expression | None = having.this if having is not None else None
        self.distinct = select.args.get("distinct") is not None
        self.count, self.offset = _limit_values(select, self.dialect)
        self.aggregated = bool(self.group) or any(
            _leaves(n) for n in [*(i.expr for i in self.items), self.having, *(k.expr for k in self.order)])
        if self.aggregated and self.star:
            raise UnsupportedError("SELECT * with aggregation across shards is not supported")

    def _item(self, node: exp.Expression) -> _Item:
        alias = node.alias if isinstance(node, exp.Alias) else None
        expr = node.this if isinstance(node, exp.Alias) else node
        if alias is not None and self.dialect == "postgres" and isinstance(node.args.get("alias"), exp.Identifier):
            alias = ident(node.args["alias"], self.dialect)
        return _Item(node, expr, alias, alias or _sql(expr, self.dialect))

    def _position(self, node: exp.Expression, clause: str) -> int | None:
        if isinstance(node, exp.Literal) and not node.is_string and node.is_int:
            pos = int(node.this)
            if self.star and any(_is_star(i.expr) for i in self.items[:pos]):
                raise UnsupportedError(f"{clause} by position after a * across shards is not supported")
            if not 1 <= pos <= len(self.items):
                raise UnknownColumnError(f"unknown column '{pos}' in '{clause.lower()} clause'")
            return pos - 1
        return None

    def _alias_item(self, node: exp.Expression) -> int | None:
        if not isinstance(node, exp.Column) or node.args.get("table") is not None or isinstance(node.this, exp.Star):
            return None
        name = column_name(node, self.dialect)
        for i, item in enumerate(self.items):
            if item.alias is not None and (item.alias == name or (self.dialect == "mysql"
                                                                   and item.alias.lower() == name.lower())):
                return i
        return None

    def item_matching(self, node: exp.Expression) -> int | None:
        key = self.canon(node)
        for i, item in enumerate(self.items):
            if not _is_star(item.expr) and self.canon(item.expr) == key:
                return i
        return None

    def _may_be_table_column(self, name: str) -> bool:
        for ref in self.scope:
            if ref.table is None or not ref.table.column_list_authoritative:
                return True
            if any(c.name.lower() == name.lower() for c in ref.table.columns):
                return True
        return False

    def _group_key(self, node: exp.Expression) -> _Key:
        pos = self._position(node, "GROUP BY")
        if pos is not None:
            return _Key(self.items[pos].expr, pos)
        alias = self._alias_item(node)
        if alias is not None and not self._may_be_table_column(column_name(node, self.dialect)):  # type: ignore[arg-type]
            return _Key(self.items[alias].expr, alias)
        return _Key(node, self.item_matching(node))

    def _order_key(self, node: exp.Ordered) -> _Key | None:
        inner = node.this
        desc = bool(node.args.get("desc"))
        nulls = node.args.get("nulls_first")
        nulls_first = bool(nulls) if nulls is not None else (not desc if self.dialect == "mysql" else desc)
        pos = self._position(inner, "ORDER BY")
        if pos is not None:
            return _Key(self.items[pos].expr, pos, desc, nulls_first)
        alias = self._alias_item(inner)
        if alias is not None:
            return _Key(self.items[alias].expr, alias, desc, nulls_first)
        if _volatile(inner):  # RAND(): computed once per row, as a hidden column the shards sort by
            return _Key(inner, None, desc, nulls_first)
        if _is_constant(inner):
            return None  # ORDER BY NULL, or a constant: no order
        if isinstance(inner, exp.Collate):  # a selected expression under a collation: the same column
            return _Key(inner, self.item_matching(inner.this), desc, nulls_first)
        return _Key(inner, self.item_matching(inner), desc, nulls_first)

    def item_names(self) -> list[str]:
        return [i.name for i in self.items]


def _windows(select: exp.Select) -> list[exp.Window]:
    return [n for n in own_nodes(select) if isinstance(n, exp.Window)]


def _check_windows(select: exp.Select, local: Callable[[list[exp.Expression]], bool], aggregated: bool) -> None:
    """Window functions run on the shards, and are exact there only when each partition lives on one shard (its
    PARTITION BY covers a primary vindex) and no aggregation happens at the router before them."""
    for window in _windows(select):
        if aggregated:
            raise UnsupportedError("window functions over aggregates merged across shards are not supported")
        if not local(list(window.args.get("partition_by") or [])):
            raise UnsupportedError("window functions across shards are not supported unless PARTITION BY includes "
                                   "the table's primary vindex column(s)")


def _reject(select: exp.Select) -> None:
    for node in own_nodes(select):
        if isinstance(node, (exp.Rollup, exp.Cube, exp.GroupingSets)):
            raise UnsupportedError(f"GROUP BY {node.key.upper().replace('GROUPINGSETS', 'GROUPING SETS')} across "
                                   "shards is not supported")
    group = select.args.get("group")
    if group is not None:
        for key in ("rollup", "cube", "grouping_sets", "totals"):
            if group.args.get(key):
                raise UnsupportedError(f"GROUP BY … WITH {key.upper()} across shards is not supported")
    distinct = select.args.get("distinct")
    if distinct is not None and distinct.args.get("on") is not None:
        raise UnsupportedError("DISTINCT ON across shards is not supported")
    if select.args.get("into") is not None:
        raise UnsupportedError("SELECT … INTO across shards is not supported")


def _limit_value(node: exp.Expression | None, dialect: str, what: str) -> ValueExpr | None:
    if node is None or isinstance(node, exp.Null) or (isinstance(node, exp.Var) and node.name.upper() == "ALL"):
        return None
    value = to_value(node)
    if value is None:
        folded = ev.compile_expr(node, dialect)
        if isinstance(folded, ev.Lit):
            value = Const(folded.value)
        else:  # ``LIMIT 1 + 1`` (a placeholder now): computed when the plan is bound, checked by the Limit
            value = arith_value(node, dialect=dialect)
            if value is None:
                raise UnsupportedError(f"{what} {node.sql(dialect=dialect)} across shards is not supported")
    if isinstance(value, Const):
        v = value.value
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise InvalidValueError(f"{what} needs a non-negative integer, not {v!r}")
    elif not isinstance(value, (Arg, Arith)):
        raise UnsupportedError(f"{what} {node.sql(dialect=dialect)} across shards is not supported")
    return value


def _limit_values(select: exp.Select, dialect: str) -> tuple[ValueExpr | None, ValueExpr | None]:
    limit = select.args.get("limit")
    count: ValueExpr | None = None
    if isinstance(limit, exp.Fetch):
        opts = limit.args.get("limit_options")
        if opts is not None and (opts.args.get("with_ties") or opts.args.get("percent")):
            raise UnsupportedError("FETCH … WITH TIES / PERCENT across shards is not supported")
        count = _limit_value(limit.args.get("count"), dialect, "FETCH") if limit.args.get("count") is not None \
            else Const(1)
    elif isinstance(limit, exp.Limit):
        count = _limit_value(limit.expression, dialect, "LIMIT")
    offset = select.args.get("offset")
    off = _limit_value(offset.expression, dialect, "OFFSET") if offset is not None else None
    if isinstance(off, Const) and off.value == 0:
        off = None
    return count, off


# --- comparing keys ----------------------------------------------------------------------------------------------
_CLAUSE = {"order": "ORDER BY", "group": "GROUP BY", "distinct": "DISTINCT", "minmax": "MIN/MAX"}

@dataclass(frozen=True)
class _Cmp:
    """How the router compares one key: a weight string (MySQL), a code-point collation, or natively."""

    weight: bool = False  # needs weight_string(key)
    collation: str | None = None  # "C"
    wrap_collate: bool = False  # add COLLATE "C" to the shard's ORDER BY
    orderable: bool = True  # False: PostgreSQL key of unknown type, for grouping: group by hash
    sort_by_weight: bool = False  # the shards must sort by weight_string(key) itself (MySQL ENUM/SET)


def _comparator(node: exp.Expression, purpose: str, types: _Types, backend: str) -> _Cmp:
    """``purpose``: "order" (a user-visible order), "group" (merge or hash by key), "distinct" (equality only),
    "minmax" (MIN/MAX across partials)."""
    if _is_constant(node):
        return _Cmp()
    cat = types.category(node)
    text = node.sql(dialect=types.dialect)
    clause = _CLAUSE[purpose]
    if cat == "opaque" or (cat == "enum" and (purpose == "order" or (purpose == "minmax" and backend != "mysql"))):
        raise UnsupportedError(f"{clause} on {text} across shards is not supported (the router cannot compare its "
                               f"type as the database does)")
    if cat == "enum":  # equality, and MySQL's MIN/MAX, use the label's text; the database sorts by position
        if backend == "mysql":
            return _Cmp(weight=True, sort_by_weight=True)
        return _Cmp(orderable=purpose != "group")
    if cat in _NATIVE:
        return _Cmp()
    if backend == "mysql":
        return _Cmp(weight=True)
    if purpose == "distinct":
        return _Cmp()  # equality under a deterministic collation is byte equality
    coll = types.collation(node)
    if coll is not None:
        if ev.codepoint_collation(coll):
            return _Cmp(collation="C")
        raise UnsupportedError(f"collation {coll} of {text} is not supported across shards (only C/POSIX)")
    if cat == "text":
        if purpose == "group":
            return _Cmp(collation="C", wrap_collate=True)
        raise UnsupportedError(
            f"{clause} on text {text} across PostgreSQL shards needs a known collation: write COLLATE \"C\" or "
            "declare the column's collation_name in the VSchema")
    return _Cmp(orderable=purpose != "group")


# --- column sources ---------------------------------------------------------------------------------------------
class _ShardColumns:
    """The shard query's select list, built up: items first, then hidden helper columns."""

    def __init__(self, canon: _Canon) -> None:
        self.nodes: list[exp.Expression] = []
        self.keys: dict[str, int] = {}
        self.canon = canon

    def add(self, node: exp.Expression, *, fresh: bool = False) -> int:
        key = self.canon(node)
        if not fresh and key in self.keys:
            return self.keys[key]
        self.nodes.append(node.copy())
        self.keys.setdefault(key, len(self.nodes) - 1)
        return len(self.nodes) - 1

    def find(self, node: exp.Expression) -> int | None:
        return self.keys.get(self.canon(node))

    def weight(self, node: exp.Expression) -> int:
        return self.add(exp.WeightString(this=_unwrap(node).copy()))

    @property
    def width(self) -> int:
        return len(self.nodes)


def _run_var(node: exp.Expression, ctx: PlanContext | None) -> ev.Expr | None:
    """A run-time value the router reads itself (a pulled-out scalar in HAVING: ``COUNT(*) > (SELECT …)``)."""
    if ctx is None or not isinstance(node, exp.Placeholder):
        return None
    marker = runvars.marker_of(node, ctx)
    if marker is None:
        return None
    if isinstance(marker.expr, JoinVar):
        return ev.RunVar(marker.expr.name)
    raise UnsupportedError("IN (subquery) in an expression the router computes (HAVING, or over a join across "
                           "shards) is not supported")


class _MemoryColumns:
    """A pre-projection over an input whose columns are known expressions (``plan_horizon_over``)."""

    def __init__(self, columns: Sequence[exp.Expression], canon: _Canon, dialect: str, types: _Types) -> None:
        self.inputs = [canon(c) for c in columns]
        self.input_nodes = list(columns)
        self.canon = canon
        self.dialect = dialect
        self.types = types
        self.exprs: list[ev.Expr] = []
        self.names: list[str] = []
        self.keys: dict[str, int] = {}

    def resolve_input(self, node: exp.Expression) -> ev.Expr | None:
        run_var = _run_var(node, self.types.ctx)
        if run_var is not None:
            return run_var
        key = self.canon(node)
        if key in self.inputs:
            return ev.Col(self.inputs.index(key))
        n = _unwrap(node)
        if isinstance(n, exp.WeightString):  # weight_string(c) where c names an input column another way
            inner = self.resolve_input(n.this)
            if isinstance(inner, ev.Col):
                target = self.inputs[inner.offset]
                for i, c in enumerate(self.input_nodes):
                    c = _unwrap(c)
                    if isinstance(c, exp.WeightString) and self.canon(c.this) == target:
                        return ev.Col(i)
            return None
        if isinstance(n, exp.Column) and n.args.get("table") is None:  # unqualified: a unique name among inputs
            name = self.canon.column_key(n)[1]
            hits = [i for i, c in enumerate(self.input_nodes)
                    if isinstance(_unwrap(c), exp.Column) and self.canon.column_key(_unwrap(c))[1] == name]  # type: ignore[arg-type]
            if len(hits) == 1:
                return ev.Col(hits[0])
        return None

    def add(self, node: exp.Expression, *, fresh: bool = False) -> int:
        key = self.canon(node)
        if not fresh and key in self.keys:
            return self.keys[key]
        if _is_leaf(_unwrap(node)):
            raise UnsupportedError(f"{node.sql(dialect=self.dialect)} is not available here")
        compiled = ev.compile_expr(_unwrap(node), self.dialect, self.resolve_input,
                                   collation_of=self.types.declared_collation)
        self.exprs.append(compiled)
        self.names.append(_sql(_unwrap(node), self.dialect))
        self.keys.setdefault(key, len(self.exprs) - 1)
        return len(self.exprs) - 1

    def add_constant(self) -> int:
        self.exprs.append(ev.Lit(None))
        self.names.append("_")
        return len(self.exprs) - 1

    def find(self, node: exp.Expression) -> int | None:
        return self.keys.get(self.canon(node))

    def weight(self, node: exp.Expression) -> int:
        ws = exp.WeightString(this=_unwrap(node).copy())
        if self.resolve_input(ws) is None:
            raise UnsupportedError(f"comparing {node.sql(dialect=self.dialect)} in router memory needs "
                                   f"{ws.sql(dialect='mysql')} from the input (see horizon_needs)")
        return self.add(ws)

    @property
    def width(self) -> int:
        return len(self.exprs)

    def identity(self, input_width: int) -> bool:
        return len(self.exprs) == input_width and all(
            isinstance(e, ev.Col) and e.offset == i for i, e in enumerate(self.exprs))


# --- aggregation --------------------------------------------------------------------------------------------------
@dataclass
class _SortKey:
    expr: ev.Expr
    desc: bool
    nulls_first: bool
    weight: int | None = None  # column (in the current space) of its weight string
    collation: str | None = None
    node: exp.Expression | None = None


def _order_param(col: int, key: _Key | _SortKey, weight: int | None, collation: str | None) -> OrderByParam:
    return OrderByParam(col, key.desc, weight if weight is not None else -1, collation, key.nulls_first)


def _grouping_key(node: exp.Expression, backend: str) -> _Key:
    """An ascending sort key that only serves grouping: NULLs where the backend puts them by default."""
    return _Key(node, None, False, backend != "postgres")


class _Aggregation:
    """Plans the aggregation of a horizon onto a column source: which columns the input must provide (the shard
    query's select list, or a pre-projection), the ``Aggregate``'s params, and a resolver for what follows."""

    def __init__(self, h: _Horizon, types: _Types, source: Any, partial: bool, backend: str,
                 shard_local: Callable[[list[exp.Expression]], bool]) -> None:
        self.h = h
        self.types = types
        # values the router computes itself (over aggregates): arithmetic is numeric whatever its operands
        self.router_types = _Types(types.scope, types.dialect, arithmetic_is_number=True, ctx=types.ctx)
        self.src = source
        self.partial = partial
        self.backend = backend
        self.dialect = h.dialect
        self.canon = h.canon
        self.shard_local = shard_local
        self.params: dict[int, AggregateParam] = {}
        self.group_cols: dict[str, int] = {}
        self.group_params: list[GroupByParam] = []
        self.group_cmp: list[_Cmp] = []
        self.leaf_exprs: dict[str, ev.Expr] = {}
        self.any_cols: dict[str, int] = {}
        self.weights: dict[int, int] = {}  # column -> its weight column
        self.collations: dict[int, str] = {}  # column -> "C"
        self.item_cols: list[int | None] = []  # the column an item is, when it is one as-is
        self.distinct_arg: exp.Expression | None = None
        self.distinct_col: int | None = None
        self.distinct_weight: int | None = None
        self.distinct_cmp: _Cmp | None = None
        self.pushed_having: list[exp.Expression] = []
        self.pending_weights: list[tuple[int, exp.Expression]] = []
        self.planning_items = False
        self.router_having: list[exp.Expression] = []
        self.group_keys = [self.canon(k.expr) for k in h.group]
        # Shard-local DISTINCT aggregates stay on the shards only when no other DISTINCT aggregate makes the shards
        # group by its argument too (a per-subgroup distinct count does not add up).
        distinct_args: list[list[exp.Expression]] = []
        for node in [*(i.expr for i in h.items), h.having, *(k.expr for k in h.order)]:
            for leaf in _leaves(node):
                agg_node = leaf.this if isinstance(leaf, exp.Filter) else leaf
                if isinstance(agg_node.this, exp.Distinct) and not isinstance(agg_node, (exp.Min, exp.Max)):
                    distinct_args.append(list(agg_node.this.expressions))
        self.local_distinct = partial and all(shard_local(a) for a in distinct_args)

    # resolver over the aggregate's output
    def resolve(self, node: exp.Expression) -> ev.Expr | None:
        run_var = _run_var(node, self.h.ctx)
        if run_var is not None:
            return run_var
        key = self.canon(node)
        if key in self.group_cols:
            return ev.Col(self.group_cols[key])
        inner = _unwrap(node)
        if _is_leaf(inner):
            return self.leaf_exprs[key]
        if isinstance(inner, exp.Column) and key in self.any_cols:
            return ev.Col(self.any_cols[key])
        return None

    def compile(self, node: exp.Expression) -> ev.Expr:
        return ev.compile_expr(node, self.dialect, self.resolve, collation_of=self.types.declared_collation)

    # leaves
    def _alias(self, node: exp.Expression, alias: str | None) -> str:
        if alias:
            return alias
        node = _unwrap(node)
        if isinstance(node, exp.GroupConcat):  # as written: sqlglot turns group_concat(a, b) into CONCAT(a, b)
            this = node.this
            args = this.expressions if isinstance(this, exp.Concat) else [this]
            sep = node.args.get("separator")
            tail = f" separator {_sql(sep, self.dialect)}" if sep is not None else ""
            name = "string_agg" if self.dialect == "postgres" else "group_concat"
            if self.dialect == "postgres":
                return f"string_agg({', '.join(_sql(a, self.dialect) for a in [*args, *([sep] if sep else [])])})"
            return f"{name}({', '.join(_sql(a, self.dialect) for a in args)}{tail})"
        return _sql(node, self.dialect)

    def _param(self, op: AggregateOp, col: int, alias: str, weight: int | None = None, collation: str | None = None,
               separator: ValueExpr | None = None) -> None:
        existing = self.params.get(col)
        if existing is not None and existing.op is op and weight is None:
            return
        self.params[col] = AggregateParam(op, col, alias, weight if weight is not None else -1, collation, separator)
        if weight is not None:
            self.weights[col] = weight
        if collation is not None:
            self.collations[col] = collation

    def leaf(self, node: exp.Expression, item: _Item | None = None) -> ev.Expr:
        """Plan one aggregate call; ``item`` when it is a whole select item (its column then sits in place)."""
        key = self.canon(node)
        if key in self.leaf_exprs and item is None:
            return self.leaf_exprs[key]
        expr = self._leaf(_unwrap(node), item)
        self.leaf_exprs.setdefault(key, expr)
        return expr

    def _column(self, node: exp.Expression, item: _Item | None, fresh: bool = False) -> int:
        if self.partial:
            return self.src.add(item.node if item is not None else node, fresh=fresh or item is not None)
        return self.src.add(node, fresh=fresh or item is not None)

    def _leaf(self, node: exp.Expression, item: _Item | None) -> ev.Expr:
        agg, filt = (node.this, node) if isinstance(node, exp.Filter) else (node, None)
        name = _function_name(agg)
        alias = self._alias(node, item.alias if item is not None else None)
        if filt is not None and not self.partial:
            raise UnsupportedError(f"{name}(…) FILTER in router memory is not supported")
        arg = agg.this
        distinct = isinstance(arg, exp.Distinct)
        args = list(arg.expressions) if distinct else ([arg] if arg is not None else [])
        if isinstance(agg, exp.Count):
            args += list(agg.expressions)
        if isinstance(agg, exp.Count):
            if isinstance(arg, exp.Star):
                if self.partial:
                    return ev.Col(self._push(node, item, AggregateOp.COUNT_STAR, alias))
                col = self.src.add_constant()
                self._param(AggregateOp.RAW_COUNT_STAR, col, alias)
                return ev.Col(col)
            if distinct:
                return self._distinct(agg, args, filt, item, alias, AggregateOp.COUNT_DISTINCT)
            if self.partial:
                return ev.Col(self._push(node, item, AggregateOp.COUNT, alias))
            if len(args) != 1:
                raise UnsupportedError("COUNT of several expressions in router memory is not supported")
            col = self.src.add(args[0], fresh=True)
            self._param(AggregateOp.RAW_COUNT, col, alias)
            return ev.Col(col)
        if isinstance(agg, exp.Sum):
            if distinct:
                return self._distinct(agg, args, filt, item, alias, AggregateOp.SUM_DISTINCT)
            return ev.Col(self._simple(node, args, item, AggregateOp.SUM, alias))
        if isinstance(agg, exp.Avg):
            if distinct:
                if self.local_distinct and filt is None:
                    text = _sql(args[0], self.dialect)
                    total = self._push(exp.Sum(this=arg.copy()), None, AggregateOp.SUM, f"sum({text})")
                    count = self._push(exp.Count(this=arg.copy()), None, AggregateOp.SUM_COUNT_DISTINCT,
                                       f"count(distinct {_sql(args[0], self.dialect)})")
                    return ev.AvgDivide(ev.Col(total), ev.Col(count), self.dialect)
                total_e = self._distinct(agg, args, filt, None, f"sum(distinct {_sql(args[0], self.dialect)})",
                                         AggregateOp.SUM_DISTINCT)
                count_e = self._distinct(agg, args, filt, None, f"count(distinct {_sql(args[0], self.dialect)})",
                                         AggregateOp.COUNT_DISTINCT)
                return ev.AvgDivide(total_e, count_e, self.dialect)
            text = _sql(arg, self.dialect)
            sum_node: exp.Expression = exp.Sum(this=arg.copy())
            count_node: exp.Expression = exp.Count(this=arg.copy())
            if filt is not None:
                sum_node = exp.Filter(this=sum_node, expression=filt.expression.copy())
                count_node = exp.Filter(this=count_node, expression=filt.expression.copy())
            total = self._simple(sum_node, args, None, AggregateOp.SUM, f"sum({text})")
            if self.partial:
                count = self._push(count_node, None, AggregateOp.COUNT, f"count({text})")
            else:
                count = self.src.add(arg, fresh=True)
                self._param(AggregateOp.RAW_COUNT, count, f"count({text})")
            return ev.AvgDivide(ev.Col(total), ev.Col(count), self.dialect)
        if isinstance(agg, (exp.Min, exp.Max)):
            op = AggregateOp.MIN if isinstance(agg, exp.Min) else AggregateOp.MAX
            value = args[0] if args else arg
            cmp = _comparator(value, "minmax", self.types, self.backend)
            plain = node if not distinct else (type(agg)(this=value.copy()) if filt is None else node)
            col = self._column(plain, item) if self.partial else self.src.add(value, fresh=True)
            self._param(op, col, alias, None, cmp.collation)
            if cmp.weight:  # placed after the select items, as Vitess places weight strings
                self.pending_weights.append((col, plain if self.partial else value))
                if not self.planning_items:
                    self.place_weights()
            return ev.Col(col)
        if isinstance(agg, (exp.BitwiseAndAgg, exp.BitwiseOrAgg, exp.BitwiseXorAgg, exp.LogicalAnd, exp.LogicalOr)):
            if distinct and isinstance(agg, exp.BitwiseXorAgg):
                raise UnsupportedError("BIT_XOR(DISTINCT …) across shards is not supported")
            op = {exp.BitwiseAndAgg: AggregateOp.BIT_AND, exp.BitwiseOrAgg: AggregateOp.BIT_OR,
                  exp.BitwiseXorAgg: AggregateOp.BIT_XOR, exp.LogicalAnd: AggregateOp.BOOL_AND,
                  exp.LogicalOr: AggregateOp.BOOL_OR}[type(agg)]
            return ev.Col(self._simple(node, args or [arg], item, op, alias))
        if isinstance(agg, exp.AnyValue):
            return ev.Col(self._simple(node, [arg], item, AggregateOp.ANY_VALUE, alias))
        if isinstance(agg, exp.Anonymous) and str(agg.this).lower() == "every" and len(agg.expressions) == 1:
            return ev.Col(self._simple(node, list(agg.expressions), item, AggregateOp.BOOL_AND, alias))
        if isinstance(agg, exp.GroupConcat):
            if not self.partial:
                raise UnsupportedError(f"{name} in router memory is not supported")
            if isinstance(arg, (exp.Distinct, exp.Order)) or filt is not None:
                raise UnsupportedError(f"{name} with DISTINCT, ORDER BY or FILTER across shards is not supported")
            sep_node = agg.args.get("separator")
            sep = to_value(sep_node) if sep_node is not None else None
            if sep_node is not None and sep is None:
                raise UnsupportedError(f"{name} separator {sep_node.sql()} across shards is not supported")
            col = self._column(node, item)
            self._param(AggregateOp.GROUP_CONCAT, col, alias, separator=sep)
            return ev.Col(col)
        raise UnsupportedError(f"aggregate function {name} across shards is not supported (it does not merge exactly)")

    def _push(self, node: exp.Expression, item: _Item | None, op: AggregateOp, alias: str) -> int:
        col = self._column(node, item)
        self._param(op, col, alias)
        return col

    def _simple(self, node: exp.Expression, args: list[exp.Expression], item: _Item | None, op: AggregateOp,
                alias: str) -> int:
        if self.partial:
            return self._push(node, item, op, alias)
        if len(args) != 1:
            raise UnsupportedError(f"{_sql(node, self.dialect)} in router memory is not supported")
        col = self.src.add(args[0], fresh=True)
        self._param(op, col, alias)
        return col

    def _distinct(self, agg: exp.Expression, args: list[exp.Expression], filt: exp.Expression | None,
                  item: _Item | None, alias: str, op: AggregateOp) -> ev.Expr:
        name = _function_name(agg)
        if filt is not None:
            raise UnsupportedError(f"{name}(DISTINCT …) FILTER across shards is not supported")
        if self.local_distinct and not isinstance(agg, exp.Avg):
            # equal values live on one shard: each shard's DISTINCT aggregate is final for its values
            col = self._column(agg, item)
            self._param(AggregateOp.SUM_COUNT_DISTINCT if op is AggregateOp.COUNT_DISTINCT else AggregateOp.SUM,
                        col, alias)
            return ev.Col(col)
        if len(args) != 1:
            raise UnsupportedError(f"{name}(DISTINCT …) of several expressions across shards is not supported")
        arg = args[0]
        if self.distinct_arg is not None and self.canon(self.distinct_arg) != self.canon(arg):
            raise UnsupportedError("aggregates with DISTINCT on different expressions across shards are not "
                                   "supported")
        if self.distinct_arg is None:
            self.distinct_arg = arg
            self.distinct_cmp = _comparator(arg, "group", self.types, self.backend)
        col = self.src.add(arg, fresh=True) if (item is None or not self.partial) else \
            self.src.add(_with_alias(arg, item.alias), fresh=True)
        weight = None
        if self.distinct_cmp is not None and self.distinct_cmp.weight:
            weight = self.src.weight(arg)
            self.distinct_weight = weight
        if self.distinct_col is None:
            self.distinct_col = col
        self._param(op, col, alias, weight, self.distinct_cmp.collation if self.distinct_cmp else None)
        return ev.Col(col)

    # items, keys and the rest
    def plan_items(self) -> None:
        self.planning_items = True
        try:
            self._plan_items()
        finally:
            self.planning_items = False
        self.place_weights()

    def _plan_items(self) -> None:
        group_set = set(self.group_keys)
        for item in self.h.items:
            inner = _unwrap(item.expr)
            key = self.canon(item.expr)
            if _is_leaf(inner):
                expr = self.leaf(item.expr, item)
                self.item_cols.append(expr.offset if isinstance(expr, ev.Col) else None)
            elif key in group_set:
                col = self._column(item.expr, item)
                self.group_cols.setdefault(key, col)
                self.item_cols.append(col)
            elif _leaves(item.expr):
                self.collect(item.expr)
                self.item_cols.append(None)
            else:
                col = self._column(item.expr, item)
                if not _is_constant(item.expr) and isinstance(inner, exp.Column):
                    self.any_cols.setdefault(key, col)
                self._param(AggregateOp.ANY_VALUE, col, item.name)
                self.item_cols.append(col)

    def place_weights(self) -> None:
        """Weight strings of MIN/MAX values, after the columns planned so far."""
        pending, self.pending_weights = self.pending_weights, []
        for col, node in pending:
            param = self.params[col]
            self._param(param.op, col, param.alias, self.src.weight(node), param.collation)

    def plan_groups(self) -> None:
        for key_node, key in zip(self.h.group, self.group_keys, strict=True):
            col = self.group_cols.get(key)
            if col is None:
                col = self.src.add(key_node.expr)
                self.group_cols[key] = col
                self.params.pop(col, None)
            cmp = _comparator(key_node.expr, "group", self.types, self.backend)
            weight = self.src.weight(key_node.expr) if cmp.weight else None
            if weight is not None:
                self.weights[col] = weight
            if cmp.collation is not None:
                self.collations[col] = cmp.collation
            self.params.pop(col, None)
            if all(g.col != col for g in self.group_params):
                self.group_params.append(GroupByParam(col, weight if weight is not None else -1, cmp.collation))
                self.group_cmp.append(cmp)

    def plan_having(self) -> None:
        conjuncts = split_and(self.h.having) if self.h.having is not None else []
        for conj in conjuncts:
            conj = self.expand_aliases(conj)
            if self.partial and self.h.group and self.grouped_only(conj):
                # true for a group exactly when it is true for each shard's part of it
                self.pushed_having.append(conj)
            else:
                self.collect(conj)
                self.router_having.append(conj)

    def grouped_only(self, node: exp.Expression) -> bool:
        """Whether ``node`` reads nothing but GROUP BY keys and constants (no aggregate, no other column)."""
        if self.canon(node) in self.group_keys:
            return True
        inner = _unwrap(node)
        if _is_leaf(inner) or isinstance(inner, (exp.Column, exp.Star, exp.Subquery, *QUERY_NODES)):
            return False
        return all(self.grouped_only(child) for child in inner.iter_expressions())

    def expand_aliases(self, node: exp.Expression) -> exp.Expression:
        """MySQL's HAVING may name select aliases: replace those that are not GROUP BY columns by their
        expressions."""
        if self.dialect != "mysql":
            return node

        def fix(n: exp.Expression) -> exp.Expression:
            if isinstance(n, exp.Column) and self.canon(n) not in self.group_cols:
                i = self.h._alias_item(n)
                if i is not None:
                    return self.h.items[i].expr.copy()
            return n

        return node.transform(fix, copy=True)

    def collect(self, node: exp.Expression) -> None:
        """Make sure everything ``node`` needs after aggregation has a column: aggregates as leaves, other columns
        as ANY_VALUE columns (MySQL's non-grouped columns)."""
        key = self.canon(node)
        if key in self.group_cols:
            return
        if key in self.group_keys:
            self.group_cols[key] = self.src.add(node)
            return
        inner = _unwrap(node)
        if _is_leaf(inner):
            self.leaf(inner)
            return
        if isinstance(inner, (exp.Subquery, *QUERY_NODES)):
            raise UnsupportedError("a subquery in an expression computed at the router (over aggregates) is not "
                                   "supported")
        if isinstance(inner, exp.Column):
            if key not in self.any_cols:
                col = self.src.add(inner)
                self.any_cols[key] = col
                if col not in self.params:
                    self._param(AggregateOp.ANY_VALUE, col, _sql(inner, self.dialect))
            return
        for child in inner.iter_expressions():
            self.collect(child)

    def ensure_comparable(self, node: exp.Expression, purpose: str) -> None:
        """A key compared after aggregation (memory sort, DISTINCT): give it a weight column when it needs one."""
        self.collect(node)
        resolved = self.compile(node)
        types = self.types if isinstance(resolved, ev.Col) else self.router_types
        cmp = _comparator(node, purpose, types, self.backend)
        if not cmp.weight:
            return
        if not isinstance(resolved, ev.Col):
            raise UnsupportedError(f"{'ORDER BY' if purpose == 'order' else 'DISTINCT'} on "
                                   f"{node.sql(dialect=self.dialect)} computed at the router needs a numeric or "
                                   "date/time value (text from MySQL shards is compared through weight strings)")
        col = resolved.offset
        if col in self.weights:
            return
        param = self.params.get(col)
        if param is None or param.op is not AggregateOp.ANY_VALUE:
            raise UnsupportedError(f"comparing {node.sql(dialect=self.dialect)} after aggregation is not supported")
        weight = self.src.weight(node)
        self._param(AggregateOp.ANY_VALUE, col, param.alias, weight)

    def aggregate_params(self) -> tuple[AggregateParam, ...]:
        group_cols = {g.col for g in self.group_params}
        return tuple(p for c, p in sorted(self.params.items()) if c not in group_cols)

    def comparator_of(self, e: ev.Expr, node: exp.Expression | None, purpose: str) -> tuple[int | None, str | None]:
        """(weight column, collation) of a key after aggregation."""
        if isinstance(e, ev.Col):
            if e.offset in self.weights:
                return self.weights[e.offset], None
            if e.offset in self.collations:
                return None, self.collations[e.offset]
        if node is None:
            return None, None
        cmp = _comparator(node, purpose, self.types if isinstance(e, ev.Col) else self.router_types, self.backend)
        if cmp.weight:
            raise UnsupportedError(f"comparing {node.sql(dialect=self.dialect)} at the router needs a weight string")
        return None, cmp.collation


def _with_alias(node: exp.Expression, alias: str | None) -> exp.Expression:
    if not alias:
        return node
    out: exp.Expression = exp.Alias(this=node.copy(), alias=exp.to_identifier(alias, quoted=True))
    return out


# --- the router's stack after the rows are ready -------------------------------------------------------------
def _finish(base: Callable[[int], Primitive], width: int, h: _Horizon, item_exprs: list[ev.Expr],
            having: ev.Expr | None, sort: list[_SortKey], distinct_weights: list[int | None] | None,
            force_projection: bool = False) -> Primitive:
    """Filter (HAVING) → Projection → Distinct → Sort (Memory) → Limit over ``base``, whose rows are ``width``
    columns wide; the visible columns end up first and helpers are truncated by the last stage that needs them."""
    n = len(item_exprs)
    identity = all(isinstance(e, ev.Col) and e.offset == i for i, e in enumerate(item_exprs))
    sort_direct = all(isinstance(k.expr, ev.Col) for k in sort)
    need_projection = force_projection or not identity or not sort_direct
    if need_projection:
        outs: list[ev.Expr] = list(item_exprs)
        names = list(h.item_names())
        described = {e.describe(): i for i, e in enumerate(outs)}

        def place(e: ev.Expr, name: str) -> int:
            d = e.describe()
            if d not in described:
                outs.append(e)
                names.append(name)
                described[d] = len(outs) - 1
            return described[d]

        new_sort = []
        for k in sort:
            col = place(k.expr, k.node.sql() if k.node is not None else k.expr.describe())
            weight = place(ev.Col(k.weight), f"weight_string({names[col]})") if k.weight is not None else None
            new_sort.append(_SortKey(ev.Col(col), k.desc, k.nulls_first, weight, k.collation, k.node))
        sort = new_sort
        if distinct_weights is not None:
            distinct_weights = [place(ev.Col(w), f"weight_string({names[i]})") if w is not None else None
                                for i, w in enumerate(distinct_weights)]
        proj_width = len(outs)
    stages_after = bool(sort) or distinct_weights is not None
    truncate_base = n if (not need_projection and not stages_after and having is None and width > n) else 0
    cur = base(truncate_base)
    if having is not None:
        cur = Filter(having, cur, n if (not need_projection and not stages_after and width > n) else 0)
    cur_width = width
    if need_projection:
        cur = Projection(tuple(outs), tuple(names), cur)
        cur_width = proj_width
    if distinct_weights is not None:
        weights = tuple(w if w is not None else -1 for w in distinct_weights)
        cur = Distinct(tuple(range(n)), cur, n if (not sort and cur_width > n) else 0,
                       weights if any(w >= 0 for w in weights) else ())
    if sort:
        params = []
        for k in sort:
            assert isinstance(k.expr, ev.Col)
            params.append(_order_param(k.expr.offset, k, k.weight, k.collation))
        cur = Sort(tuple(params), cur, n if cur_width > n else 0)
    if h.count is not None or h.offset is not None:
        cur = Limit(h.count, h.offset, cur)
    return cur


# --- shard-local values ---------------------------------------------------------------------------------------
def _preserved_refs(select: exp.Select, scope: Sequence[TableRef]) -> list[TableRef]:
    """Tables whose rows are never NULL-extended by an outer join."""
    refs = list(scope)
    joins = select.args.get("joins") or ()
    out = set(refs)
    seen: list[TableRef] = [r for r in refs if r.node is getattr(select.args.get("from_"), "this", None)]
    for join in joins:
        side = (join.args.get("side") or "").upper()
        right = [r for r in refs if r.node is join.this]
        if side in ("LEFT", "FULL"):
            out.difference_update(right)
        if side in ("RIGHT", "FULL"):
            out.difference_update(seen)
        seen.extend(right)
    return [r for r in refs if r in out]


def _shard_local_checker(select: exp.Select, scope: Sequence[TableRef], dialect: str
                         ) -> Callable[[list[exp.Expression]], bool]:
    """Whether equal values of these expressions always come from one shard: they include every column of the
    primary vindex of a (non NULL-extended) sharded table of the route."""
    preserved = _preserved_refs(select, scope)

    def check(exprs: list[exp.Expression]) -> bool:
        for ref in preserved:
            table = ref.table
            if table is None or ref.keyspace is None or not ref.keyspace.sharded or table.primary_vindex is None:
                continue
            wanted = {c.lower() for c in table.primary_vindex.columns}
            have = set()
            for e in exprs:
                e = _unwrap(e)
                if isinstance(e, exp.Column) and column_owner(e, list(scope), dialect) is ref:
                    have.add(column_name(e, dialect).lower())
            if wanted and wanted <= have:
                return True
        return False

    return check


# --- routes -------------------------------------------------------------------------------------------------------
def _shard_limit(h: _Horizon, tree: exp.Select, ctx: PlanContext) -> str:
    """Set the shards' LIMIT (count + offset, no offset) on ``tree``; returns the upper-limit variable, if used."""
    tree.set("offset", None)
    tree.set("limit", None)
    if h.count is None:
        return ""
    if h.offset is None and not isinstance(h.count, Arith):
        tree.set("limit", exp.Limit(expression=_value_node(h.count, tree)))
        return ""
    if isinstance(h.count, Const) and isinstance(h.offset, Const):
        tree.set("limit", exp.Limit(expression=exp.Literal.number(h.count.value + h.offset.value)))
        return ""
    tree.set("limit", exp.Limit(expression=runvars.placeholder(ctx, JoinVar(UPPER_LIMIT_VAR))))
    return UPPER_LIMIT_VAR


def _value_node(value: ValueExpr, tree: exp.Expression) -> exp.Expression:
    if isinstance(value, Const):
        return exp.Literal.number(value.value)
    assert isinstance(value, Arg)
    return exp.Placeholder(this=f"v{value.index + 1}")


def _build_route(tree: exp.Select, route: TableRoute, refs: list[TableRef], ctx: PlanContext, backend: str,
                 order_by: tuple[OrderByParam, ...] = (), truncate: int = 0, helper_prefix: int = 0) -> Route:
    from router.planner.select import _in_slot

    template = runvars.template(tree, backend, ctx)
    table = ", ".join(sorted({r.table.name for r in refs if r.table is not None}))
    return Route(runvars.resolve_params(route.params(), ctx), template, table=table, order_by=order_by,
                 truncate_columns=truncate, in_slot=_in_slot(template, route, ctx), passthrough=False,
                 helper_prefix=helper_prefix)


def _ordered(node: exp.Expression, key: _Key | None, desc: bool = False, nulls_first: bool | None = None,
             wrap_collate: bool = False, by_weight: bool = False) -> exp.Ordered:
    this = _unwrap(node).copy()
    if by_weight:
        this = exp.WeightString(this=this)
    if wrap_collate:
        this = exp.Collate(this=this, expression=exp.Identifier(this="C", quoted=True))
    d = key.desc if key is not None else desc
    nf = key.nulls_first if key is not None else (nulls_first if nulls_first is not None else not d)
    return exp.Ordered(this=this, desc=True if d else None, nulls_first=nf)


# --- entry points -----------------------------------------------------------------------------------------------
def plan_horizon(select: exp.Select, route: TableRoute, refs: list[TableRef], ctx: PlanContext,
                 derived: Sequence[TableRef] = ()) -> Primitive:
    """The plan of a SELECT whose tables merged into one multi-shard route: as much as possible pushed to the
    shards, the rest merged at the router (see the module docstring). ``derived``: the block's derived tables as
    tables of their own (``router.planner.derived``), for the types of their columns."""
    from router.planner.select import _route_primitive

    ctx = runvars.extend(ctx)
    _reject(select)
    aggregates = any(_leaves(e) for e in select.expressions) or any(
        _leaves(select.args[k]) for k in ("having", "order") if select.args.get(k) is not None)
    if not aggregates and not any(select.args.get(k) is not None
                                  for k in ("group", "having", "order", "limit", "offset", "distinct")):
        if _windows(select):
            _check_windows(select, _shard_local_checker(select, _scope_refs(select, refs) or list(route.tables),
                                                        ctx.session.dialect), False)
        return _route_primitive(select, route, refs, ctx)
    from router.planner.querytext import strip_keyspaces

    strip_keyspaces(refs)
    scope = (_scope_refs(select, refs) + list(derived)) or list(route.tables)
    h = _Horizon(_expand_star(select, scope, ctx.session.dialect) or select, ctx, scope)
    backend = ctx.backend_dialect(route.keyspace.name)
    types = _Types(scope, h.dialect, ctx=ctx)
    local = _shard_local_checker(select, scope, h.dialect)
    router_aggregation = h.aggregated and not (h.group and local([k.expr for k in h.group]))
    _check_windows(h.select, local, router_aggregation)
    if router_aggregation:
        return _plan_aggregated_route(h, route, refs, ctx, backend, types, local)
    return _plan_plain_route(h, route, refs, ctx, backend, types, local)


def _scope_refs(select: exp.Select, refs: list[TableRef]) -> list[TableRef]:
    """The tables of this block's own FROM clause (not of nested queries), as resolved refs."""
    out: list[TableRef] = []
    for table in scope_tables(select):
        index = table.meta.get(REF_KEY)
        if isinstance(index, int) and 0 <= index < len(refs):
            out.append(refs[index])
            continue
        out.extend(r for r in refs if r.node is table)
    return out


def _is_star(node: exp.Expression) -> bool:
    return isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star))


def _from_items(select: exp.Select) -> list[exp.Expression]:
    from_ = select.args.get("from_")
    items = [from_.this] if from_ is not None else []
    return items + [j.this for j in select.args.get("joins") or ()]


def _plain_from(select: exp.Select, scope: Sequence[TableRef]) -> bool:
    """Whether ``*`` means the columns of the scope's tables, in order: every FROM item is one of them and no join
    merges columns (USING, NATURAL)."""
    items = _from_items(select)
    if len(items) != len(scope) or not all(isinstance(i, exp.Table) for i in items):
        return False
    return not any(j.args.get("using") or (j.args.get("method") or "").upper() == "NATURAL"
                   for j in select.args.get("joins") or ())


def _expand_star(select: exp.Select, scope: Sequence[TableRef], dialect: str) -> exp.Select | None:
    """A copy of ``select`` with each ``*``/``t.*`` replaced by the columns the VSchema lists authoritatively;
    None when there is no star or a table's columns are not known."""
    if not any(_is_star(e) for e in select.expressions) or not _plain_from(select, scope):
        return None
    out: list[exp.Expression] = []
    for e in select.expressions:
        if not _is_star(e):
            out.append(e.copy())
            continue
        qual = e.args.get("table") if isinstance(e, exp.Column) else None
        refs = [r for r in scope if qual is None or r.alias == ident(qual, dialect)
                or (dialect == "mysql" and r.alias.lower() == ident(qual, dialect).lower())]
        if not refs:
            return None
        for ref in refs:
            if ref.table is None or not ref.table.column_list_authoritative or not ref.table.columns:
                return None
            for c in ref.table.columns:
                if not c.invisible:
                    out.append(exp.column(c.name, table=ref.alias, quoted=True))
    tree = select.copy()
    tree.set("expressions", out)
    return tree


def _plan_plain_route(h: _Horizon, route: TableRoute, refs: list[TableRef], ctx: PlanContext, backend: str,
                      types: _Types, local: Callable[[list[exp.Expression]], bool]) -> Primitive:
    """No aggregation at the router (none at all, or groups that are shard-local): merge-sort, DISTINCT, LIMIT."""
    tree = h.select.copy()
    prefix_mode = h.star and bool(h.order)
    if prefix_mode and not _plain_from(h.select, h.scope):
        raise UnsupportedError("SELECT * with ORDER BY across shards over a join with USING/NATURAL or a derived "
                               "table needs the columns listed (or listed authoritatively in the VSchema)")
    if h.star and h.distinct:
        raise UnsupportedError("SELECT DISTINCT * across shards needs the table's columns listed authoritatively "
                               "in the VSchema")
    cols = _ShardColumns(h.canon)
    helpers: list[exp.Expression] = []
    n = len(h.items)
    if not prefix_mode:
        for item in h.items:
            cols.nodes.append(item.node.copy())
            if not _is_star(item.expr):
                cols.keys.setdefault(h.canon(item.expr), len(cols.nodes) - 1)

    def helper(node: exp.Expression) -> int:
        if prefix_mode:
            key = h.canon(node)
            for i, existing in enumerate(helpers):
                if h.canon(existing) == key:
                    return i
            helpers.append(node.copy())
            return len(helpers) - 1
        return cols.add(node)

    distinct = h.distinct and not local([i.expr for i in h.items])
    params: list[OrderByParam] = []
    shard_order: list[exp.Ordered] = []
    for n_key, key in enumerate(h.order):
        if distinct and key.item is None:
            raise UnsupportedError("ORDER BY an expression that is not in the select list of a SELECT DISTINCT "
                                   "across shards is not supported")
        if _volatile(key.expr):
            name = f"__sg_order{n_key}"
            col = helper(exp.Alias(this=key.expr.copy(), alias=exp.to_identifier(name)))
            shard_order.append(exp.Ordered(this=exp.column(name), desc=True if key.desc else None,
                                           nulls_first=key.nulls_first))
            params.append(_order_param(col, key, None, None))
            continue
        shard_order.append(_ordered(key.expr, key))
        col = key.item if key.item is not None and not prefix_mode else helper(key.expr)
        cmp = _comparator(key.expr, "order", types, backend)
        weight = helper(exp.WeightString(this=_unwrap(key.expr).copy())) if cmp.weight else None
        params.append(_order_param(col, key, weight, cmp.collation))
    distinct_weights: list[int] = []
    if distinct:
        for item in h.items:
            cmp = _comparator(item.expr, "distinct", types, backend)
            distinct_weights.append(cols.weight(item.expr) if cmp.weight else -1)
    if prefix_mode:
        star_items = [item.node.copy() for item in h.items]
        # MySQL accepts an unqualified * only first in the list: qualify it by every table of the FROM clause
        rewritten: list[exp.Expression] = []
        for node in star_items:
            if isinstance(node, exp.Star):
                rewritten.extend(exp.Column(this=exp.Star(), table=exp.to_identifier(r.alias)) for r in h.scope)
            else:
                rewritten.append(node)
        tree.set("expressions", helpers + rewritten)
    else:
        tree.set("expressions", cols.nodes)
    tree.set("order", exp.Order(expressions=shard_order) if shard_order else None)
    upper = _shard_limit(h, tree, ctx)
    width = len(helpers) + n if prefix_mode else cols.width
    truncate = 0 if prefix_mode or distinct or width == n else n
    r = _build_route(tree, route, refs, ctx, backend, tuple(params), truncate, len(helpers) if prefix_mode else 0)
    cur: Primitive = r
    if distinct:
        weights = tuple(distinct_weights) if any(w >= 0 for w in distinct_weights) else ()
        cur = Distinct(tuple(range(n)), cur, n if width > n else 0, weights)
    if h.count is not None or h.offset is not None:
        cur = Limit(h.count, h.offset, cur, upper)
    return cur


def _plan_aggregated_route(h: _Horizon, route: TableRoute, refs: list[TableRef], ctx: PlanContext, backend: str,
                           types: _Types, local: Callable[[list[exp.Expression]], bool]) -> Primitive:
    cols = _ShardColumns(h.canon)
    agg = _Aggregation(h, types, cols, True, backend, local)
    agg.plan_items()
    agg.plan_groups()
    agg.plan_having()
    # DISTINCT after aggregation is redundant when each output row is unique by its group keys
    visible = {h.canon(i.expr) for i in h.items}
    distinct = h.distinct and bool(h.group) and not all(k in visible for k in agg.group_keys)
    # ORDER BY: given by the merge when every key is a group key (then the remaining group keys follow)
    group_set = set(agg.group_keys)
    orderable = all(c.orderable for c in agg.group_cmp) and (agg.distinct_cmp is None or agg.distinct_cmp.orderable)
    pushed_order = bool(h.group) and orderable and all(h.canon(k.expr) in group_set for k in h.order)
    if pushed_order:
        for k in h.order:  # a user-visible order: the collation rules are stricter than for grouping
            _comparator(k.expr, "order", types, backend)
    memory_sort = [] if pushed_order else list(h.order)
    if any(_volatile(k.expr) for k in memory_sort):
        raise UnsupportedError("ORDER BY RAND() over aggregates merged across shards is not supported")
    for k in memory_sort:
        agg.ensure_comparable(k.expr if k.item is None else h.items[k.item].expr, "order")
    if distinct:
        for item in h.items:
            agg.ensure_comparable(item.expr, "distinct")
    # the shard query
    tree = h.select.copy()
    tree.set("distinct", None)
    tree.set("expressions", cols.nodes)
    group_nodes: list[exp.Expression] = []
    sort_nodes: list[exp.Ordered] = []
    route_order: list[OrderByParam] = []
    ordered_keys: list[tuple[int, _Key | None]] = []  # (group index, order key)
    if pushed_order:
        for k in h.order:
            gi = agg.group_keys.index(h.canon(k.expr))
            if all(gi != g for g, _ in ordered_keys):
                ordered_keys.append((gi, k))
    for gi in range(len(h.group)):
        if all(gi != g for g, _ in ordered_keys):
            ordered_keys.append((gi, None))
    for gkey in h.group:
        group_nodes.append(_unwrap(gkey.expr).copy())
    for gi, gkey in enumerate(h.group):
        gp = next(g for g in agg.group_params if g.col == agg.group_cols[agg.group_keys[gi]])
        if gp.weight_col >= 0:
            group_nodes.append(exp.WeightString(this=_unwrap(gkey.expr).copy()))
    if agg.distinct_arg is not None:
        group_nodes.append(_unwrap(agg.distinct_arg).copy())
        if agg.distinct_weight is not None:
            group_nodes.append(exp.WeightString(this=_unwrap(agg.distinct_arg).copy()))
    variant = "Scalar" if not h.group else ("Ordered" if orderable else "Hash")
    if orderable and (h.group or agg.distinct_arg is not None):
        for gi, key in ordered_keys:
            gkey = h.group[gi]
            col = agg.group_cols[agg.group_keys[gi]]
            gp = next(g for g in agg.group_params if g.col == col)
            cmp = agg.group_cmp[agg.group_params.index(gp)]
            wrap = cmp.wrap_collate and key is None
            okey = key if key is not None else _grouping_key(gkey.expr, backend)
            sort_nodes.append(_ordered(gkey.expr, okey, wrap_collate=wrap, by_weight=cmp.sort_by_weight))
            route_order.append(_order_param(col, okey, gp.weight_col if gp.weight_col >= 0 else None, gp.collation))
        if agg.distinct_arg is not None and agg.distinct_col is not None and agg.distinct_cmp is not None:
            dkey = _grouping_key(agg.distinct_arg, backend)
            sort_nodes.append(_ordered(agg.distinct_arg, dkey, wrap_collate=agg.distinct_cmp.wrap_collate,
                                       by_weight=agg.distinct_cmp.sort_by_weight))
            route_order.append(_order_param(agg.distinct_col, dkey, agg.distinct_weight, agg.distinct_cmp.collation))
    tree.set("group", exp.Group(expressions=group_nodes) if group_nodes else None)
    tree.set("having", exp.Having(this=exp.and_(*agg.pushed_having)) if agg.pushed_having else None)
    tree.set("order", exp.Order(expressions=sort_nodes) if sort_nodes else None)
    tree.set("limit", None)
    tree.set("offset", None)
    r = _build_route(tree, route, refs, ctx, backend, tuple(route_order))
    return _after_aggregation(h, agg, r, cols.width, variant, memory_sort, distinct)


def _after_aggregation(h: _Horizon, agg: _Aggregation, input_: Primitive, width: int, variant: str,
                       memory_sort: list[_Key], distinct: bool) -> Primitive:
    params = agg.aggregate_params()
    groups = tuple(agg.group_params)
    item_exprs: list[ev.Expr] = []
    for item, col in zip(h.items, agg.item_cols, strict=True):
        item_exprs.append(ev.Col(col) if col is not None else agg.compile(item.expr))
    having = None
    if agg.router_having:
        conds = agg.router_having[0] if len(agg.router_having) == 1 else exp.And(
            this=agg.router_having[0], expression=exp.and_(*agg.router_having[1:]))
        having = agg.compile(conds)
    sort: list[_SortKey] = []
    for k in memory_sort:
        e = item_exprs[k.item] if k.item is not None else agg.compile(k.expr)
        node = h.items[k.item].expr if k.item is not None else k.expr
        weight, collation = agg.comparator_of(e, node, "order")
        sort.append(_SortKey(e, k.desc, k.nulls_first, weight, collation, node))
    distinct_weights: list[int | None] | None = None
    if distinct:
        distinct_weights = []
        for item, e in zip(h.items, item_exprs, strict=True):
            weight, _ = agg.comparator_of(e, item.expr, "distinct")
            distinct_weights.append(weight)

    def base(truncate: int) -> Primitive:
        return Aggregate(variant, params, groups, input_, truncate)

    return _finish(base, width, h, item_exprs, having, sort, distinct_weights)


# --- in router memory -------------------------------------------------------------------------------------------
def plan_horizon_over(select: exp.Select, input: Primitive, columns: list[exp.Expression], ctx: PlanContext, *,
                      scope: Sequence[TableRef] = (), backend: str | None = None) -> Primitive:
    """The horizon of ``select`` (select list, GROUP BY, aggregates, HAVING, DISTINCT, ORDER BY, LIMIT) computed in
    router memory over ``input``, whose output columns are ``columns`` in order (raw rows: the FROM and WHERE are
    the input's business). ``scope`` (the tables the columns come from) gives column types and owners; ``backend``
    is the dialect of the databases the values come from (default: the client's), which decides how text is
    compared: MySQL text needs ``weight_string(e)`` among ``columns`` (``horizon_needs`` lists them).

    Aggregation is by hash (``Aggregate`` ``Hash``, or ``Scalar``), with raw-row ops (``count``, ``count_star``,
    ``sum``, ``min``, ``max``, ``count_distinct``, ``sum_distinct``, ``any_value``…); AVG is SUM and COUNT divided
    by a ``Projection``; ORDER BY is a ``Sort`` (Memory); LIMIT a ``Limit``.
    """
    h = _Horizon(select, ctx, scope)
    if h.star:
        raise UnsupportedError("SELECT * over a cross-shard join is not supported here; list the columns")
    backend = backend or h.dialect
    types = _Types(scope, h.dialect, arithmetic_is_number=True, ctx=ctx)
    src = _MemoryColumns(columns, h.canon, h.dialect, types)
    if not h.aggregated:
        return _plain_over(h, input, len(columns), src, types, backend)
    agg = _Aggregation(h, types, src, False, backend, lambda _exprs: False)
    agg.plan_items()
    agg.plan_groups()
    agg.plan_having()
    visible = {h.canon(i.expr) for i in h.items}
    distinct = h.distinct and bool(h.group) and not all(k in visible for k in agg.group_keys)
    for k in h.order:
        agg.ensure_comparable(k.expr if k.item is None else h.items[k.item].expr, "order")
    if distinct:
        for item in h.items:
            agg.ensure_comparable(item.expr, "distinct")
    if src.width == 0:
        src.add_constant()
    pre: Primitive = input if src.identity(len(columns)) else Projection(tuple(src.exprs), tuple(src.names), input)
    variant = "Hash" if h.group else "Scalar"
    return _after_aggregation(h, agg, pre, src.width, variant, list(h.order), distinct)


def _plain_over(h: _Horizon, input_: Primitive, width: int, src: _MemoryColumns, types: _Types,
                backend: str) -> Primitive:
    item_exprs = [ev.compile_expr(i.expr, h.dialect, src.resolve_input, collation_of=types.declared_collation)
                  for i in h.items]
    having = None
    if h.having is not None:  # HAVING without aggregation filters rows (MySQL allows select aliases in it)
        node = h.having
        if h.dialect == "mysql":
            def fix(n: exp.Expression) -> exp.Expression:
                i = h._alias_item(n)
                return h.items[i].expr.copy() if i is not None and src.resolve_input(n) is None else n

            node = node.transform(fix, copy=True)
        having = ev.compile_expr(node, h.dialect, src.resolve_input, collation_of=types.declared_collation)
    sort: list[_SortKey] = []
    for k in h.order:
        node = h.items[k.item].expr if k.item is not None else k.expr
        if h.distinct and k.item is None:
            raise UnsupportedError("ORDER BY an expression that is not in the select list of a SELECT DISTINCT "
                                   "is not supported")
        e = item_exprs[k.item] if k.item is not None else ev.compile_expr(
            node, h.dialect, src.resolve_input, collation_of=types.declared_collation)
        cmp = _comparator(node, "order", types, backend)
        weight = _input_weight(src, node) if cmp.weight else None
        sort.append(_SortKey(e, k.desc, k.nulls_first, weight, cmp.collation, node))
    distinct_weights: list[int | None] | None = None
    if h.distinct:
        distinct_weights = []
        for item in h.items:
            cmp = _comparator(item.expr, "distinct", types, backend)
            distinct_weights.append(_input_weight(src, item.expr) if cmp.weight else None)

    def base(truncate: int) -> Primitive:
        return input_

    return _finish(base, width, h, item_exprs, having, sort, distinct_weights,
                   force_projection=width != len(h.items) or any(
                       not (isinstance(e, ev.Col) and e.offset == i) for i, e in enumerate(item_exprs)))


def _input_weight(src: _MemoryColumns, node: exp.Expression) -> int:
    ws = exp.WeightString(this=_unwrap(node).copy())
    hit = src.resolve_input(ws)
    if not isinstance(hit, ev.Col):
        raise UnsupportedError(f"comparing {node.sql(dialect=src.dialect)} in router memory needs "
                               f"{ws.sql(dialect='mysql')} from the input (see horizon_needs)")
    return hit.offset


@dataclass(frozen=True)
class HorizonNeeds:
    """What ``plan_horizon_over`` reads from its input: ``columns`` (every column the horizon names, outside and
    inside aggregates) and ``weight_keys``, the expressions compared at the router whose ``weight_string()`` a
    MySQL-backed input should also provide (their type is not known to be numeric or temporal)."""

    columns: list[exp.Expression] = field(default_factory=list)
    weight_keys: list[exp.Expression] = field(default_factory=list)


def horizon_needs(select: exp.Select, ctx: PlanContext, scope: Sequence[TableRef] = ()) -> HorizonNeeds:
    """The input columns ``plan_horizon_over`` needs for ``select`` (for the join planner to request)."""
    h = _Horizon(select, ctx, scope)
    types = _Types(scope, h.dialect, arithmetic_is_number=True, ctx=ctx)
    seen: set[str] = set()
    out = HorizonNeeds()
    nodes = [i.expr for i in h.items] + [k.expr for k in h.group] + [k.expr for k in h.order]
    if h.having is not None:
        nodes.append(h.having)
    for node in nodes:
        for col in node.find_all(exp.Column):
            key = h.canon(col)
            if key not in seen and not isinstance(col.this, exp.Star):
                seen.add(key)
                out.columns.append(col)
    compared: list[exp.Expression] = [k.expr for k in h.group] + [k.expr for k in h.order]
    if h.distinct:
        compared += [i.expr for i in h.items]
    for node in [*(i.expr for i in h.items), *(k.expr for k in h.order)] + ([h.having] if h.having else []):
        for leaf in _leaves(node):
            inner = leaf.this if isinstance(leaf, exp.Filter) else leaf
            if isinstance(inner, (exp.Min, exp.Max)) or isinstance(inner.this, exp.Distinct):
                arg = inner.this
                compared.extend(arg.expressions if isinstance(arg, exp.Distinct) else [arg])
    wseen: set[str] = set()
    for node in compared:
        if _leaves(node) or _is_constant(node):
            continue
        key = h.canon(node)
        if key in wseen:
            continue
        wseen.add(key)
        if types.category(node) not in _NATIVE:
            out.weight_keys.append(node)
    return out
