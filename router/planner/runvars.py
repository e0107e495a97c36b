"""Run-time values in per-shard SQL: join variables (a column of the current left row) and pulled-out subquery
results (a value, a list, a has-values flag), bound by the engine while it executes the plan.

While a plan is built they are written into sqlglot trees as ordinary ``:vN`` placeholders numbered after the
statement's own values, so that routing (``router.planner.routing``) and SQL generation treat them like any other
value: the planning context's ``values`` is extended with one ``RunTimeValue`` marker per placeholder. A finished
plan never holds a marker: templates and routing values carry ``JoinVar``/``ListVar`` instead (``template`` and
``resolve`` below), so a cached plan stays free of plan-time state.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from sqlglot import exp

from cython_ext.fpvalues import Param
from router.planner.context import PlanContext
from router.planner.parse import dialect as sqlglot_dialect
from router.planner.plan import RoutingParams
from router.planner.sqltext import SqlTemplate, template_from_generated
from router.planner.values import Arg, JoinVar, ListVar, TupleExpr, ValueExpr
from sharding.errors import UnsupportedError

# Name of the row tag column of batched right-side queries (see ``router.planner.joins``).
ROW_TAG = "__sg_row"


class RunTimeValue(Param):
    """What a placeholder beyond the statement's own values stands for. A ``Param`` to the rest of the planner:
    unknown at plan time (nothing folds or compares it), and ``is_list`` makes routing treat ``col IN (:vN)`` as a
    list (an IN route), as it does for a folded literal list or a ``::name`` bind parameter."""

    __slots__ = ("expr",)

    expr: JoinVar | ListVar

    def __init__(self, expr: JoinVar | ListVar, is_list: bool = False) -> None:
        super().__init__(expr.name, is_list)
        object.__setattr__(self, "expr", expr)

    def __repr__(self) -> str:
        return f"RunTimeValue({self.expr.describe()})"


class _Values(list[Any]):
    """The statement's values followed by run-time markers; ``base`` is the count of real values."""

    base: int = 0


def extend(ctx: PlanContext) -> PlanContext:
    """A context whose values can take run-time markers (guards and warnings stay shared with ``ctx``)."""
    if isinstance(ctx.values, _Values):
        return ctx
    values = _Values(ctx.values)
    values.base = len(ctx.values)
    return dataclasses.replace(ctx, values=values)


def _values(ctx: PlanContext) -> _Values:
    values = ctx.values
    if not isinstance(values, _Values):
        raise TypeError("the planning context was not extended for run-time values")
    return values


def placeholder(ctx: PlanContext, value: JoinVar | ListVar, is_list: bool = False) -> exp.Placeholder:
    """A new ``:vN`` placeholder standing for ``value``."""
    values = _values(ctx)
    values.append(RunTimeValue(value, is_list))
    return exp.Placeholder(this=f"v{len(values)}")


def marker_of(node: exp.Expression, ctx: PlanContext) -> RunTimeValue | None:
    """The run-time marker a placeholder node stands for, if it is one."""
    if not isinstance(node, exp.Placeholder):
        return None
    name = node.name
    if not (name.startswith("v") and name[1:].isdigit()):
        return None
    index = int(name[1:]) - 1
    values = ctx.values
    if 0 <= index < len(values):
        v = values[index]
        if isinstance(v, RunTimeValue):
            return v
    return None


def has_markers(node: exp.Expression, ctx: PlanContext) -> bool:
    return any(marker_of(p, ctx) is not None for p in node.find_all(exp.Placeholder))


def resolve(value: ValueExpr, ctx: PlanContext) -> ValueExpr:
    """``Arg(i)`` of a run-time marker -> its ``JoinVar``/``ListVar``; other values unchanged."""
    if isinstance(value, Arg):
        values = ctx.values
        if 0 <= value.index < len(values):
            v = values[value.index]
            if isinstance(v, RunTimeValue):
                return v.expr
        return value
    if isinstance(value, TupleExpr):
        items = tuple(resolve(i, ctx) for i in value.items)
        return value if items == value.items else TupleExpr(items)
    return value


def resolve_params(params: RoutingParams, ctx: PlanContext) -> RoutingParams:
    if not params.values:
        return params
    values = tuple(resolve(v, ctx) for v in params.values)
    if values == params.values:
        return params
    return dataclasses.replace(params, values=values)


def _count(tree: exp.Expression) -> int:
    return sum(1 for p in tree.find_all(exp.Placeholder) if p.name.startswith("v") and p.name[1:].isdigit())


def template(tree: exp.Expression, backend: str, ctx: PlanContext) -> SqlTemplate:
    """The tree's SQL in the backend's dialect, split at its placeholders; run-time markers become
    ``JoinVar``/``ListVar`` slots."""
    try:
        sql = tree.sql(dialect=sqlglot_dialect(backend))
    except Exception as exc:  # sqlglot raises plain exceptions for constructs a dialect cannot express
        raise UnsupportedError(f"cannot write this statement for a {backend} shard: {exc}") from None

    def slot_for(index: int) -> ValueExpr:
        return resolve(Arg(index), ctx)

    out = template_from_generated(sql, backend, expected=_count(tree), slot_for=slot_for)
    if out is None:
        raise UnsupportedError("a literal in this statement looks like a placeholder; send it as a bind parameter")
    return out


def display_name(node: exp.Expression, dialect: str) -> str:
    """The name a client sees for an unaliased select expression that the router rewrote: its text, values shown
    as ``?`` (a placeholder in a column name would be taken for a value slot)."""

    def hide(n: exp.Expression) -> exp.Expression:
        return exp.Placeholder() if isinstance(n, exp.Placeholder) else n

    return node.transform(hide, copy=True).sql(dialect=sqlglot_dialect(dialect))


def only_args(tpl: SqlTemplate) -> bool:
    """Whether every slot of a template is a statement value (no run-time value)."""
    return not any(isinstance(s, (JoinVar, ListVar)) for s in tpl.slots)


class Names:
    """Unique run-time variable names for one plan (Vitess's ``u_col`` join vars, ``__sq1`` pull-outs)."""

    def __init__(self) -> None:
        self._used: set[str] = {ROW_TAG}
        self._by_key: dict[Any, str] = {}
        self.subqueries = 0

    def join_var(self, key: Any, base: str) -> str:
        """The join var for ``key`` (a column's identity); the same key always gets the same name."""
        name = self._by_key.get(key)
        if name is None:
            name = self.fresh(base)
            self._by_key[key] = name
        return name

    def fresh(self, base: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "v"
        name, n = base, 0
        while name in self._used:
            n += 1
            name = f"{base}{n}"
        self._used.add(name)
        return name

    def pullout(self) -> tuple[str, str]:
        """(values var, has-values var) of the next pulled-out subquery: ``__sq1``/``__sq_has_values``,
        ``__sq2``/``__sq_has_values2``…"""
        self.subqueries += 1
        n = self.subqueries
        values = self.fresh(f"__sq{n}")
        has = self.fresh("__sq_has_values" if n == 1 else f"__sq_has_values{n}")
        return values, has
