"""The horizon of a SELECT over router-side rows (joins, concatenated unions): what ``joins`` and ``union`` ask
of ``router.planner.horizon``, in one place.

``horizon_over(select, prim, columns, …)`` computes the select list, GROUP BY, aggregates, HAVING, DISTINCT,
ORDER BY and LIMIT of ``select`` in router memory over ``prim``, whose column i holds ``columns[i]``
(``horizon.plan_horizon_over``); ``horizon_needs`` says which columns (and MySQL weight strings) it reads.
"""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from router.planner.plan import Primitive

HORIZON_CLAUSES = (("group", "GROUP BY"), ("having", "HAVING"), ("order", "ORDER BY"), ("limit", "LIMIT"),
                   ("offset", "OFFSET"), ("distinct", "DISTINCT"))


def clause_expressions(select: exp.Select) -> list[exp.Expression]:
    """The expressions of GROUP BY, HAVING and ORDER BY (ordinals and aliases included: they are skipped later)."""
    out: list[exp.Expression] = []
    group = select.args.get("group")
    if group is not None:
        out.extend(group.expressions)
    having = select.args.get("having")
    if having is not None:
        out.append(having.this)
    order = select.args.get("order")
    if order is not None:
        out.extend(o.this for o in order.expressions)
    return out


def horizon_needs(select: exp.Select, ctx: Any, scope: list[Any]) -> Any:
    from router.planner.horizon import horizon_needs as needs

    return needs(select, ctx, scope)


def horizon_over(select: exp.Select, prim: Primitive, columns: list[exp.Expression], ctx: Any,
                 scope: list[Any] | None = None, backend: str | None = None) -> Primitive:
    from router.planner.horizon import plan_horizon_over

    return plan_horizon_over(select, prim, columns, ctx, scope=scope or (), backend=backend)
