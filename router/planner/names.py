"""The names a client sees for the columns of a SELECT the router computes (merged aggregates, joins, pulled-out
subqueries), as the database itself would name them.

A single route's rows are named by its shard, which receives the same select list, so only plans that compute
or rename columns at the router need this; their column names otherwise came from helper queries (``SELECT
status … GROUP BY status`` for ``COUNT(DISTINCT status)``) or from the planner's own texts.

Rules, per select expression (a ``*`` anywhere: no renaming, the shards' names stand):

- an alias names its column (PostgreSQL folds an unquoted one to lower case);
- a column is named by its own name, without the qualifier (as written on MySQL, folded on PostgreSQL);
- MySQL/MariaDB name any other expression by its text as the client wrote it: ``("text", i)``, taken from the
  statement being run (a cached plan serves statements whose literals are written differently);
- PostgreSQL names a function call by the function (``count``, ``sum``, ``extract``, ``coalesce``), ``CASE`` by
  ``case`` and an operator expression or a constant ``?column?``; anything else keeps the name it has.
"""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from router.planner.semantics import ident

__all__ = ["NameRule", "result_names"]

# ("name", text): this name; ("text", i): the text of select expression i in the statement; None: keep it.
NameRule = tuple[str, Any] | None

_PG_OPERATORS = (exp.Binary, exp.Neg, exp.Not, exp.Literal, exp.Placeholder, exp.Null, exp.Predicate)
_PG_FUNCTIONS: dict[type[exp.Expression], str] = {
    exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max", exp.Extract: "extract",
    exp.Coalesce: "coalesce", exp.Upper: "upper", exp.Lower: "lower", exp.Abs: "abs", exp.Round: "round",
    exp.Floor: "floor", exp.Ceil: "ceil", exp.Length: "length", exp.Concat: "concat", exp.Greatest: "greatest",
    exp.Least: "least", exp.Nullif: "nullif", exp.Case: "case", exp.ArrayAgg: "array_agg",
    exp.GroupConcat: "string_agg", exp.Stddev: "stddev", exp.Variance: "variance",
}


def result_names(tree: exp.Expression, dialect: str) -> tuple[NameRule, ...] | None:
    """The naming rule of each output column of ``tree`` (a UNION: its first branch's), or None when the router
    should not rename (a ``*``, or nothing it knows better than the column's current name)."""
    while isinstance(tree, exp.SetOperation):
        tree = tree.this
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    if not isinstance(tree, exp.Select):
        return None
    out: list[NameRule] = []
    for i, e in enumerate(tree.expressions):
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
            return None
        out.append(_rule(e, i, dialect))
    return tuple(out) if any(r is not None for r in out) else None


def _rule(e: exp.Expression, i: int, dialect: str) -> NameRule:
    if isinstance(e, exp.Alias):
        alias = e.args.get("alias")
        return ("name", ident(alias, dialect) if isinstance(alias, exp.Identifier) else e.alias)
    if isinstance(e, exp.Column):
        return ("name", ident(e.this, dialect) if isinstance(e.this, exp.Identifier) else e.name)
    if dialect == "mysql":
        return ("text", i)
    node = e
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Anonymous):
        return ("name", str(node.this).lower())
    name = _PG_FUNCTIONS.get(type(node))
    if name is not None:
        return ("name", name)
    if isinstance(node, exp.Boolean):
        return ("name", "bool")
    if isinstance(node, _PG_OPERATORS):
        return ("name", "?column?")
    return None
